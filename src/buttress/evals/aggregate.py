"""From per-call results to a variant's summary: overall and per-slice scores with 95%
intervals, per-scorer means, classification metrics, cost, latency, tokens and flaky cases.

A case's score is its pass rate over the epochs (a pass is every scorer passing). Intervals are
Wilson intervals when every case is a single unweighted pass/fail, and a seeded percentile
bootstrap over cases otherwise.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from buttress.evals.dataset import Case
from buttress.evals.results import (
    CaseResult,
    Classification,
    ClassMetrics,
    Metric,
    VariantSummary,
)
from buttress.evals.stats import bootstrap_ci, percentile, weighted_mean, wilson


def metric(values: Sequence[float], weights: Sequence[float], *, seed: int = 0) -> Metric:
    value = weighted_mean(values, weights)
    if all(v in (0.0, 1.0) for v in values) and len(set(weights)) <= 1:
        low, high = wilson(sum(values), len(values))
        return Metric(value=value, low=low, high=high, n=len(values), method="wilson")
    low, high = bootstrap_ci(values, weights, seed=seed)
    return Metric(value=value, low=low, high=high, n=len(values), method="bootstrap")


def classification(pairs: Sequence[tuple[str, str]]) -> Classification:
    """Accuracy, per-class precision and recall, and the confusion matrix of (expected,
    predicted) label pairs."""
    labels = sorted({label for pair in pairs for label in pair})
    confusion = {e: dict.fromkeys(labels, 0) for e in labels}
    for expected, predicted in pairs:
        confusion[expected][predicted] += 1
    classes = {}
    for label in labels:
        tp = confusion[label][label]
        called = sum(confusion[e][label] for e in labels)
        support = sum(confusion[label].values())
        classes[label] = ClassMetrics(precision=tp / called if called else 0.0,
                                      recall=tp / support if support else 0.0, support=support)
    accuracy = sum(1 for e, p in pairs if e == p) / len(pairs) if pairs else 0.0
    return Classification(accuracy=accuracy, classes=classes, confusion=confusion)


def summarise(variant: str, results: Sequence[CaseResult], cases: Sequence[Case],
              classification_keys: Sequence[str], *, seed: int = 0) -> VariantSummary:
    by_case: dict[str, list[CaseResult]] = {}
    for r in results:
        by_case.setdefault(r.case_id, []).append(r)
    present = [c for c in cases if c.id in by_case]
    rates = {c.id: statistics.fmean(float(r.passed) for r in by_case[c.id]) for c in present}
    weights = [c.weight for c in present]
    overall = metric([rates[c.id] for c in present], weights, seed=seed)
    slices = {}
    for tag in sorted({t for c in present for t in c.tags}):
        tagged = [c for c in present if tag in c.tags]
        slices[tag] = metric([rates[c.id] for c in tagged], [c.weight for c in tagged],
                             seed=seed)
    weight_of = {c.id: c.weight for c in present}
    scorer_keys = sorted({k for r in results for k in r.scores})
    scorers = {k: weighted_mean([r.scores[k].value for r in results if k in r.scores],
                                [weight_of[r.case_id] for r in results if k in r.scores])
               for k in scorer_keys}
    classes = {}
    for key in classification_keys:
        pairs = [(s.expected_label or "", s.label or "") for r in results
                 if (s := r.scores.get(key)) is not None and s.label is not None]
        if pairs:
            classes[key] = classification(pairs)
    called = [r for r in results if r.call_id is not None]
    latencies = [r.latency_s for r in called]
    flaky = tuple(cid for cid, rs in by_case.items() if len({r.passed for r in rs}) > 1)
    stds = [statistics.pstdev([r.value for r in rs]) for rs in by_case.values() if len(rs) > 1]
    return VariantSummary(
        variant=variant, overall=overall, slices=slices, scorers=scorers,
        classification=classes, calls=len(called),
        errors=sum(1 for r in results if r.error is not None),
        cost_usd=sum(r.cost_usd or 0.0 for r in results),
        latency_p50_s=percentile(latencies, 0.5), latency_p95_s=percentile(latencies, 0.95),
        prompt_tokens=sum(r.prompt_tokens for r in results),
        completion_tokens=sum(r.completion_tokens for r in results),
        flaky=flaky, mean_case_std=statistics.fmean(stds) if stds else 0.0)
