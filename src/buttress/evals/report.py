"""Reports of a run (and its comparison with a baseline): JSON for machines, Markdown for
people. Holdout runs never show per-case outputs here unless the run itself kept them.
"""

from __future__ import annotations

import json
from typing import Any

from buttress.evals.compare import Comparison
from buttress.evals.results import EvalRun, Metric


def to_json(run: EvalRun, comparison: Comparison | None = None,
            gate: list[str] | None = None) -> str:
    data: dict[str, Any] = {"run": run.model_dump(mode="json")}
    if comparison is not None:
        data["comparison"] = {**comparison.model_dump(mode="json"),
                              "headline": comparison.headline}
    if gate is not None:
        data["gate"] = {"passed": not gate, "failures": gate}
    return json.dumps(data, indent=1)


def pct(m: Metric) -> str:
    return f"{m.value:.1%} [{m.low:.1%}, {m.high:.1%}]"


def to_markdown(run: EvalRun, comparison: Comparison | None = None,
                gate: list[str] | None = None) -> str:
    lines = [f"# Eval run {run.run_id[:12]}: {run.feature} on {run.dataset}", "",
             f"- dataset `{run.dataset}` version `{run.dataset_version}`, split `{run.split}`"
             f", {len(run.case_weights)} cases, {run.epochs} epoch(s)",
             "- scorers: " + ", ".join(
                 f"`{s.key}`" + (f" {json.dumps(s.params)}" if s.params else "")
                 for s in run.scorers)]
    if run.holdout_uses is not None:
        lines.append(f"- **holdout**: this is use number {run.holdout_uses} of the sealed split")
    if run.outputs_hidden:
        lines.append("- per-case outputs hidden (holdout): aggregates only")
    lines += ["", "## Results", "",
              "| variant | score (95% CI) | cost $ | p50 s | p95 s | tokens in/out | errors |",
              "|---|---|---|---|---|---|---|"]
    for s in run.summaries:
        lines.append(f"| {s.variant} | {pct(s.overall)} | {s.cost_usd:.4f} | "
                     f"{s.latency_p50_s:.3f} | {s.latency_p95_s:.3f} | "
                     f"{s.prompt_tokens}/{s.completion_tokens} | {s.errors} |")
    slices = sorted({t for s in run.summaries for t in s.slices})
    if slices:
        lines += ["", "## Slices", "", "| slice | " + " | ".join(
            s.variant for s in run.summaries) + " |",
            "|---|" + "---|" * len(run.summaries)]
        for tag in slices:
            cells = [pct(s.slices[tag]) + f" n={s.slices[tag].n}" if tag in s.slices else "-"
                     for s in run.summaries]
            lines.append(f"| {tag} | " + " | ".join(cells) + " |")
    for s in run.summaries:
        for key, c in s.classification.items():
            lines += ["", f"## Classification `{key}` ({s.variant}): accuracy "
                      f"{c.accuracy:.1%}", "", "| class | precision | recall | support |",
                      "|---|---|---|---|"]
            lines += [f"| {label} | {m.precision:.1%} | {m.recall:.1%} | {m.support} |"
                      for label, m in c.classes.items()]
        if s.flaky:
            lines += ["", f"Flaky cases ({s.variant}): " + ", ".join(s.flaky)]
    for j in run.judges:
        state = (f"accuracy {j.agreement.accuracy:.1%}, kappa {j.agreement.kappa:.3f} "
                 f"(n={j.agreement.n})" if j.agreement else "NOT CALIBRATED")
        lines.append(f"\nJudge `{j.scorer}` calibration: {state}"
                     + ("" if j.acceptable else f" — below the minimum kappa {j.min_kappa}"))
    if comparison is not None:
        lines += ["", f"## Against baseline {comparison.baseline_id[:12]}", "",
                  f"**{comparison.headline}**", "",
                  "| slice | n | baseline | now | delta | test | p | |",
                  "|---|---|---|---|---|---|---|---|"]
        for d in (comparison.overall, *comparison.slices):
            flag = "REGRESSED" if d.regressed else ("" if d.gated else "(too small to gate)")
            lines.append(f"| {d.name} | {d.n} | {d.baseline:.1%} | {d.current:.1%} | "
                         f"{d.delta * 100:+.1f} | {d.test} | {d.p_value:.3f} | {flag} |")
        lines += [f"- warning: {w}" for w in comparison.warnings]
    lines += [f"- warning: {w}" for w in run.warnings]
    if gate is not None:
        lines += ["", "## Gate: " + ("PASSED" if not gate else "FAILED")]
        lines += [f"- {reason}" for reason in gate]
    return "\n".join(lines) + "\n"
