"""A self-contained HTML report of a run: inline CSS and inline SVG charts (overall and per-slice
scores with 95% interval whiskers, cost and latency per variant), then the tables.

Nothing is loaded from the network and there is no script, so the file can be attached to a CI
run or mailed and still render. Every text from a run is escaped. Holdout runs show no
per-case outputs unless the run itself kept them.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from buttress.evals.compare import Comparison
from buttress.evals.results import EvalRun, Metric

_PALETTE = ("#3b6fb6", "#e08a2c", "#4a9d5b", "#b0413e", "#7e5aa8", "#5f6b7a")
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;
color:#1d2330;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #dde;padding:.25rem .6rem;
text-align:left;vertical-align:top}th{background:#f4f5f8}.num{text-align:right}
.bad{color:#b0413e;font-weight:600}.good{color:#2f7d45;font-weight:600}.muted{color:#778}
pre{white-space:pre-wrap;margin:0;max-width:34rem;font-size:12px}
.legend span{display:inline-block;margin-right:1rem}.legend i{display:inline-block;width:.8rem;
height:.8rem;margin-right:.3rem;vertical-align:middle}svg text{font-size:11px;fill:#1d2330}
"""


def _pct(m: Metric) -> str:
    return f"{m.value:.1%} [{m.low:.1%}, {m.high:.1%}]"


def _color(i: int) -> str:
    return _PALETTE[i % len(_PALETTE)]


def score_chart(groups: Sequence[tuple[str, Sequence[Metric | None]]], *,
                title: str) -> str:
    """Grouped horizontal bars on a 0–100% axis, one bar per variant in each group, each with
    a whisker from its interval's low to high end."""
    n_var = max((len(ms) for _, ms in groups), default=1)
    bar_h, gap, label_w, width = 14, 10, 150, 420
    group_h = n_var * bar_h + gap
    height = len(groups) * group_h + 30
    parts = [f'<svg role="img" aria-label="{escape(title)}" width="{label_w + width + 70}" '
             f'height="{height}" xmlns="http://www.w3.org/2000/svg">']
    for tick in (0, 25, 50, 75, 100):
        x = label_w + width * tick / 100
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 18}" '
                     'stroke="#e3e5ec"/>')
        parts.append(f'<text x="{x:.1f}" y="{height - 4}" text-anchor="middle">{tick}%</text>')
    for g, (name, metrics) in enumerate(groups):
        top = g * group_h
        parts.append(f'<text x="{label_w - 6}" y="{top + group_h / 2 + 2:.1f}" '
                     f'text-anchor="end">{escape(name)}</text>')
        for v, m in enumerate(metrics):
            if m is None:
                continue
            y = top + v * bar_h
            w = width * m.value
            lo, hi = label_w + width * m.low, label_w + width * m.high
            mid = y + bar_h / 2
            parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 2}" '
                         f'fill="{_color(v)}"><title>{escape(_pct(m))} n={m.n}</title></rect>')
            parts.append(f'<line class="ci" x1="{lo:.1f}" y1="{mid:.1f}" x2="{hi:.1f}" '
                         f'y2="{mid:.1f}" stroke="#1d2330" stroke-width="1.2"/>')
            for x in (lo, hi):
                parts.append(f'<line x1="{x:.1f}" y1="{y + 2}" x2="{x:.1f}" '
                             f'y2="{y + bar_h - 4}" stroke="#1d2330" stroke-width="1.2"/>')
            parts.append(f'<text x="{label_w + width + 6}" y="{mid + 4:.1f}">'
                         f'{m.value:.0%}</text>')
    parts.append("</svg>")
    return "".join(parts)


