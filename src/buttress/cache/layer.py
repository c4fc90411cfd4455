"""``CacheLayer``: the runtime's ``CallCache``, routing each call by its feature's policy.

A feature without a policy is never cached; direct model calls (no feature) neither. Lookup tries
the exact key first, then (if the feature opted in) the semantic index. A backend failure is
logged and answered as a miss: the cache may make a call cheaper, never make it fail.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import ValidationError

from buttress.cache.backend import CacheBackend, CacheBackendError
from buttress.cache.entry import CacheEntry
from buttress.cache.keys import request_key, semantic_scope
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import UsageError
from buttress.runtime.result import Call, CallResult

if TYPE_CHECKING:
    from buttress.cache.embedder import Embedder
    from buttress.cache.semantic import SemanticCache

log = logging.getLogger("buttress.cache")

_UNCACHEABLE = frozenset({"error", "content_filter"})


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """One feature's caching: entries live ``ttl_s``; a ``semantic_threshold`` (cosine
    similarity, 0..1) opts the feature into the semantic cache."""

    ttl_s: float = 3600.0
    semantic_threshold: float | None = None

    def __post_init__(self) -> None:
        if self.ttl_s <= 0:
            raise UsageError(f"cache ttl_s must be positive, got {self.ttl_s}")
        t = self.semantic_threshold
        if t is not None and not 0.0 < t <= 1.0:
            raise UsageError(f"semantic threshold must be in (0, 1], got {t}")


@dataclass(slots=True)
class CacheStats:
    exact_hits: int = 0
    semantic_hits: int = 0
    misses: int = 0
    errors: int = 0
    stores: int = 0
    scores: list[float] = field(default_factory=list)  # similarity of each semantic hit


class CacheLayer:
    def __init__(self, backend: CacheBackend, policies: Mapping[str, CachePolicy], *,
                 clock: Clock = SYSTEM_CLOCK, embedder: Embedder | None = None) -> None:
        self.backend = backend
        self.policies = dict(policies)
        self.clock = clock
        self.stats = CacheStats()
        self._embedder = embedder
        self._semantic: SemanticCache | None = None

    @property
    def semantic(self) -> SemanticCache:
        if self._semantic is None:
            from buttress.cache.embedder import WordLlamaEmbedder
            from buttress.cache.semantic import SemanticCache

            self._semantic = SemanticCache(self.backend, self._embedder or WordLlamaEmbedder())
        return self._semantic

    async def lookup(self, call: Call) -> CallResult | None:
        policy = self.policies.get(call.feature) if call.feature is not None else None
        if policy is None or call.cache != "use":
            return None
        start = self.clock.now()
        key = request_key(call)
        try:
            raw = await self.backend.get("x:" + key)
            if raw is None and policy.semantic_threshold is not None:
                raw = await self._semantic_lookup(call, policy.semantic_threshold)
            elif raw is not None:
                self.stats.exact_hits += 1
        except CacheBackendError as exc:
            self.stats.errors += 1
            log.warning("cache lookup failed for call %s: %s", call.call_id, exc)
            return None
        if raw is None:
            self.stats.misses += 1
            return None
        try:
            return CacheEntry.decode(raw).hit(call, started_at=self.clock.wall(),
                                              latency_s=self.clock.now() - start)
        except ValidationError:
            log.warning("unreadable cache entry for call %s; ignored", call.call_id)
            return None

    async def store(self, call: Call, result: CallResult) -> None:
        policy = self.policies.get(call.feature) if call.feature is not None else None
        if (policy is None or call.cache == "bypass" or result.cache_hit
                or result.finish_reason in _UNCACHEABLE):
            return
        key = request_key(call)
        try:
            await self.backend.set("x:" + key, CacheEntry.of(result, self.clock.wall()).encode(),
                                   policy.ttl_s)
            if policy.semantic_threshold is not None:
                scoped = semantic_scope(call)
                if scoped is not None:
                    await self.semantic.add(scoped[0], scoped[1], key, policy.ttl_s)
            self.stats.stores += 1
        except CacheBackendError as exc:
            self.stats.errors += 1
            log.warning("cache store failed for call %s: %s", call.call_id, exc)

    async def aclose(self) -> None:
        await self.backend.aclose()

    async def _semantic_lookup(self, call: Call, threshold: float) -> bytes | None:
        scoped = semantic_scope(call)
        if scoped is None:
            return None
        scope, text = scoped
        match = await self.semantic.lookup(scope, text, threshold)
        if match is None:
            return None
        raw = await self.backend.get("x:" + match.key)
        if raw is None:  # the answer expired before its vector did
            await self.semantic.forget(scope, match.key)
            return None
        self.stats.semantic_hits += 1
        self.stats.scores.append(match.score)
        return raw
