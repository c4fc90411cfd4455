"""Streamed calls.

A stream attempt counts as successful once its first token has arrived. Until then it is an
ordinary attempt: a time-to-first-token timeout, a failure or a stream that ends empty is retried
and falls back like any other. After the first token, text has reached the caller and cannot be
taken back, so a failure is NOT retried or sent to another model (which would repeat or
contradict what the user already saw): it ends the stream with ``StreamInterrupted``, carrying the
partial text, and is recorded as a failed call. The caller decides whether to call again.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, TypeVar

from buttress.errors import MalformedResponse, ProviderError, StreamInterrupted
from buttress.providers.base import StreamAssembler, completion_chunk
from buttress.runtime.checked import request_for, settle
from buttress.runtime.executor import Won
from buttress.runtime.hooks import Outcome, run_after, run_before
from buttress.runtime.partial import Partial, Schema, chunk_texts, stream_partials
from buttress.runtime.result import Attempt, AttemptClock, Call, CallResult, Target
from buttress.types import Completion, StreamChunk

if TYPE_CHECKING:
    from buttress.runtime.runtime import Runtime

T = TypeVar("T")

Write = Callable[[list[StreamChunk | str]], Awaitable[None] | None]
"""Where ``CallStream.relay`` hands a batch: None when written, an awaitable when the consumer
needs time first."""


@dataclass(slots=True)
class OpenedStream:
    """A provider stream whose first token has arrived; ``head`` holds the chunks read so far."""

    chunks: AsyncIterator[StreamChunk]
    head: list[StreamChunk] = field(default_factory=list)

    async def aclose(self) -> None:
        aclose = getattr(self.chunks, "aclose", None)
        if aclose is not None:
            await aclose()


class CallStream:
    """Iterate for ``StreamChunk``s; afterwards ``result`` holds the ``CallResult``.

    Use as ``async with runtime.stream(call) as s: async for chunk in s: ...``. Leaving early
    closes the provider stream and records the call as cancelled.
    """

    def __init__(self, runtime: Runtime, call: Call) -> None:
        self._runtime = runtime
        self.call = call
        self.result: CallResult | None = None
        self._won: Won[OpenedStream] | None = None
        self._attempts: list[Attempt] = []
        self._start = 0.0
        self._ttft: float | None = None
        self._finished = False
        self._iterating = False
        self._hit: CallResult | None = None
        # what has been read, for the record however the read ends (``aclose`` included)
        self._assembler = StreamAssembler()

    async def __aenter__(self) -> CallStream:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Dispatch and wait for the first token (retrying and falling back as needed)."""
        if self._won is not None or self._finished:
            return
        runtime, call = self._runtime, self.call
        self._start = runtime.clock.now()
        self._hit = await runtime.cached(call)
        if self._hit is not None:
            self._finished = True
            return
        for target in call.targets:
            runtime.provider(target.provider)

        async def attempt(target: Target, clock: AttemptClock) -> OpenedStream:
            provider = runtime.providers[target.provider]
            # a contract shapes the request, but a stream is never repaired (settle)
            request = (call.request.with_model(target.model) if call.output is None else
                       request_for(runtime, call, target))
            chunks = provider.stream(request)
            opened = OpenedStream(chunks)
            try:
                async for chunk in chunks:
                    opened.head.append(chunk)
                    if chunk.has_content or chunk.finish_reason is not None:
                        clock.ttft_s = runtime.clock.now() - clock.started
                        return opened
                raise MalformedResponse("stream ended before its first token",
                                        provider=target.provider, model=target.model)
            except BaseException:
                await opened.aclose()
                raise

        policy = call.policy
        try:
            await run_before(runtime.before_hooks, call)
            self._won = await runtime.executor.run(
                call, attempt, self._attempts,
                first_byte_timeout=policy.ttft_timeout_s or policy.attempt_timeout_s,
                discard=OpenedStream.aclose)
        except BaseException as exc:
            self._finished = True
            await run_after(runtime.hooks,
                            runtime.outcome_failed(call, exc, self._attempts, self._start))
            raise
        self._ttft = self._won.clock.ttft_s
        if self._ttft is not None:
            # the call's TTFT counts from the call's start, across failed attempts
            self._ttft = self._won.clock.started - self._start + self._ttft

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        if self._iterating:
            raise RuntimeError("a CallStream can be iterated only once")
        self._iterating = True
        return self._iterate()

    def partials(self, schema: Schema | None = None) -> AsyncIterator[Partial]:
        """Iterate (instead of iterating chunks) for ``Partial`` values of a JSON answer.

        Each one holds the object parsed so far; fields are validated against ``schema`` (a
        pydantic model or a JSON schema) as they complete, and the last one is ``final``: the
        whole document, fully validated. See ``buttress.runtime.partial``. Without
        ``schema``, the call's output contract is used, if it has one.
        """
        contract = self.call.output
        if schema is None and contract is not None:
            schema = contract.pydantic_model or contract.json_schema
        return stream_partials(chunk_texts(self), schema)

    def batches(self) -> AsyncGenerator[list[StreamChunk | str], None]:
        """Iterate (instead of iterating chunks) for lists of what arrived together: chunks,
        and, from providers that can tell them apart cheaply, a plain ``str`` for a chunk that
        carries nothing but text. A relay (the gateway) wakes once per arrival and builds no
        ``StreamChunk`` for the stream's bulk. Everything else is as for chunks."""
        if self._iterating:
            raise RuntimeError("a CallStream can be iterated only once")
        self._iterating = True
        return self._batches(text_only=True)

    async def _iterate(self) -> AsyncIterator[StreamChunk]:
        async with aclosing(self._batches(text_only=False)) as batches:
            async for batch in batches:
                for chunk in batch:
                    # text_only=False: StreamChunks only (no ``cast``: a call, on every chunk)
                    yield chunk  # type: ignore[misc]

    async def relay(self, write: Write) -> None:
        """Hand what arrives to ``write`` as it arrives (batches, as ``batches`` makes them), and
        return once the stream is over: ``result`` then holds the ``CallResult``. ``write`` is a
        plain function; when the consumer needs time (backpressure) it returns an awaitable, and
        nothing more is written until that is done.

        From a provider stream that can push (``listen``/``poll``: the OpenAI adapter over the
        pooled transport), ``write`` runs inside the transport's callback as bytes arrive, and
        no task wakes per arrival (for the gateway, with ``TextEvents``, a chunk's relay takes
        about half the instructions it took through ``batches``). It then runs outside the
        caller's task, so the task's context variables are not set there. Otherwise this is
        ``batches`` in a loop. Failures are as for iterating."""
        await self.open()
        won = self._won
        chunks = won.value.chunks if won is not None else None
        listen = getattr(chunks, "listen", None)
        if won is None or listen is None or not listen(None):
            async with aclosing(self.batches()) as batches:
                async for batch in batches:
                    if (pending := write(batch)) is not None:
                        await pending
            return
        if self._iterating:
            raise RuntimeError("a CallStream can be iterated only once")
        self._iterating = True
        assembler = self._assembler
        watchdog, timer = self._watch()
        try:
            head: list[StreamChunk | str] = list(won.value.head)
            assembler.extend(head)
            pending = write(head)
            while True:
                if pending is not None:
                    await pending
                pusher = _Pusher(chunks, assembler, write)  # type: ignore[arg-type]
                listen(pusher)
                try:
                    pusher()  # what arrived while no one listened
                    pending = await watchdog.read(pusher.outcome)
                finally:
                    listen(None)
                    # a failure's traceback holds the frames that hold the pusher: let go of
                    # the future that holds the failure
                    pusher.done = None
                if pending is None:
                    break
            completion = assembler.completion()
        except BaseException as exc:
            raise await self._stop(exc)  # noqa: B904 (_stop sets any cause)
        finally:
            timer.cancel()
        await self._succeed(won, completion)

    async def _batches(self, *, text_only: bool) -> AsyncGenerator[list[StreamChunk | str], None]:
        await self.open()
        if self._hit is not None:  # answered from the cache: the whole answer is one chunk
            self.result = self._hit
            yield [completion_chunk(self._hit.completion)]
            return
        won = self._won
        if won is None:
            return
        chunks = won.value.chunks
        # a provider's stream may read what arrived together at once: ``batch(text_only=)``
        batch = getattr(chunks, "batch", None)
        next_batch: Callable[[], Awaitable[list[StreamChunk | str]]] = (
            functools.partial(batch, text_only=text_only) if batch is not None
            else _one_by_one(chunks))
        assembler = self._assembler
        watchdog, timer = self._watch()
        try:
            head: list[StreamChunk | str] = list(won.value.head)
            assembler.extend(head)
            yield head
            while items := await watchdog.read(next_batch):
                assembler.extend(items)
                yield items
            completion = assembler.completion()
        except BaseException as exc:
            raise await self._stop(exc)  # noqa: B904 (_stop sets any cause)
        finally:
            timer.cancel()
        await self._succeed(won, completion)

    # Reading the won stream after its head (``relay`` and ``_batches``, each in a plain
    # try: an async context manager would cost a handful of calls a stream) is under the
    # call's deadline: a provider's failure (or the deadline) ends the call as interrupted,
    # anything else (the consumer left) as cancelled.

    def _watch(self) -> tuple[_Watchdog, asyncio.TimerHandle]:
        """The deadline's watchdog for reading, and its timer (to cancel when done)."""
        loop = asyncio.get_running_loop()
        watchdog = _Watchdog(loop)
        return watchdog, loop.call_at(
            loop.time() + max(0.0, self.call.policy.deadline_s -
                              (self._runtime.clock.now() - self._start)), watchdog.fire)

    async def _stop(self, exc: BaseException) -> BaseException:
        """Record a read that ``exc`` ended, and return what the reader raises:
        ``StreamInterrupted`` (from ``exc``) for a provider's failure or the deadline, else
        ``exc`` itself (the consumer left early: a break, a cancellation, not an error of the
        provider). Returned, not raised: raised from here, the error's traceback would hold this
        frame, which holds the error (a cycle of every frame of the read for the collector)."""
        if isinstance(exc, ProviderError | TimeoutError):
            assert self._won is not None
            interrupted = _interrupted(exc, self._assembler.text, self._won.clock.target)
            interrupted.__cause__ = exc
            await self._fail(interrupted)
            return interrupted
        await self._abandon()
        return exc

    async def _succeed(self, won: Won[OpenedStream], completion: Completion) -> None:
        runtime, call = self._runtime, self.call
        won.clock.usage = completion.usage
        won.clock.model_served = completion.model or won.clock.target.model
        await won.value.aclose()
        won.release()
        won.breaker.record_success()
        self.result = runtime.finish(call, won, completion, self._attempts, self._start,
                                     self._ttft)
        if call.output is not None:
            self.result = settle(call, self.result)
        self._finished = True
        await runtime.remember(call, self.result)
        await run_after(runtime.hooks, Outcome(call, self.result, None, self.result.attempts,
                                               self.result.latency_s, self._ttft))

    async def _fail(self, exc: StreamInterrupted) -> None:
        won = self._won
        assert won is not None
        self._finished = True
        await won.value.aclose()
        won.release()
        won.breaker.record_failure()
        won.clock.usage = self._assembler.usage or won.clock.usage
        self._attempts.append(won.clock.finish(self._runtime.clock.now(), "error", exc))
        await run_after(self._runtime.hooks, self._runtime.outcome_failed(
            self.call, exc, self._attempts, self._start, self._ttft, exc.partial_text))

    async def _abandon(self) -> None:
        won = self._won
        if won is None or self._finished:
            return
        self._finished = True
        try:
            await won.value.aclose()
        finally:
            won.release()
            won.breaker.record_abandoned()
            won.clock.usage = self._assembler.usage or won.clock.usage
            self._attempts.append(won.clock.finish(self._runtime.clock.now(), "cancelled"))
            await run_after(self._runtime.hooks, self._runtime.outcome_failed(
                self.call, asyncio.CancelledError(), self._attempts, self._start, self._ttft,
                self._assembler.text))

    async def aclose(self) -> None:
        """Stop the stream if it is still open (safe to call more than once)."""
        if not self._finished:
            await self._abandon()


