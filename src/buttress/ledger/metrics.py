"""Prometheus metrics for calls, attempts, tokens, cost, cache and the ledger queue.

``CallMetrics`` is a call hook: it observes every outcome into its own registry (never the
process-global one, so tests and several runtimes stay apart) and renders the text format.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from buttress.runtime.hooks import Outcome
from buttress.runtime.result import Call

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class CallMetrics:
    def __init__(self, *, queue_stats: Callable[[], Any] | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.calls = Counter("buttress_calls", "Calls by outcome.",
                             ["feature", "provider", "model", "status"], registry=r)
        self.errors = Counter("buttress_errors", "Failed calls by error kind.",
                              ["feature", "kind"], registry=r)
        self.attempts = Counter("buttress_attempts", "Attempts by kind and outcome.",
                                ["provider", "model", "kind", "status", "error_kind"],
                                registry=r)
        self.latency = Histogram("buttress_call_latency_seconds", "Call latency.", ["feature"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("buttress_ttft_seconds", "Time to first token of streams.",
                              ["feature"], buckets=LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("buttress_tokens", "Tokens by kind.",
                              ["feature", "model", "type"], registry=r)
        self.cost = Counter("buttress_cost_usd", "Spend in USD.", ["feature", "model"],
                            registry=r)
        self.cache_hits = Counter("buttress_cache_hits", "Calls answered from cache.",
                                  ["feature"], registry=r)
        if queue_stats is not None:
            depth = Gauge("buttress_ledger_queue_depth", "Records waiting to be written.",
                          registry=r)
            depth.set_function(lambda: float(queue_stats().depth))
            dropped = Gauge("buttress_ledger_dropped", "Records dropped, queue full.",
                            registry=r)
            dropped.set_function(lambda: float(queue_stats().dropped))

        # label lookups take a lock and hash a tuple each time: keep the children
        self._children: dict[tuple[object, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    async def before(self, call: Call) -> None:
        return None

    async def after(self, outcome: Outcome) -> None:
        self.observe(outcome)

    def observe(self, outcome: Outcome) -> None:
        feature = outcome.call.feature or ""
        result = outcome.result
        provider = result.provider if result else ""
        model = result.model_served if result else ""
        child = self._child
        child(self.calls, feature, provider, model, outcome.status).inc()
        if outcome.error is not None:
            child(self.errors, feature, getattr(outcome.error, "kind",
                                                type(outcome.error).__name__)).inc()
        for a in outcome.attempts:
            child(self.attempts, a.provider, a.model, a.kind, a.status, a.error_kind or "").inc()
        child(self.latency, feature).observe(outcome.latency_s)
        if outcome.ttft_s is not None:
            child(self.ttft, feature).observe(outcome.ttft_s)
        if result is not None:
            usage = result.total_usage
            for kind, n in (("prompt", usage.prompt_tokens), ("completion",
                            usage.completion_tokens), ("cached", usage.cached_tokens),
                            ("reasoning", usage.reasoning_tokens)):
                if n:
                    child(self.tokens, feature, model, kind).inc(n)
            if result.cost_usd:
                child(self.cost, feature, model).inc(result.cost_usd)
            if result.cache_hit:
                child(self.cache_hits, feature).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition format."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
