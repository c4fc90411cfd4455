"""The stored shape of an eval run: per-call results, per-variant summaries and the run itself.

``EvalRun`` is a versioned record (``schema_version``); it carries the scorer specs and variants
it used, so a run can be rebuilt and compared.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from buttress.evals.calibration import Agreement
from buttress.evals.dataset import ScorerSpec
from buttress.evals.scorers import Score

SCHEMA_VERSION = 1


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Variant(Model):
    """One point of the experiment matrix; ``None`` means the feature's own setting."""

    name: str = ""
    prompt_version: str | None = None
    model: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        parts = [f"prompt@{self.prompt_version}" if self.prompt_version else "",
                 f"model={self.model}" if self.model else "",
                 *(f"{k}={v}" for k, v in sorted(self.params.items()))]
        return " ".join(p for p in parts if p) or "current"

    def differences(self, other: Variant) -> list[str]:
        """The variables (prompt, model, each parameter) in which two variants differ."""
        out = [d for d, a, b in (("prompt", self.prompt_version, other.prompt_version),
                                 ("model", self.model, other.model)) if a != b]
        for key in sorted(set(self.params) | set(other.params)):
            if self.params.get(key) != other.params.get(key):
                out.append(key)
        return out


class CaseResult(Model):
    case_id: str
    variant: str
    epoch: int
    output: str | None
    error: str | None = None
    scores: dict[str, Score]
    passed: bool
    value: float
    latency_s: float = 0.0
    cost_usd: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    call_id: str | None = None


class Metric(Model):
    """A weighted score with its 95% interval over ``n`` cases."""

    value: float
    low: float
    high: float
    n: int
    method: str = "wilson"


class ClassMetrics(Model):
    precision: float
    recall: float
    support: int


class Classification(Model):
    accuracy: float
    classes: dict[str, ClassMetrics]
    confusion: dict[str, dict[str, int]]  # expected -> predicted -> count


class VariantSummary(Model):
    variant: str
    overall: Metric
    slices: dict[str, Metric]
    scorers: dict[str, float]
    classification: dict[str, Classification] = Field(default_factory=dict)
    calls: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    latency_p50_s: float = 0.0
    latency_p95_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    flaky: tuple[str, ...] = ()
    mean_case_std: float = 0.0


class JudgeReport(Model):
    """A judge's calibration as the run saw it; ``agreement`` is None when uncalibrated."""

    scorer: str
    judge_key: str
    agreement: Agreement | None = None
    acceptable: bool = False
    min_kappa: float = 0.0


class EvalRun(Model):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    created_at: float
    feature: str
    dataset: str
    dataset_version: str
    split: str
    epochs: int
    seed: int = 0
    scorers: tuple[ScorerSpec, ...]
    variants: tuple[Variant, ...]
    summaries: tuple[VariantSummary, ...]
    results: tuple[CaseResult, ...]
    case_weights: dict[str, float]
    case_tags: dict[str, tuple[str, ...]]
    judges: tuple[JudgeReport, ...] = ()
    warnings: tuple[str, ...] = ()
    outputs_hidden: bool = False
    holdout_uses: int | None = None
    duration_s: float = 0.0

    def summary(self, variant: str | None = None) -> VariantSummary:
        if variant is None:
            return self.summaries[0]
        for s in self.summaries:
            if s.variant == variant:
                return s
        raise KeyError(variant)

    def case_values(self, variant: str) -> dict[str, float]:
        """Each case's pass rate over the epochs, for paired comparisons."""
        sums: dict[str, list[float]] = {}
        for r in self.results:
            if r.variant == variant:
                sums.setdefault(r.case_id, []).append(float(r.passed))
        return {cid: sum(v) / len(v) for cid, v in sums.items()}
