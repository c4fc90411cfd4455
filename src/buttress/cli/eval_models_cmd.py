"""``buttress eval rightsize`` and ``buttress eval compare``: a feature's datasets run across
models, to pick the smallest that passes or to vet an upgrade before making it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from buttress.cli.console import out
from buttress.cli.eval_support import feature_suites, limited, run_experiment, write_reports
from buttress.cli.project import config_path, project_dir
from buttress.config import load_config
from buttress.errors import UsageError
from buttress.evals.dataset import Dataset
from buttress.evals.results import EvalRun, Variant
from buttress.evals.rightsize import rank, recommendation, upgrade
from buttress.evals.store import RUNS_DIR, RunStore

EXIT_NOT_RECOMMENDED = 1


def _models(text: str | None, configured: list[str]) -> list[str]:
    names = [m.strip() for m in (text or "").split(",") if m.strip()] or configured
    unknown = [m for m in names if m not in configured and "/" not in m]
    if unknown:
        raise UsageError(f"unknown model alias(es) {', '.join(unknown)}; configured: "
                         f"{', '.join(configured) or 'none'}")
    if len(set(names)) != len(names) or not names:
        raise UsageError(f"give distinct models, got {names}")
    return names


def _run_models(project: Path, feature: str, data: Dataset, models: list[str],
                concurrency: int | None) -> EvalRun:
    variants = [Variant(name=m, model=m) for m in models]
    run = asyncio.run(run_experiment(project, feature, data, variants,
                                     concurrency=concurrency))
    RunStore(project / RUNS_DIR).save(run)
    write_reports(project, run, None, None)
    return run


def rightsize_cmd(
        ctx: typer.Context,
        feature: Annotated[str, typer.Argument(help="A feature declared in buttress.toml.")],
        models: Annotated[str | None, typer.Option(
            help="Candidate aliases, comma-separated (default: every configured alias).")]
        = None,
        dataset: Annotated[str | None, typer.Option(
            "--dataset", "-d", help="Dataset name (default: every dataset of the feature).")]
        = None,
        min_score: Annotated[float | None, typer.Option(
            min=0.0, max=1.0, help="The quality bar (default: the suite's gate.min_score).")]
        = None,
        limit: Annotated[int | None, typer.Option(min=1, help="Cases per dataset.")] = None,
        concurrency: Annotated[int | None, typer.Option(
            min=1, help="Cases in flight (default: 1 on the in-process model, else 16).")]
        = None,
        ) -> None:
    """Rank models by cost and latency among those meeting the quality bar; recommend the
    cheapest (then fastest)."""
    project = project_dir(ctx)
    config = load_config(config_path(project))
    if feature not in config.features:
        raise UsageError(f"unknown feature {feature!r}; configured: "
                         f"{', '.join(sorted(config.features)) or 'none'}")
    candidates = _models(models, list(config.models))
    for data in feature_suites(project / "evals", feature, dataset):
        bar = min_score if min_score is not None else data.settings.gate.min_score
        if bar is None:
            raise UsageError(f"no quality bar for {data.name!r}: set gate.min_score in "
                             f"{data.path} or pass --min-score")
        run = _run_models(project, feature, limited(data, limit), candidates, concurrency)
        ranked = rank(run, bar)
        table = Table(title=f"rightsize {feature} on {data.name}@{data.version} "
                            f"(bar {bar:.0%}, run {run.run_id[:12]})")
        for col in ("#", "model", "score (95% CI)", "meets bar", "$/call", "p50 s", "p95 s",
                    "errors"):
            table.add_column(col)
        for i, c in enumerate(ranked, 1):
            table.add_row(str(i), c.model, f"{c.score:.1%} [{c.low:.1%}, {c.high:.1%}]",
                          "yes" if c.meets_bar else "no", f"{c.cost_per_call_usd:.6f}",
                          f"{c.latency_p50_s:.3f}", f"{c.latency_p95_s:.3f}", str(c.errors))
        out().print(table)
        out().print(Text(recommendation(ranked, bar), style="bold"))


def compare_cmd(
        ctx: typer.Context,
        feature: Annotated[str, typer.Argument(help="A feature declared in buttress.toml.")],
        model: Annotated[str, typer.Option("--model", help="The new model alias to vet.")],
        current: Annotated[str | None, typer.Option(
            help="The model to compare against (default: the feature's first).")] = None,
        dataset: Annotated[str | None, typer.Option(
            "--dataset", "-d", help="Dataset name (default: every dataset of the feature).")]
        = None,
        limit: Annotated[int | None, typer.Option(min=1, help="Cases per dataset.")] = None,
        concurrency: Annotated[int | None, typer.Option(
            min=1, help="Cases in flight (default: 1 on the in-process model, else 16).")]
        = None,
        ) -> None:
    """Benchmark a new model against the current one on the feature's datasets: per-slice
    scores with deltas and significance, cost and latency, and a recommendation (exit 1 when
    the new model is not recommended)."""
    project = project_dir(ctx)
    config = load_config(config_path(project))
    spec = config.features.get(feature)
    if spec is None:
        raise UsageError(f"unknown feature {feature!r}; configured: "
                         f"{', '.join(sorted(config.features)) or 'none'}")
    base = current or spec.models[0]
    _models(f"{base},{model}", list(config.models))
    recommended = True
    for data in feature_suites(project / "evals", feature, dataset):
        run = _run_models(project, feature, limited(data, limit), [base, model], concurrency)
        found = upgrade(run, base, model, data.settings.gate)
        table = Table(title=f"{model} vs {base} on {data.name}@{data.version} "
                            f"(run {run.run_id[:12]})")
        for col in ("slice", "n", base, model, "delta", "test", "p", ""):
            table.add_column(col)
        c = found.comparison
        for d in (c.overall, *c.slices):
            table.add_row(d.name, str(d.n), f"{d.baseline:.1%}", f"{d.current:.1%}",
                          f"{d.delta * 100:+.1f}", d.test, f"{d.p_value:.3f}",
                          "REGRESSED" if d.regressed else ("" if d.gated else "small"))
        out().print(table)
        old, new = run.summary(base), run.summary(model)
        out().print(f"cost {old.cost_usd:.4f} -> {new.cost_usd:.4f} $ · p50 "
                    f"{old.latency_p50_s:.3f} -> {new.latency_p50_s:.3f} s · p95 "
                    f"{old.latency_p95_s:.3f} -> {new.latency_p95_s:.3f} s")
        out().print(Text(found.verdict, style="bold green" if found.recommended
                         else "bold red"))
        recommended = recommended and found.recommended
    if not recommended:
        raise typer.Exit(EXIT_NOT_RECOMMENDED)
