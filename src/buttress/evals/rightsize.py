"""Right-sizing and upgrades, read from a run whose variants are models.

``rank``: among the models whose overall score meets the quality bar, the cheapest first (cost
per call), then the fastest (p50 latency); the recommendation is the first of them. Models
below the bar follow, best score first, so the table shows what each would cost in quality.

``upgrade``: a candidate model against the current one on the same cases (paired), per slice
with significance, cost and latency, and a recommendation that says why.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from buttress.evals.compare import Comparison, compare
from buttress.evals.dataset import GateSettings
from buttress.evals.results import EvalRun, VariantSummary


class Candidate(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    score: float
    low: float
    high: float
    meets_bar: bool
    cost_per_call_usd: float
    latency_p50_s: float
    latency_p95_s: float
    errors: int


def _per_call(s: VariantSummary) -> float:
    return s.cost_usd / s.calls if s.calls else 0.0


def rank(run: EvalRun, bar: float) -> list[Candidate]:
    """Every variant of ``run`` as a candidate, best recommendation first."""
    out = [Candidate(model=s.variant, score=s.overall.value, low=s.overall.low,
                     high=s.overall.high, meets_bar=s.overall.value >= bar,
                     cost_per_call_usd=_per_call(s), latency_p50_s=s.latency_p50_s,
                     latency_p95_s=s.latency_p95_s, errors=s.errors) for s in run.summaries]
    return sorted(out, key=lambda c: (not c.meets_bar,
                                      *((c.cost_per_call_usd, c.latency_p50_s, -c.score)
                                        if c.meets_bar else (-c.score, c.cost_per_call_usd))))


def recommendation(ranked: list[Candidate], bar: float) -> str:
    passing = [c for c in ranked if c.meets_bar]
    if not passing:
        best = ranked[0] if ranked else None
        return (f"no model meets the quality bar of {bar:.0%}" +
                (f"; the best, {best.model}, scores {best.score:.1%}" if best else ""))
    pick = passing[0]
    return (f"use {pick.model}: {pick.score:.1%} (bar {bar:.0%}) at "
            f"${pick.cost_per_call_usd:.6f}/call, p50 {pick.latency_p50_s:.3f} s"
            + (f"; {len(passing) - 1} other model(s) also pass but cost or take more"
               if len(passing) > 1 else ""))


class Upgrade(BaseModel):
    model_config = ConfigDict(frozen=True)

    current: str
    candidate: str
    comparison: Comparison
    cost_per_call_delta_usd: float
    latency_p50_delta_s: float
    latency_p95_delta_s: float
    recommended: bool
    verdict: str


def upgrade(run: EvalRun, current: str, candidate: str, gate: GateSettings) -> Upgrade:
    """``candidate`` against ``current`` (two variants of ``run``, labelled by model)."""
    comparison = compare(run, run, gate, variant=candidate, baseline_variant=current)
    now, before = run.summary(candidate), run.summary(current)
    bad = comparison.regressions
    below = gate.min_score is not None and now.overall.value < gate.min_score
    cost = _per_call(now) - _per_call(before)
    p50 = now.latency_p50_s - before.latency_p50_s
    if bad:
        verdict = (f"do not upgrade: {comparison.headline}")
    elif below:
        verdict = (f"do not upgrade: {candidate} scores {now.overall.value:.1%}, below the "
                   f"bar {gate.min_score:.0%}")
    else:
        verdict = (f"upgrade to {candidate}: {comparison.headline}; cost "
                   f"{cost:+.6f} $/call, p50 latency {p50:+.3f} s")
    return Upgrade(current=current, candidate=candidate, comparison=comparison,
                   cost_per_call_delta_usd=cost, latency_p50_delta_s=p50,
                   latency_p95_delta_s=now.latency_p95_s - before.latency_p95_s,
                   recommended=not bad and not below, verdict=verdict)