class _Pusher:
    """Push mode's listener (see ``CallStream.relay``): reads what arrived, adds it to the
    completion and writes it on, all inside the transport's callback. ``outcome`` is done with
    None once the stream is over, with the write's awaitable when the consumer needs time
    (the pusher then stops until it is done), or with the read's (or the write's) error."""

    __slots__ = ("assembler", "done", "source", "write")

    def __init__(self, source: _PushSource, assembler: StreamAssembler, write: Write) -> None:
        self.source = source
        self.assembler = assembler
        self.write = write
        self.done: asyncio.Future[Awaitable[None] | None] | None = \
            asyncio.get_running_loop().create_future()

    def __call__(self) -> None:
        done = self.done
        if done is None or done.done():
            return
        try:
            while items := self.source.poll():
                self.assembler.extend(items)
                if (pending := self.write(items)) is not None:
                    done.set_result(pending)
                    return
            if items is None:
                done.set_result(None)
        except Exception as exc:
            done.set_exception(exc)
            del done  # the future keeps the traceback, which holds this frame

    def outcome(self) -> asyncio.Future[Awaitable[None] | None]:
        assert self.done is not None  # until the relay lets go of it
        return self.done


class _PushSource(Protocol):
    def listen(self, listener: Callable[[], None] | None) -> bool: ...

    def poll(self, *, text_only: bool = True) -> list[StreamChunk | str] | None: ...


