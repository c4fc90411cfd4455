"""The runtime: one call, plain or streamed, through hooks and the executor to a provider."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import UsageError
from buttress.providers.base import Provider
from buttress.runtime.breaker import BreakerBoard
from buttress.runtime.checked import CheckedCall, settle
from buttress.runtime.executor import Executor, Limits, Won
from buttress.runtime.hooks import (
    CallCache,
    CallHook,
    Outcome,
    refusers,
    run_after,
    run_before,
)
from buttress.runtime.result import (
    Attempt,
    AttemptClock,
    Call,
    CallResult,
    PriceFn,
    Target,
)
from buttress.runtime.routing import LatencyBook
from buttress.runtime.streaming import CallStream
from buttress.runtime.structured import StructuredSupport
from buttress.trusted import trusted
from buttress.types import Completion


class Runtime:
    """Executes calls against named providers. Shared by the Python client and the gateway."""

    def __init__(self, providers: Mapping[str, Provider], *,
                 concurrency: Mapping[str, int] | None = None,
                 hooks: Sequence[CallHook] = (), clock: Clock = SYSTEM_CLOCK,
                 rng: random.Random | None = None, price: PriceFn | None = None,
                 cache: CallCache | None = None,
                 contract_support: Mapping[str, StructuredSupport] | None = None) -> None:
        self.providers = dict(providers)
        # per provider: how output contracts are asked for, when config overrides the adapter
        self.contract_support = dict(contract_support or {})
        self.latency = LatencyBook()  # what cascades expect of a model with no configured figure
        self.hooks = tuple(hooks)
        #: the hooks whose ``before`` is awaited before dispatch
        self.before_hooks = refusers(self.hooks)
        self.cache = cache
        self.clock = clock
        self.price = price
        self.breakers = BreakerBoard(clock)
        self.executor = Executor(breakers=self.breakers, limits=Limits(concurrency or {}),
                                 clock=clock, rng=rng or random.Random(), price=price)

    def provider(self, name: str) -> Provider:
        try:
            return self.providers[name]
        except KeyError:
            raise UsageError(f"no provider named {name!r}; configured: "
                             f"{', '.join(sorted(self.providers)) or 'none'}") from None

    def structured_support(self, provider: str) -> StructuredSupport:
        """How ``provider`` takes an output contract: natively, or by instruction."""
        return self.contract_support.get(provider) or self.providers[provider].contract_support

    async def complete(self, call: Call) -> CallResult:
        """Run a call to completion. Raises the typed errors of ``buttress.errors``.

        A call with an output contract, a confidence or routing ends in a value or a typed
        miss (``runtime.checked``).
        """
        if call.output is not None or call.confidence is not None or call.routing is not None:
            return await CheckedCall(self, call, []).run()
        start = self.clock.now()
        attempts: list[Attempt] = []
        for target in call.targets:
            self.provider(target.provider)

        async def attempt(target: Target, clock: AttemptClock) -> Completion:
            provider = self.providers[target.provider]
            completion = await provider.complete(call.request.with_model(target.model))
            clock.usage = completion.usage
            clock.model_served = completion.model or target.model
            return completion

        cached = await self.cached(call)
        if cached is not None:
            return cached
        try:
            await run_before(self.before_hooks, call)
            won = await self.executor.run(call, attempt, attempts)
        except BaseException as exc:
            await run_after(self.hooks, self.outcome_failed(call, exc, attempts, start))
            raise
        won.release()
        won.breaker.record_success()
        result = self.finish(call, won, won.value, attempts, start)
        await self.remember(call, result)
        await run_after(self.hooks, Outcome(call, result, None, result.attempts,
                                            result.latency_s, result.ttft_s))
        return result

    def stream(self, call: Call) -> CallStream:
        """Open a streamed call; iterate it for chunks, then read ``.result``."""
        return CallStream(self, call)

    # Shared by plain and streamed calls.

    async def cached(self, call: Call) -> CallResult | None:
        """A cache hit for ``call``, already reported to the hooks, or None."""
        if self.cache is None or call.cache != "use":
            return None
        result = await self.cache.lookup(call)
        if result is not None:
            if call.output is not None:  # a cached answer is checked like a fresh one
                result = settle(call, result)
            await run_after(self.hooks, Outcome(call, result, None, result.attempts,
                                                result.latency_s, result.ttft_s))
        return result

    async def remember(self, call: Call, result: CallResult) -> None:
        # a typed miss is no answer to reuse
        if self.cache is not None and call.cache != "bypass" and result.miss is None:
            await self.cache.store(call, result)

    def finish(self, call: Call, won: Won[Any], completion: Completion,
               attempts: list[Attempt], start: float, ttft_s: float | None = None) -> CallResult:
        now = self.clock.now()
        attempts.append(won.clock.finish(now, "ok"))
        attempts.sort(key=lambda a: a.index)
        target = won.clock.target
        return trusted(CallResult, {  # every field comes from typed values
            "call_id": call.call_id, "trace_id": call.trace_id, "feature": call.feature,
            "prompt_name": call.prompt_name, "prompt_version": call.prompt_version,
            "completion": completion, "provider": target.provider,
            "model_requested": target.model, "model_served": completion.model or target.model,
            "attempts": tuple(attempts), "latency_s": now - start, "ttft_s": ttft_s,
            "cost_usd": self.total_cost(attempts)})

    def total_cost(self, attempts: Sequence[Attempt]) -> float | None:
        """What every attempt cost together (each priced as it ended); None when one that
        used tokens has no known price."""
        if self.price is None:
            return None
        total = 0.0
        for a in attempts:
            if a.usage.total_tokens:
                if a.cost_usd is None:
                    return None
                total += a.cost_usd
        return total

    def outcome_failed(self, call: Call, exc: BaseException, attempts: list[Attempt],
                       start: float, ttft_s: float | None = None,
                       partial_text: str | None = None) -> Outcome:
        attempts.sort(key=lambda a: a.index)
        cancelled = not isinstance(exc, Exception)
        return Outcome(call, None, None if cancelled else exc, tuple(attempts),
                       self.clock.now() - start, ttft_s, cancelled=cancelled,
                       partial_text=partial_text or None)

