"""The knobs that make a call safe: deadlines, timeouts, retries, breaker, hedging."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Policy(BaseModel):
    """How one call is protected. Feature policies merge over the config's defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deadline_s: float = Field(30.0, gt=0, description="overall time for the call, all attempts")
    attempt_timeout_s: float = Field(20.0, gt=0, description="time for one attempt")
    ttft_timeout_s: float | None = Field(
        None, gt=0, description="streams: time to the first token of one attempt")
    max_retries: int = Field(2, ge=0, description="retries per model before falling back")
    backoff_base_s: float = Field(0.2, ge=0)
    backoff_max_s: float = Field(5.0, ge=0)
    retry_after_max_s: float = Field(
        30.0, ge=0, description="a Retry-After longer than this falls back instead of waiting")
    breaker_failures: int = Field(5, ge=1, description="consecutive failures that open it")
    breaker_cooldown_s: float = Field(30.0, gt=0, description="open time before a probe")
    hedge_after_s: float | None = Field(
        None, gt=0, description="start a second attempt if the first is slower than this")

    @model_validator(mode="after")
    def _coherent(self) -> Policy:
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError("backoff_max_s must be >= backoff_base_s")
        return self

    def merged(self, overrides: dict[str, Any] | None) -> Policy:
        """This policy with ``overrides`` applied (explicit per-feature or per-call values)."""
        if not overrides:
            return self
        return Policy.model_validate({**self.model_dump(), **overrides})
