"""What the cache stores for one answered call, and the ``CallResult`` a hit becomes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from buttress.runtime.result import Attempt, Call, CallResult
from buttress.types import Completion, Usage, Value


class CacheEntry(Value):
    """An answer, with what it cost to get. ``completion.usage`` is zeroed: a hit spends no
    tokens; the original usage is kept in ``usage``."""

    completion: Completion
    usage: Usage
    provider: str
    model_requested: str
    model_served: str
    cost_usd: float | None
    call_id: str  # the call that paid for this answer
    stored_at: float  # wall clock
    # with an output contract: the validated value as JSON data, rebuilt on a hit
    value: Any = None
    confidence: float | None = None

    @classmethod
    def of(cls, result: CallResult, now: float) -> CacheEntry:
        return cls(completion=result.completion.model_copy(update={"usage": Usage()}),
                   usage=result.completion.usage, provider=result.provider,
                   model_requested=result.model_requested, model_served=result.model_served,
                   cost_usd=result.cost_usd, call_id=result.call_id, stored_at=now,
                   value=_jsonable(getattr(result, "value", None)),
                   confidence=getattr(result, "confidence", None))

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, raw: bytes) -> CacheEntry:
        return cls.model_validate_json(raw)

    def hit(self, call: Call, *, started_at: float, latency_s: float) -> CallResult:
        """``call`` answered by this entry: one attempt of kind ``cache``, no cost, and the
        original call's cost as what was saved."""
        attempt = Attempt(index=0, kind="cache", provider=self.provider,
                          model=self.model_requested, started_at=started_at,
                          latency_s=latency_s, status="ok", model_served=self.model_served)
        extra: dict[str, Any] = {}
        contract = getattr(call, "output", None)
        if contract is not None and self.value is not None:
            model = getattr(contract, "pydantic_model", None)
            extra = {"value": model.model_validate(self.value) if model else self.value,
                     "validation": "passed", "confidence": self.confidence}
        return CallResult(
            call_id=call.call_id, trace_id=call.trace_id, feature=call.feature,
            prompt_name=call.prompt_name, prompt_version=call.prompt_version,
            completion=self.completion, provider=self.provider,
            model_requested=self.model_requested, model_served=self.model_served,
            attempts=(attempt,), latency_s=latency_s, cost_usd=0.0,
            cost_saved_usd=self.cost_usd or 0.0, cache_hit=True, **extra)


def _jsonable(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value
