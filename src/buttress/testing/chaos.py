"""Fault injection around ANY provider: error rates by kind, latency, stalls, broken streams.

Used by tests, benchmarks, the demo and through config (``[providers.NAME.chaos]``). With the same
seed and the same sequence of requests it injects the same faults.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import (
    MalformedResponse,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from buttress.providers.base import Provider
from buttress.types import CallRequest, Completion, StreamChunk

FaultKind = Literal["rate_limit", "server_error", "unavailable", "timeout", "reset", "malformed"]


class Latency(BaseModel):
    """Added latency: ``fixed`` (p50), ``uniform`` (0..p99) or ``lognormal`` (p50 and p99)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    distribution: Literal["fixed", "uniform", "lognormal"] = "lognormal"
    p50_ms: float = Field(0.0, ge=0)
    p99_ms: float = Field(0.0, ge=0)

    def sample(self, rng: random.Random) -> float:
        if self.p50_ms <= 0 and self.p99_ms <= 0:
            return 0.0
        if self.distribution == "fixed":
            return self.p50_ms / 1000
        if self.distribution == "uniform":
            return rng.uniform(0, max(self.p50_ms, self.p99_ms)) / 1000
        median = max(self.p50_ms, 1e-3)
        # p99 = median * exp(2.326 sigma)
        sigma = math.log(max(self.p99_ms, median) / median) / 2.326
        return rng.lognormvariate(math.log(median), sigma) / 1000


class ChaosSettings(BaseModel):
    """What to inject. ``error_rate`` of attempts fail, split between ``kinds`` by weight."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 0
    error_rate: float = Field(0.0, ge=0, le=1)
    kinds: dict[FaultKind, float] = Field(default_factory=lambda: {  # type: ignore[arg-type]
        "rate_limit": 1.0, "server_error": 1.0, "unavailable": 1.0, "timeout": 1.0,
        "reset": 1.0})
    retry_after_s: float = Field(0.05, ge=0, description="Retry-After sent with injected 429s")
    timeout_hang_s: float = Field(
        3600.0, gt=0, description="an injected timeout hangs this long (the runtime cuts it)")
    latency: Latency = Latency()
    # streams only
    stall_rate: float = Field(0.0, ge=0, le=1, description="streams that hang mid-way")
    disconnect_rate: float = Field(0.0, ge=0, le=1, description="streams cut mid-way")
    malformed_chunk_rate: float = Field(0.0, ge=0, le=1, description="streams with a bad chunk")

    @model_validator(mode="after")
    def _weights(self) -> ChaosSettings:
        if self.error_rate and not any(w > 0 for w in self.kinds.values()):
            raise ValueError("kinds needs at least one positive weight when error_rate > 0")
        return self


class ChaosProvider(Provider):
    """Wraps ``inner`` and injects faults drawn from a seeded generator."""

    def __init__(self, inner: Provider, settings: ChaosSettings, *,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.inner = inner
        self.name = inner.name
        self.settings = settings
        self.clock = clock
        self._rng = random.Random(settings.seed)
        self.injected: dict[str, int] = {}

    def _count(self, kind: str) -> None:
        self.injected[kind] = self.injected.get(kind, 0) + 1

    def _draw_fault(self) -> FaultKind | None:
        s = self.settings
        if s.error_rate <= 0 or self._rng.random() >= s.error_rate:
            return None
        kinds = [k for k, w in s.kinds.items() if w > 0]
        return self._rng.choices(kinds, weights=[s.kinds[k] for k in kinds])[0]

    async def _fault(self, kind: FaultKind, model: str) -> ProviderError:
        self._count(kind)
        kw: dict[str, Any] = {"provider": self.name, "model": model}
        if kind == "rate_limit":
            return RateLimited("chaos: rate limited", status=429,
                               retry_after=self.settings.retry_after_s, **kw)
        if kind == "server_error":
            return ProviderUnavailable("chaos: internal server error", status=500, **kw)
        if kind == "unavailable":
            return ProviderUnavailable("chaos: service unavailable", status=503, **kw)
        if kind == "reset":
            return ProviderUnavailable("chaos: connection reset by peer", **kw)
        if kind == "malformed":
            return MalformedResponse("chaos: response body is not JSON: '{\"choices\": [{'",
                                     **kw)
        # a timeout is a hang: the runtime's attempt timeout is what ends it
        await self.clock.sleep(self.settings.timeout_hang_s)
        return ProviderTimeout("chaos: upstream never answered", **kw)

    async def complete(self, request: CallRequest) -> Completion:
        fault = self._draw_fault()
        delay = self.settings.latency.sample(self._rng)
        if delay:
            await self.clock.sleep(delay)
        if fault is not None:
            raise await self._fault(fault, request.model)
        return await self.inner.complete(request)

    async def stream(self, request: CallRequest) -> AsyncIterator[StreamChunk]:
        s = self.settings
        fault = self._draw_fault()
        delay = s.latency.sample(self._rng)
        r = self._rng.random()
        midway: Literal["stall", "disconnect", "malformed"] | None = (
            "stall" if r < s.stall_rate else
            "disconnect" if r < s.stall_rate + s.disconnect_rate else
            "malformed" if r < s.stall_rate + s.disconnect_rate + s.malformed_chunk_rate else
            None)
        if delay:
            await self.clock.sleep(delay)
        if fault is not None:
            raise await self._fault(fault, request.model)
        inner = self.inner.stream(request)
        sent = 0
        try:
            async for chunk in inner:
                if midway is not None and sent >= 1 and chunk.has_content:
                    self._count(f"stream_{midway}")
                    if midway == "stall":
                        await self.clock.sleep(s.timeout_hang_s)
                    if midway == "malformed":
                        raise MalformedResponse("chaos: undecodable stream chunk 'data: {\"ch'",
                                                provider=self.name, model=request.model)
                    raise ProviderUnavailable("chaos: stream disconnected",
                                              provider=self.name, model=request.model)
                if chunk.has_content:
                    sent += 1
                yield chunk
        finally:
            await inner.aclose()  # type: ignore[attr-defined]

    async def aclose(self) -> None:
        await self.inner.aclose()
