"""Runaway detection: a feature whose spend or call rate suddenly jumps far above its own norm.

Each feature keeps per-bucket (default one minute) totals of spend and calls in a bounded ring.
The last ``window_minutes`` (the current, partial bucket included) are compared with the
``baseline_minutes`` before them, scaled to one window: an alert fires when the window exceeds
``factor`` times that baseline. The baseline never counts for less than the floors, so a quiet
feature does not alert on a handful of cents. A feature alerts only once it has
``min_baseline_minutes`` of history before its window (its first, partial bucket not counted), so
a restart does not page anyone; a runaway from a cold start is left to the hard budgets. Each
(feature, metric) alerts at most once per ``cooldown_s``.

Observing is O(1); the sums are recomputed once per bucket per feature.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from pydantic import Field, model_validator

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.costs.alerts import Alert, AlertMetric, AlertSink, LogAlertSink
from buttress.types import Value


class RunawayPolicy(Value):
    window_minutes: float = Field(default=5, gt=0)
    baseline_minutes: float = Field(default=60, gt=0)
    #: no alerts until a feature has this much baseline history (a warm-up after start)
    min_baseline_minutes: float = Field(default=10, gt=0)
    factor: float = Field(default=5.0, gt=1, allow_inf_nan=False)
    #: the baseline spend per window is taken as at least this (USD)
    min_window_spend_usd: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    #: the baseline call count per window is taken as at least this
    min_window_calls: float = Field(default=100, ge=0, allow_inf_nan=False)
    cooldown_s: float = Field(default=900, ge=0)
    bucket_s: float = Field(default=60, gt=0)

    @model_validator(mode="after")
    def _whole_buckets(self) -> RunawayPolicy:
        if self.min_baseline_minutes > self.baseline_minutes:
            raise ValueError("min_baseline_minutes must not exceed baseline_minutes")
        for name in ("window_minutes", "baseline_minutes", "min_baseline_minutes"):
            buckets = getattr(self, name) * 60 / self.bucket_s
            if abs(buckets - round(buckets)) > 1e-9 or round(buckets) < 1:
                raise ValueError(f"{name} must be a whole number of {self.bucket_s:g}s buckets")
        return self

    @property
    def window_buckets(self) -> int:
        return round(self.window_minutes * 60 / self.bucket_s)

    @property
    def baseline_buckets(self) -> int:
        return round(self.baseline_minutes * 60 / self.bucket_s)

    @property
    def min_baseline_buckets(self) -> int:
        return round(self.min_baseline_minutes * 60 / self.bucket_s)


@dataclass(slots=True)
class _Feature:
    first_bucket: int  # partial: the feature was first seen part-way through it
    bucket: int
    history: deque[tuple[float, int]]  # completed buckets, oldest first
    spend: float = 0.0  # current bucket
    calls: int = 0
    recent_spend: float = 0.0  # the completed buckets inside the window
    recent_calls: int = 0
    baseline_spend: float | None = None  # per window; None while there is no history yet
    baseline_calls: float | None = None
    last_alert: dict[str, float] = field(default_factory=dict)


class RunawayDetector:
    """Watches per-feature spend and call rates; ``observe`` once per finished call."""

    def __init__(self, policy: RunawayPolicy | None = None, *, clock: Clock = SYSTEM_CLOCK,
                 alert_sink: AlertSink | None = None) -> None:
        self._policy = policy if policy is not None else RunawayPolicy()
        self._clock = clock
        self._sink: AlertSink = alert_sink if alert_sink is not None else LogAlertSink()
        self._features: dict[str, _Feature] = {}
        self._lock = threading.Lock()
        self._recent_len = self._policy.window_buckets - 1
        self._history_len = self._recent_len + self._policy.baseline_buckets

    @property
    def policy(self) -> RunawayPolicy:
        return self._policy

    def observe(self, feature: str, cost_usd: float | None = None) -> None:
        """Count one call of ``feature`` and its cost (``None`` when unpriced)."""
        now = self._clock.now()
        bucket = int(now // self._policy.bucket_s)
        alerts: list[Alert] = []
        with self._lock:
            state = self._features.get(feature)
            if state is None:
                state = _Feature(bucket, bucket, deque(maxlen=self._history_len))
                self._features[feature] = state
            elif bucket != state.bucket:
                self._roll(state, bucket)
            if cost_usd is not None and cost_usd > 0:
                state.spend += cost_usd
            state.calls += 1
            self._check(feature, state, "spend_usd", state.recent_spend + state.spend,
                        state.baseline_spend, self._policy.min_window_spend_usd, now, alerts)
            self._check(feature, state, "calls", state.recent_calls + state.calls,
                        state.baseline_calls, self._policy.min_window_calls, now, alerts)
        for alert in alerts:
            self._sink.send(alert)

    def _roll(self, state: _Feature, bucket: int) -> None:
        if bucket < state.bucket:  # the clock went backwards: keep counting in the current one
            return
        state.history.append((state.spend, state.calls))
        for _ in range(min(bucket - state.bucket - 1, self._history_len)):
            state.history.append((0.0, 0))  # idle buckets
        state.bucket, state.spend, state.calls = bucket, 0.0, 0
        past = list(state.history)
        split = max(0, len(past) - self._recent_len)
        recent = past[split:]
        # past[i] is bucket number (bucket - len(past) + i); skip the first, partial one
        skip = max(0, state.first_bucket - (bucket - len(past)) + 1)
        baseline = past[skip:split]
        state.recent_spend = sum(s for s, _ in recent)
        state.recent_calls = sum(c for _, c in recent)
        if len(baseline) >= self._policy.min_baseline_buckets:
            scale = self._policy.window_buckets / len(baseline)
            state.baseline_spend = sum(s for s, _ in baseline) * scale
            state.baseline_calls = sum(c for _, c in baseline) * scale
        else:
            state.baseline_spend = state.baseline_calls = None

    def _check(self, feature: str, state: _Feature, metric: AlertMetric, value: float,
               baseline: float | None, floor: float, now: float, alerts: list[Alert]) -> None:
        if baseline is None:
            return
        threshold = self._policy.factor * max(baseline, floor)
        if value <= threshold:
            return
        last = state.last_alert.get(metric)
        if last is not None and now - last < self._policy.cooldown_s:
            return
        state.last_alert[metric] = now
        norm = f"trailing baseline {baseline:.6g} per window"
        alerts.append(Alert(
            kind="runaway", scope=f"feature:{feature}",
            period=f"last {self._policy.window_minutes:g}m", value=value, threshold=threshold,
            metric=metric, at=self._clock.wall(),
            detail=f"more than {self._policy.factor:g}x the norm ({norm}, "
                   f"floor {floor:g})"))
