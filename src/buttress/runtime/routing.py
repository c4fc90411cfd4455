"""Cascades: when a tier's answer escalates to the next model, and which tiers fit the time left.

A feature lists its models cheap first. A tier escalates when its answer fails the output
contract (``on_invalid``) or its confidence is under ``min_confidence`` (the last tier's answer
is kept whatever its confidence; an unknown confidence never escalates). Before each tier the
runtime checks the latency budget: a tier whose expected latency (``[models.X]
expected_latency_s``, else the runtime's running average for that model) exceeds the time left
is skipped and recorded as a skipped attempt.
"""

from __future__ import annotations

from pydantic import Field

from buttress.types import Value


class Routing(Value):
    on_invalid: bool = Field(True, description="a tier whose answer fails validation escalates")
    min_confidence: float | None = Field(None, ge=0, le=1,
                                         description="a tier under this escalates")
    latency_budget_s: float | None = Field(None, gt=0,
                                           description="skip tiers that cannot fit in it")


class LatencyBook:
    """Exponentially weighted average latency per (provider, model), in seconds."""

    __slots__ = ("_alpha", "_seen")

    def __init__(self, alpha: float = 0.3) -> None:
        self._alpha = alpha
        self._seen: dict[tuple[str, str], float] = {}

    def observe(self, provider: str, model: str, seconds: float) -> None:
        key = (provider, model)
        old = self._seen.get(key)
        self._seen[key] = seconds if old is None else old + self._alpha * (seconds - old)

    def expected(self, provider: str, model: str) -> float | None:
        return self._seen.get((provider, model))


__all__ = ["LatencyBook", "Routing"]