class _Watchdog:
    """The call's deadline over a whole stream: one timer, not one per chunk.

    ``asyncio.timeout_at`` around each read would arm and cancel a timer per chunk. Instead the
    timer fires once, at the deadline: if a read is waiting then, it cancels the reading task
    (and the read raises ``TimeoutError``, as under ``asyncio.timeout``); if the consumer is busy
    between chunks, the next read raises ``TimeoutError`` without waiting.
    """

    __slots__ = ("expired", "loop", "task")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.expired = False
        self.loop = loop
        self.task: asyncio.Task[object] | None = None  # the task waiting in ``read``, if any

    def fire(self) -> None:
        self.expired = True
        if self.task is not None:
            self.task.cancel()

    async def read(self, next_batch: Callable[[], Awaitable[T]]) -> T:
        if self.expired:
            raise TimeoutError
        task = asyncio.current_task(self.loop)  # given the loop, it need not look it up
        assert task is not None
        cancelling = task.cancelling()
        self.task = task
        try:
            return await next_batch()
        except asyncio.CancelledError:
            # our cancellation (and no one else's): the deadline passed during the read
            if self.expired and task.uncancel() <= cancelling:
                raise TimeoutError from None
            raise
        finally:
            self.task = None


def _one_by_one(chunks: AsyncIterator[StreamChunk]
                ) -> Callable[[], Awaitable[list[StreamChunk | str]]]:
    """Batches of one chunk each, from a provider that has no ``batch``."""
    async def next_batch() -> list[StreamChunk | str]:
        try:
            return [await anext(chunks)]
        except StopAsyncIteration:
            return []

    return next_batch


def _interrupted(exc: BaseException, partial: str, target: Target) -> StreamInterrupted:
    if isinstance(exc, TimeoutError):
        reason = "deadline exceeded mid-stream"
    elif isinstance(exc, MalformedResponse) and "truncated" in str(exc):
        reason = f"stream truncated: {exc}"
    else:
        # not "after the first token: {exc}": redaction reads "token: <provider/model>" as a
        # key=value secret, and the ledger would lose which model failed
        reason = f"stream failed after its first token was delivered: {exc}"
    return StreamInterrupted(reason, partial_text=partial, provider=target.provider,
                             model=target.model)
