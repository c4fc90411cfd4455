"""Deadline, fallback chain, retries, breaker, concurrency limit, attempt timeout and hedging.

The executor is generic over what one attempt produces: a ``Completion`` for a plain call, an
opened stream (first token in hand) for a streamed one. Every policy therefore treats "a stream
that fails before its first token" exactly like a failed plain call: it is retried, it falls back.

Order of the wrappers around one attempt, outermost first::

    deadline ▸ fallback ▸ retry with backoff ▸ breaker ▸ hedge ▸ limit ▸ timeout ▸ attempt
"""

from __future__ import annotations

import asyncio
import collections
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from buttress.clock import Clock
from buttress.errors import (
    AllAttemptsFailed,
    CircuitOpen,
    DeadlineExceeded,
    OutputError,
    ProviderError,
    ProviderTimeout,
)
from buttress.runtime.backoff import retry_delay
from buttress.runtime.breaker import BreakerBoard, CircuitBreaker
from buttress.runtime.expiry import Expiry, current
from buttress.runtime.result import (
    Attempt,
    AttemptClock,
    AttemptKind,
    AttemptStatus,
    Call,
    PriceFn,
    Target,
)

T = TypeVar("T")

AttemptFn = Callable[[Target, AttemptClock], Awaitable[T]]
SkipFn = Callable[[Target], str | None]
"""Why a target should not be tried now (a cascade tier that cannot fit the latency budget)."""


@dataclass(slots=True)
class _Run(Generic[T]):
    """One ``Executor.run``: what every attempt of it shares."""

    call: Call
    fn: AttemptFn[T]
    attempts: list[Attempt]
    counter: _Counter
    deadline: float  # on the executor's clock
    first_byte_timeout: float | None
    discard: Callable[[T], Awaitable[None]] | None
    loop: asyncio.AbstractEventLoop


@dataclass(slots=True)
class Won(Generic[T]):
    """The attempt that succeeded, with what the caller must settle when it is done with it."""

    value: T
    clock: AttemptClock
    breaker: CircuitBreaker
    release: Callable[[], None]


