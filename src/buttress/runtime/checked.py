"""Calls whose answer is checked: an output contract, a confidence, a cascade.

Validation lives inside the attempt, so every policy of the executor applies to it unchanged::

    attempt on one target:  complete ▸ parse and validate ▸ (repair ▸ validate) x max_repairs
                            ▸ confidence (logprobs, or self-consistency samples)
                            ▸ under the cascade's threshold? escalate

An answer that still fails after its repairs raises ``OutputValidationError``, which the
executor does not retry on the same model but sends down the chain. When the chain is exhausted
and at least one model answered unusably, the call ends in a typed miss: a ``CallResult`` with
``value=None`` and ``miss`` holding every reason and the last raw answer. Each repair and each
extra sample is an attempt of its own (kind ``repair`` / ``sample``) with its own usage.

Only calls that carry a contract, a confidence or routing come here; a plain call never does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from buttress.errors import (
    AllAttemptsFailed,
    LowConfidence,
    OutputError,
    OutputValidationError,
    ProviderError,
)
from buttress.providers.base import Provider
from buttress.runtime.confidence import (
    agreement,
    answer_key,
    classification_field,
    label_span,
    logprob_confidence,
)
from buttress.runtime.hooks import Outcome, run_after, run_before
from buttress.runtime.result import Attempt, AttemptClock, Call, CallResult, Miss, Target
from buttress.types import CallRequest, Completion

if TYPE_CHECKING:
    from buttress.runtime.runtime import Runtime


@dataclass(slots=True)
class Checked:
    """What a checked attempt produced."""

    completion: Completion
    value: Any
    reasons: tuple[str, ...]  # what the repairs fixed; empty when the first answer passed
    confidence: float | None


def request_for(runtime: Runtime, call: Call, target: Target) -> CallRequest:
    """The request one target is sent: its model, the contract's shape, logprobs if scored."""
    request = call.request.with_model(target.model)
    if call.output is not None:
        request = call.output.apply(request, runtime.structured_support(target.provider))
    spec = call.confidence
    if spec is not None and spec.method == "logprobs":
        request = request.model_copy(update={"logprobs": True,
                                             "top_logprobs": spec.top_logprobs or None})
    return request