def value_chart(values: Sequence[tuple[str, float]], *, unit: str, title: str) -> str:
    """Horizontal bars scaled to the largest value (cost, latency)."""
    top = max((v for _, v in values), default=0.0) or 1.0
    bar_h, label_w, width = 18, 150, 300
    height = len(values) * bar_h + 4
    parts = [f'<svg role="img" aria-label="{escape(title)}" width="{label_w + width + 110}" '
             f'height="{height}" xmlns="http://www.w3.org/2000/svg">']
    for i, (name, value) in enumerate(values):
        y = i * bar_h
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">'
                     f'{escape(name)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 2}" width="{width * value / top:.1f}" '
                     f'height="{bar_h - 4}" fill="{_color(i)}"/>')
        parts.append(f'<text x="{label_w + width * value / top + 6:.1f}" y="{y + 13}">'
                     f'{value:.4g} {escape(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Cells are HTML already (escape text before passing it)."""
    out = ["<table><tr>", *(f"<th>{h}</th>" for h in head), "</tr>"]
    for row in rows:
        out += ["<tr>", *(f"<td>{c}</td>" for c in row), "</tr>"]
    out.append("</table>")
    return "".join(out)


def to_html(run: EvalRun, comparison: Comparison | None = None,
            gate: list[str] | None = None) -> str:
    variants = [s.variant for s in run.summaries]
    e = escape
    body = [f"<h1>Eval run {e(run.run_id[:12])} · {e(run.feature)} on "
            f"{e(run.dataset)}@{e(run.dataset_version)} ({e(run.split)})</h1>",
            f'<p class="muted">{len(run.case_weights)} cases, {run.epochs} epoch(s), '
            f"{run.duration_s:.1f} s; scorers: "
            + ", ".join(e(s.key) for s in run.scorers) + "</p>"]
    if run.holdout_uses is not None:
        body.append(f'<p class="bad">Holdout: use number {run.holdout_uses} of the sealed '
                    "split.</p>")
    if gate is not None:
        body.append('<h2>Gate: <span class="good">PASSED</span></h2>' if not gate else
                    '<h2>Gate: <span class="bad">FAILED</span></h2><ul>'
                    + "".join(f"<li>{e(r)}</li>" for r in gate) + "</ul>")
    if comparison is not None:
        body.append(f"<p><b>{e(comparison.headline)}</b> (against "
                    f"{e(comparison.baseline_id[:12])})</p>")
    body.append('<div class="legend">' + "".join(
        f'<span><i style="background:{_color(i)}"></i>{e(v)}</span>'
        for i, v in enumerate(variants)) + "</div>")
    body += ["<h2>Overall score (95% CI)</h2>",
             score_chart([("overall", [s.overall for s in run.summaries])],
                         title="overall score")]
    slices = sorted({t for s in run.summaries for t in s.slices})
    if slices:
        body += ["<h2>Score by slice (95% CI)</h2>",
                 score_chart([(t, [s.slices.get(t) for s in run.summaries]) for t in slices],
                             title="score by slice")]
    body += ["<h2>Cost and latency</h2>",
             value_chart([(s.variant, s.cost_usd) for s in run.summaries], unit="$",
                         title="cost"),
             value_chart([(f"{s.variant} p50", s.latency_p50_s) for s in run.summaries]
                         + [(f"{s.variant} p95", s.latency_p95_s) for s in run.summaries],
                         unit="s", title="latency")]
    body.append("<h2>Results</h2>" + _table(
        ["variant", "score (95% CI)", "cost $", "p50 s", "p95 s", "tokens in/out", "errors",
         "flaky"],
        [[e(s.variant), _pct(s.overall), f"{s.cost_usd:.4f}", f"{s.latency_p50_s:.3f}",
          f"{s.latency_p95_s:.3f}", f"{s.prompt_tokens}/{s.completion_tokens}",
          str(s.errors), e(", ".join(s.flaky))] for s in run.summaries]))
    if slices:
        body.append("<h2>Slices</h2>" + _table(["slice", *map(e, variants)], [
            [e(t), *(f"{_pct(s.slices[t])} n={s.slices[t].n}" if t in s.slices else "-"
                     for s in run.summaries)] for t in slices]))
    if comparison is not None:
        body.append("<h2>Against the baseline</h2>" + _table(
            ["slice", "n", "baseline", "now", "delta", "test", "p", ""],
            [[e(d.name), str(d.n), f"{d.baseline:.1%}", f"{d.current:.1%}",
              f"{d.delta * 100:+.1f}", d.test, f"{d.p_value:.3f}",
              '<span class="bad">REGRESSED</span>' if d.regressed else
              ("" if d.gated else "too small to gate")]
             for d in (comparison.overall, *comparison.slices)]))
    for s in run.summaries:
        for key, c in s.classification.items():
            body.append(f"<h2>{e(key)} ({e(s.variant)}): accuracy {c.accuracy:.1%}</h2>"
                        + _table(["class", "precision", "recall", "support"],
                                 [[e(label), f"{m.precision:.1%}", f"{m.recall:.1%}",
                                   str(m.support)] for label, m in c.classes.items()]))
    for j in run.judges:
        state = (f"accuracy {j.agreement.accuracy:.1%}, kappa {j.agreement.kappa:.3f}"
                 if j.agreement else "not calibrated")
        body.append(f"<p>Judge {e(j.scorer)}: {e(state)}</p>")
    body += [f'<p class="bad">warning: {e(w)}</p>' for w in run.warnings]
    if run.outputs_hidden:
        body.append('<p class="muted">Per-case outputs hidden (holdout): aggregates only.</p>')
    else:
        body.append("<h2>Cases</h2>" + _table(
            ["case", "variant", "epoch", "pass", "output", "scores"],
            [[e(r.case_id), e(r.variant), str(r.epoch),
              '<span class="good">pass</span>' if r.passed else '<span class="bad">fail</span>',
              f"<pre>{e(r.output if r.output is not None else r.error or '')}</pre>",
              "<br>".join(f"{e(k)}: {sc.value:.2f} {e(sc.detail)}"
                          for k, sc in r.scores.items())]
             for r in run.results]))
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>eval {e(run.run_id[:12])}</title><style>{_CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")