class Slots:
    """One provider's concurrency limit: ``asyncio.Semaphore``'s behaviour (waiters served in
    order, safe to cancel), with a free slot taken by a plain call (``take_now``) rather than a
    coroutine: the call path asks on every attempt, and a slot is nearly always free."""

    __slots__ = ("_free", "_waiters")

    def __init__(self, n: int) -> None:
        self._free = n
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def take_now(self) -> bool:
        """Take a slot if one is free and no one is waiting for one."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def take(self) -> None:
        """Take a slot, waiting in line for one if need be."""
        if self.take_now():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as it was cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes straight to the next in line
                return
        self._free += 1


class Limits:
    """Per-provider concurrency limits (a provider without a limit is unlimited)."""

    def __init__(self, limits: Mapping[str, int]) -> None:
        self._slots = {name: Slots(n) for name, n in limits.items() if n}

    def get(self, provider: str) -> Slots | None:
        return self._slots.get(provider)


def _noop() -> None:
    return None


class Executor:
    def __init__(self, *, breakers: BreakerBoard, limits: Limits, clock: Clock,
                 rng: random.Random, price: PriceFn | None = None) -> None:
        self.breakers = breakers
        self.limits = limits
        self.clock = clock
        self.rng = rng
        self.price = price  # each attempt is priced as it ends

    async def run(self, call: Call, fn: AttemptFn[T], attempts: list[Attempt], *,
                  first_byte_timeout: float | None = None,
                  discard: Callable[[T], Awaitable[None]] | None = None,
                  skip: SkipFn | None = None) -> Won[T]:
        """Run ``fn`` down the fallback chain until one attempt succeeds.

        Failed, cancelled and skipped attempts are appended to ``attempts``; the winner is
        returned for the caller to finish (a stream ends later). Raises ``DeadlineExceeded``,
        ``AllAttemptsFailed`` or a non-retryable ``ProviderError`` as it is. An ``OutputError``
        from ``fn`` (the answer was unusable) is not retried: it falls back when it says so.
        """
        policy = call.policy
        deadline = self.clock.now() + policy.deadline_s
        errors: list[Exception] = []
        counter = _Counter()
        loop = asyncio.get_running_loop()  # looked up once: on Python 3.11 each is a syscall
        task = current(loop)
        run = _Run(call, fn, attempts, counter, deadline, first_byte_timeout, discard, loop)
        try:
            with Expiry(loop, task, loop.time() + policy.deadline_s):
                for position, target in enumerate(call.targets):
                    breaker = self.breakers.get(target.provider, target.model,
                                                failures=policy.breaker_failures,
                                                cooldown_s=policy.breaker_cooldown_s)
                    retry = 0
                    reason = skip(target) if skip is not None else None
                    if reason is not None:
                        attempts.append(self._clock_for(
                            counter, "fallback" if position else "primary", target).finish(
                            self.clock.now(), "skipped").model_copy(
                            update={"error_kind": "skipped", "error": reason}))
                        continue
                    while True:
                        kind: AttemptKind = ("retry" if retry else
                                             "fallback" if position else "primary")
                        try:
                            breaker.acquire()
                        except CircuitOpen as exc:
                            errors.append(exc)
                            attempts.append(self._clock_for(counter, kind, target).finish(
                                self.clock.now(), "error", exc))
                            break
                        try:
                            if policy.hedge_after_s is None:  # the attempt runs in this task
                                return await self._attempt(run, target, kind, breaker, task)
                            return await self._hedged(run, target, kind, breaker)
                        except OutputError as exc:
                            errors.append(exc)
                            if not exc.falls_back:
                                raise
                            break
                        except ProviderError as exc:
                            errors.append(exc)
                            if not exc.falls_back:
                                raise
                            if not exc.retryable or retry >= policy.max_retries:
                                break
                            if exc.retry_after is not None and \
                                    exc.retry_after > policy.retry_after_max_s:
                                break  # waiting that long is worse than the next model
                            delay = retry_delay(retry, policy, self.rng, exc.retry_after)
                            if self.clock.now() + delay >= deadline:
                                break
                            await self.clock.sleep(delay)
                            retry += 1
                if not errors:  # every tier was skipped: none fits the time left
                    raise DeadlineExceeded(policy.deadline_s)
                raise AllAttemptsFailed(
                    f"all {len(errors)} attempt(s) across {len(call.targets)} model(s) failed",
                    errors)
        except TimeoutError as exc:
            raise DeadlineExceeded(policy.deadline_s, errors) from exc
        finally:
            # every error caught here holds this frame in its traceback: the frame must not
            # hold them back (the raised error keeps its own copy), or each failed call leaves
            # a reference cycle that only the collector frees
            del errors

    def _clock_for(self, counter: _Counter, kind: AttemptKind, target: Target) -> AttemptClock:
        return AttemptClock(index=counter.next(), kind=kind, target=target,
                            started_at=self.clock.wall(), started=self.clock.now(),
                            next_index=counter.next, price=self.price)

    async def _hedged(self, run: _Run[T], target: Target, kind: AttemptKind,
                      breaker: CircuitBreaker) -> Won[T]:
        """An attempt, and after ``hedge_after_s`` a second one beside it (each in its own
        task): the first to succeed wins."""
        won = await self._race(run, target, kind, breaker)
        if isinstance(won, Won):
            return won
        try:
            raise won
        finally:
            del won  # its traceback holds this frame: no cycle through the local

    async def _race(self, run: _Run[T], target: Target, kind: AttemptKind,
                    breaker: CircuitBreaker) -> Won[T] | BaseException:
        """``_hedged``'s race: the winner, or the failure to raise. Returned, not raised: the
        attempts' futures hold their failures, whose tracebacks would hold this frame."""
        def one(k: AttemptKind) -> Awaitable[Won[T]]:
            return self._attempt(run, target, k, breaker, None)

        hedge_after = run.call.policy.hedge_after_s
        assert hedge_after is not None
        first = asyncio.ensure_future(one(kind))
        pending: set[asyncio.Future[Won[T]]] = {first}
        try:
            done, _ = await asyncio.wait(pending, timeout=hedge_after)
            if done:
                failed = first.exception()
                return first.result() if failed is None else failed
            try:
                breaker.acquire()  # a half-open breaker allows no second probe
                pending.add(asyncio.ensure_future(one("hedge")))
            except CircuitOpen:
                pass
            failure: BaseException | None = None
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                winners = [f for f in done if f.exception() is None]
                for f in done:
                    if f.exception() is not None:
                        failure = f.exception()
                if winners:
                    for extra in winners[1:]:  # both finished in the same tick: keep one
                        won = extra.result()
                        won.release()
                        won.breaker.record_success()
                        run.attempts.append(won.clock.finish(self.clock.now(), "ok"))
                        if run.discard is not None:
                            await run.discard(won.value)
                    return winners[0].result()
            assert failure is not None
            return failure
        finally:
            for f in pending:
                f.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def _attempt(self, run: _Run[T], target: Target, kind: AttemptKind,
                       breaker: CircuitBreaker, task: asyncio.Task[object] | None) -> Won[T]:
        """One attempt, in ``task`` (the running task; None: look it up)."""
        clock = self._clock_for(run.counter, kind, target)
        limit = self.limits.get(target.provider)
        timeout = run.first_byte_timeout or run.call.policy.attempt_timeout_s
        timeout = min(timeout, max(0.0, run.deadline - self.clock.now()))
        acquired = False
        try:
            if limit is not None:
                if not limit.take_now():
                    await limit.take()
                acquired = True
            loop = run.loop
            try:
                with Expiry(loop, task or current(loop), loop.time() + timeout) as scope:
                    value = await run.fn(target, clock)
            except TimeoutError as exc:
                if not scope.expired:
                    raise
                what = "time to first token" if run.first_byte_timeout else "attempt"
                raise ProviderTimeout(f"{what} exceeded {timeout:.3f}s",
                                      provider=target.provider, model=target.model) from exc
        except BaseException as exc:
            if acquired and limit is not None:
                limit.release()
            if isinstance(exc, ProviderError):
                breaker.record_failure()
                status: AttemptStatus = "error"
            elif isinstance(exc, OutputError):
                breaker.record_success()  # the provider answered: healthy for the breaker
                status = "error"
            else:
                breaker.record_abandoned()  # cancelled: no verdict either way
                status = "cancelled"
            run.attempts.append(clock.finish(self.clock.now(), status,
                                             exc if isinstance(exc, Exception) else None))
            raise
        release = limit.release if acquired and limit is not None else _noop
        return Won(value=value, clock=clock, breaker=breaker, release=_once(release))


class _Counter:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def next(self) -> int:
        self.value += 1
        return self.value - 1


def _once(fn: Callable[[], None]) -> Callable[[], None]:
    done = False

    def call() -> None:
        nonlocal done
        if not done:
            done = True
            fn()

    return call


__all__ = ["DeadlineExceeded", "Executor", "Limits", "Won"]