class CheckedCall:
    """One checked call: the attempt function the executor runs, and how the call ends."""

    def __init__(self, runtime: Runtime, call: Call, attempts: list[Attempt]) -> None:
        self.runtime = runtime
        self.call = call
        self.attempts = attempts
        self.start = runtime.clock.now()
        spec = call.confidence
        self.field = spec.field if spec is not None and spec.field else (
            classification_field(call.output.json_schema) if call.output is not None else None)
        routing = call.routing
        self.on_invalid = routing.on_invalid if routing is not None else True
        self.threshold = routing.min_confidence if routing is not None else None
        budget = call.policy.deadline_s
        if routing is not None and routing.latency_budget_s is not None:
            budget = min(budget, routing.latency_budget_s)
        self.budget = budget

    async def run(self) -> CallResult:
        rt, call = self.runtime, self.call
        for target in call.targets:
            rt.provider(target.provider)
        cached = await rt.cached(call)
        if cached is not None:
            return cached
        try:
            await run_before(rt.before_hooks, call)
            won = await rt.executor.run(call, self.attempt, self.attempts,
                                        skip=self.skip if call.routing is not None else None)
        except (AllAttemptsFailed, OutputError) as exc:
            errors: Sequence[Exception] = (exc.exceptions if isinstance(exc, AllAttemptsFailed)
                                           else (exc,))
            if not any(isinstance(e, OutputError) for e in errors):
                await run_after(rt.hooks, rt.outcome_failed(call, exc, self.attempts,
                                                            self.start))
                raise
            result = self.missed(errors)
            await run_after(rt.hooks, Outcome(call, result, None, result.attempts,
                                              result.latency_s))
            return result
        except BaseException as exc:
            await run_after(rt.hooks, rt.outcome_failed(call, exc, self.attempts, self.start))
            raise
        won.release()
        won.breaker.record_success()
        checked = won.value
        result = rt.finish(call, won, checked.completion, self.attempts, self.start)
        result = result.model_copy(update={
            "value": checked.value, "confidence": checked.confidence,
            "validation": (None if call.output is None else
                           "repaired" if checked.reasons else "passed"),
            "validation_reasons": checked.reasons, "tier": self.tier(won.clock.target)})
        await rt.remember(call, result)
        await run_after(rt.hooks, Outcome(call, result, None, result.attempts,
                                          result.latency_s))
        return result

    # -- inside one attempt ------------------------------------------------------------------

    async def attempt(self, target: Target, clock: AttemptClock) -> Checked:
        rt, call, contract = self.runtime, self.call, self.call.output
        provider = rt.providers[target.provider]
        began = rt.clock.now()
        base = request = request_for(rt, call, target)
        completion = await _complete(provider, request, target, clock)
        reasons: list[str] = []
        value: Any
        if contract is None:
            value = (completion.text or "").strip()
        else:
            repairs = 0
            while True:
                raw = completion.text or ""
                try:
                    value = contract.parse(raw)
                    break
                except OutputValidationError as exc:
                    reasons.extend(exc.reasons)
                    if repairs >= contract.max_repairs:
                        rt.latency.observe(target.provider, target.model, rt.clock.now() - began)
                        raise OutputValidationError(
                            str(exc), raw=raw, reasons=[f"{target}: {r}" for r in exc.reasons],
                            falls_back=self.on_invalid) from None
                    repairs += 1
                    self.attempts.append(clock.restart("repair", rt.clock.wall(),
                                                       rt.clock.now(), exc))
                    request = contract.repair(request, raw, exc.reasons)
                    completion = await _complete(provider, request, target, clock)
        confidence = None
        spec = call.confidence
        if spec is not None:
            if spec.method == "logprobs":
                confidence = self.logprob_confidence(completion)
            else:
                value, completion, confidence = await self.consensus(
                    provider, base, target, clock, value, completion)
        rt.latency.observe(target.provider, target.model, rt.clock.now() - began)
        if (self.threshold is not None and confidence is not None
                and confidence < self.threshold and target is not call.targets[-1]):
            low = LowConfidence(confidence, self.threshold, raw=completion.text or "")
            low.reasons = tuple(f"{target}: {r}" for r in low.reasons)
            raise low
        return Checked(completion, value, tuple(reasons), confidence)

    def logprob_confidence(self, completion: Completion) -> float | None:
        if not completion.logprobs:
            return None  # the provider gave none: unknown, not zero
        raw = completion.text or ""
        span = label_span(raw, self.field)
        return logprob_confidence(raw, completion.logprobs, span) if span else None

    async def consensus(self, provider: Provider, request: CallRequest, target: Target,
                        clock: AttemptClock, value: Any,
                        completion: Completion) -> tuple[Any, Completion, float]:
        """Self-consistency: the answer in hand plus ``samples - 1`` more at a temperature
        above zero; the majority answer and the share that agrees with it."""
        spec = self.call.confidence
        assert spec is not None
        hot = request.model_copy(update={"temperature": request.temperature or
                                         spec.temperature})
        more = await asyncio.gather(*(self.sample(provider, hot, target, clock)
                                      for _ in range(spec.samples - 1)))
        answers: list[tuple[Any, Completion | None]] = [(value, completion), *more]
        keys = [answer_key(v, self.field) if c is not None else None for v, c in answers]
        majority, rate = agreement(keys)
        for (v, c), key in zip(answers, keys, strict=True):
            if key == majority and c is not None:
                return v, c, rate
        return value, completion, rate

    async def sample(self, provider: Provider, request: CallRequest, target: Target,
                     main: AttemptClock) -> tuple[Any, Completion | None]:
        """One more answer, recorded as a ``sample`` attempt; an unusable one votes for
        nothing."""
        rt, contract = self.runtime, self.call.output
        clock = AttemptClock(index=main.next_index() if main.next_index else -1, kind="sample",
                             target=target, started_at=rt.clock.wall(), started=rt.clock.now(),
                             price=rt.price)
        try:
            completion = await _complete(provider, request, target, clock)
            raw = completion.text or ""
            value = contract.parse(raw) if contract is not None else raw.strip()
        except (ProviderError, OutputValidationError) as exc:
            self.attempts.append(clock.finish(rt.clock.now(), "error", exc))
            return None, None
        except BaseException:
            self.attempts.append(clock.finish(rt.clock.now(), "cancelled"))
            raise
        self.attempts.append(clock.finish(rt.clock.now(), "ok"))
        return value, completion

    # -- around the attempts -------------------------------------------------------------------

    def skip(self, target: Target) -> str | None:
        """Why ``target`` cannot fit in what is left of the latency budget, if it cannot."""
        rt = self.runtime
        expected = target.expected_latency_s or rt.latency.expected(target.provider,
                                                                    target.model)
        if expected is None:
            return None
        left = self.budget - (rt.clock.now() - self.start)
        if expected <= left:
            return None
        return (f"expected latency {expected:.3f}s does not fit the {max(0.0, left):.3f}s left "
                f"of the {self.budget:.3f}s latency budget")

    def tier(self, target: Target) -> int | None:
        for i, t in enumerate(self.call.targets):
            if t is target:
                return i
        return None

    def missed(self, errors: Sequence[Exception]) -> CallResult:
        """The typed miss: no value, every reason, the last unusable answer."""
        rt, call = self.runtime, self.call
        attempts = sorted(self.attempts, key=lambda a: a.index)
        reasons: list[str] = []
        raw: str | None = None
        for e in errors:
            if isinstance(e, OutputError):
                reasons.extend(getattr(e, "reasons", ()) or (str(e),))
                raw = getattr(e, "raw", None) or raw
            else:
                reasons.append(str(e))
        rejected = [a for a in attempts if a.error_kind in ("validation", "low_confidence")]
        last = rejected[-1] if rejected else attempts[-1]
        now = rt.clock.now()
        return CallResult(
            call_id=call.call_id, trace_id=call.trace_id, feature=call.feature,
            prompt_name=call.prompt_name, prompt_version=call.prompt_version,
            completion=Completion(text=raw, usage=last.usage,
                                  model=last.model_served or last.model),
            provider=last.provider, model_requested=last.model,
            model_served=last.model_served or last.model, attempts=tuple(attempts),
            latency_s=now - self.start, cost_usd=rt.total_cost(attempts),
            miss=Miss(reasons=tuple(reasons), raw=raw),
            validation="failed" if call.output is not None else None,
            validation_reasons=tuple(reasons))


def settle(call: Call, result: CallResult) -> CallResult:
    """``result`` with its output validated, without a repair: a finished stream (its text has
    reached the caller already) or a cache hit. An invalid answer is a typed miss."""
    contract = call.output
    if contract is None:
        return result
    raw = result.text
    try:
        value = contract.parse(raw)
    except OutputValidationError as exc:
        return result.model_copy(update={"miss": Miss(reasons=exc.reasons, raw=raw),
                                         "validation": "failed",
                                         "validation_reasons": exc.reasons})
    return result.model_copy(update={"value": value, "validation": "passed"})


async def _complete(provider: Provider, request: CallRequest, target: Target,
                    clock: AttemptClock) -> Completion:
    completion = await provider.complete(request)
    clock.usage = completion.usage
    clock.model_served = completion.model or target.model
    return completion


__all__ = ["CheckedCall", "request_for", "settle"]
