"""A run against a baseline run: per-slice deltas with paired significance, and the CI gate.

Cases are paired by id (only cases both runs scored count). A slice regresses when its score
drops by more than the gate's threshold (and, if ``require_significance``, the paired test says
the drop is significant at ``alpha``). Slices smaller than ``min_slice_cases`` are reported but
never fail the gate.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from buttress.errors import UsageError
from buttress.evals.dataset import GateSettings
from buttress.evals.results import EvalRun
from buttress.evals.stats import paired_test, weighted_mean

MINUS = "\u2212"


class Delta(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    n: int
    baseline: float
    current: float
    delta: float
    test: str
    p_value: float
    regressed: bool = False
    gated: bool = True


class Comparison(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str
    baseline_id: str
    variant: str
    baseline_variant: str
    overall: Delta
    slices: tuple[Delta, ...]
    warnings: tuple[str, ...] = ()

    @property
    def regressions(self) -> list[Delta]:
        return [d for d in (self.overall, *self.slices) if d.regressed]

    @property
    def headline(self) -> str:
        """``91% (+7) overall, but refund 78% (−9)``."""
        text = f"{_pct(self.overall.current)} ({_pts(self.overall.delta)}) overall"
        bad = [d for d in self.slices if d.regressed]
        if bad:
            return text + ", but " + ", ".join(
                f"{d.name} cases {_pct(d.current)} ({_pts(d.delta)})" for d in bad)
        return text + "; no slice regressed"


def _pct(x: float) -> str:
    return f"{x * 100:.0f}%"


def _pts(delta: float) -> str:
    points = round(delta * 100)
    return f"+{points}" if points >= 0 else f"{MINUS}{-points}"


def compare(run: EvalRun, baseline: EvalRun, gate: GateSettings, *,
            variant: str | None = None, baseline_variant: str | None = None) -> Comparison:
    current_s = run.summary(variant)
    base_s = baseline.summary(baseline_variant)
    cur = run.case_values(current_s.variant)
    base = baseline.case_values(base_s.variant)
    shared = [cid for cid in cur if cid in base]
    if not shared:
        raise UsageError(f"runs {run.run_id[:12]} and {baseline.run_id[:12]} share no cases")
    warnings = []
    if run.feature != baseline.feature:
        warnings.append(f"baseline is for feature {baseline.feature!r}, this run for "
                        f"{run.feature!r}")
    if run.dataset_version != baseline.dataset_version:
        warnings.append(f"dataset changed ({baseline.dataset_version} -> {run.dataset_version}):"
                        f" only the {len(shared)} shared cases are compared")
    this_v = next(v for v in run.variants if v.label == current_s.variant)
    base_v = next(v for v in baseline.variants if v.label == base_s.variant)
    diff = this_v.differences(base_v)
    if len(diff) > 1:
        warnings.append(f"the runs' variants differ in {len(diff)} variables "
                        f"({', '.join(diff)})")

    def delta(name: str, ids: Sequence[str], threshold: float, gated: bool) -> Delta:
        weights = [run.case_weights.get(cid, 1.0) for cid in ids]
        a = [base[cid] for cid in ids]
        b = [cur[cid] for cid in ids]
        test, p = paired_test(a, b, weights, seed=run.seed)
        now, before = weighted_mean(b, weights), weighted_mean(a, weights)
        drop = before - now
        regressed = gated and drop > threshold + 1e-12 and \
            (not gate.require_significance or p < gate.alpha)
        return Delta(name=name, n=len(ids), baseline=before, current=now, delta=now - before,
                     test=test, p_value=p, regressed=regressed, gated=gated)

    overall = delta("overall", shared, gate.max_overall_drop, True)
    slices = []
    for tag in sorted({t for cid in shared for t in run.case_tags.get(cid, ())}):
        ids = [cid for cid in shared if tag in run.case_tags.get(cid, ())]
        slices.append(delta(tag, ids, gate.max_slice_drop, len(ids) >= gate.min_slice_cases))
    return Comparison(run_id=run.run_id, baseline_id=baseline.run_id,
                      variant=current_s.variant, baseline_variant=base_s.variant,
                      overall=overall, slices=tuple(slices), warnings=tuple(warnings))


def gate_failures(run: EvalRun, comparison: Comparison | None, gate: GateSettings, *,
                  force: bool = False) -> list[str]:
    """Why this run must not pass CI; empty when it passes.

    A judge whose calibration is missing or below the minimum makes the gate refuse, since its
    scores cannot be trusted, unless ``force``.
    """
    reasons = []
    for judge in run.judges:
        if not judge.acceptable and not force:
            found = (f"kappa {judge.agreement.kappa:.2f} < {judge.min_kappa:.2f}"
                     if judge.agreement else "never calibrated")
            reasons.append(f"judge {judge.scorer!r} is not trusted to gate ({found}); "
                           "calibrate it (`buttress eval calibrate`) or pass --force")
    overall = run.summaries[0].overall.value
    if gate.min_score is not None and overall < gate.min_score:
        reasons.append(f"overall {_pct(overall)} is below the minimum {_pct(gate.min_score)}")
    if comparison is not None:
        for d in comparison.regressions:
            reasons.append(f"{d.name}: {_pct(d.current)} ({_pts(d.delta)} points vs baseline, "
                           f"{d.test} p={d.p_value:.3f})")
    return reasons
