"""``buttress eval``: run a feature's datasets (with a baseline and a CI gate), calibrate judges,
list stored runs; ``rightsize``/``compare`` and ``sample`` live in their own modules."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from buttress.cli.console import err, out
from buttress.cli.eval_models_cmd import compare_cmd, rightsize_cmd
from buttress.cli.eval_sample_cmd import sample_cmd
from buttress.cli.eval_support import (
    CALIBRATION_DIR,
    limited,
    load_suite,
    run_experiment,
    write_reports,
)
from buttress.cli.project import open_client, project_dir
from buttress.errors import UsageError
from buttress.evals.calibration import CalibrationStore, calibrate
from buttress.evals.compare import Comparison, compare, gate_failures
from buttress.evals.dataset import find_dataset
from buttress.evals.experiment import parse_variant
from buttress.evals.holdout import LOCK_NAME, HoldoutLock
from buttress.evals.judge import LLMJudge
from buttress.evals.report import pct
from buttress.evals.results import EvalRun
from buttress.evals.scorers import ScorerContext, default_registry
from buttress.evals.store import RUNS_DIR, RunStore

EXIT_GATE = 1

app = typer.Typer(name="eval", no_args_is_help=True, add_completion=False,
                  help="Evals: run datasets against a feature, compare, gate, calibrate judges.")
app.command("rightsize")(rightsize_cmd)
app.command("compare")(compare_cmd)
app.command("sample")(sample_cmd)


@app.command("run")
def run(ctx: typer.Context,
        feature: Annotated[str, typer.Argument(help="A feature declared in buttress.toml.")],
        dataset: Annotated[str | None, typer.Option(
            "--dataset", "-d", help="Dataset name under evals/ (default: the feature's).")]
        = None,
        variant: Annotated[list[str] | None, typer.Option(
            "--variant", help="[NAME:]prompt=VERSION,model=ALIAS,PARAM=VALUE (repeatable).",
            show_default=False)] = None,
        epochs: Annotated[int, typer.Option(min=1, help="Trials per case.")] = 1,
        concurrency: Annotated[int | None, typer.Option(
            min=1, help="Cases in flight (default: 1 on the in-process model, else 16).")]
        = None,
        baseline: Annotated[str | None, typer.Option(
            help="A stored run id (prefix) or 'latest' to compare with.")] = None,
        gate: Annotated[bool, typer.Option(
            "--gate", help="Exit 1 on a regression beyond the dataset's gate thresholds.")]
        = False,
        force: Annotated[bool, typer.Option(
            "--force", help="Gate even on an uncalibrated or untrusted judge.")] = False,
        holdout: Annotated[bool, typer.Option(
            "--holdout", help="Run the sealed holdout split (counted).")] = False,
        show_outputs: Annotated[bool, typer.Option(
            "--show-holdout-outputs", help="Keep per-case holdout outputs.")] = False,
        reseal: Annotated[bool, typer.Option(
            "--reseal", help="Accept an edited holdout and seal it again.")] = False,
        json_path: Annotated[Path | None, typer.Option("--json", help="Write JSON here.")]
        = None,
        markdown_path: Annotated[Path | None, typer.Option(
            "--markdown", help="Write Markdown here.")] = None,
        html_path: Annotated[Path | None, typer.Option(
            "--html", help="Write the HTML report (with charts) here.")] = None,
        limit: Annotated[int | None, typer.Option(
            min=1, help="Run only N cases, taken across the slices (a quick check).")] = None,
        ) -> None:
    """Run a dataset through a feature, score it, store the run and report it."""
    project = project_dir(ctx)
    evals = project / "evals"
    data = load_suite(evals, dataset or feature, holdout)
    lock = HoldoutLock(evals / LOCK_NAME)
    if data.split == "holdout":
        lock.check(data, reseal=reseal)
    else:
        _mention_holdout(evals, data.name, lock)
    store = RunStore(project / RUNS_DIR)
    base = store.load(baseline) if baseline else None
    variants = [parse_variant(v) for v in variant or []]
    result = asyncio.run(run_experiment(project, feature, limited(data, limit), variants,
                                        epochs=epochs, concurrency=concurrency,
                                        hide=data.split == "holdout" and not show_outputs))
    if data.split == "holdout":
        seal = lock.record_use(data, result.created_at)
        result = result.model_copy(update={"holdout_uses": seal.uses})
        err().print(Text(f"HOLDOUT {data.name}: this is use #{seal.uses} of the sealed split "
                         f"(counted in {lock.path})", style="bold yellow"))
    store.save(result)
    comparison = compare(result, base, data.settings.gate) if base is not None else None
    failures = gate_failures(result, comparison, data.settings.gate, force=force) \
        if gate else None
    written = write_reports(project, result, comparison, failures, json_path=json_path,
                            markdown_path=markdown_path, html_path=html_path)
    _print(result, comparison, failures)
    out().print("reports: " + ", ".join(str(p) for p in written))
    if failures:
        raise typer.Exit(EXIT_GATE)


def _mention_holdout(evals: Path, name: str, lock: HoldoutLock) -> None:
    if find_dataset(evals, name, "holdout") is None:
        return
    seal = lock.seals().get(name)
    uses = seal.uses if seal else 0
    err().print(f"holdout split of {name!r} not run (pass --holdout); used {uses} time(s)")


def _print(run: EvalRun, comparison: Comparison | None, failures: list[str] | None) -> None:
    console = out()
    table = Table(title=f"run {run.run_id[:12]} · {run.dataset}@{run.dataset_version} "
                        f"({run.split})")
    for col in ("variant", "score (95% CI)", "cost $", "p50 s", "p95 s", "tokens", "errors"):
        table.add_column(col)
    for s in run.summaries:
        table.add_row(s.variant, pct(s.overall), f"{s.cost_usd:.4f}", f"{s.latency_p50_s:.3f}",
                      f"{s.latency_p95_s:.3f}", f"{s.prompt_tokens}/{s.completion_tokens}",
                      str(s.errors))
    console.print(table)
    for s in run.summaries:
        console.print(f"scorers ({s.variant}): " + ", ".join(
            f"{key} {value:.1%}" for key, value in s.scorers.items()))
    slices = Table(title="slices")
    slices.add_column("slice")
    for s in run.summaries:
        slices.add_column(s.variant)
    for tag in sorted({t for s in run.summaries for t in s.slices}):
        slices.add_row(tag, *(pct(s.slices[tag]) if tag in s.slices else "-"
                              for s in run.summaries))
    if slices.row_count:
        console.print(slices)
    for j in run.judges:
        state = f"kappa {j.agreement.kappa:.3f}" if j.agreement else "not calibrated"
        console.print(f"judge {j.scorer}: {state}")
    for w in run.warnings:
        err().print(Text(f"warning: {w}", style="yellow"))
    if comparison is not None:
        console.print(Text(comparison.headline, style="bold"))
        for w in comparison.warnings:
            err().print(Text(f"warning: {w}", style="yellow"))
    if failures is not None:
        if failures:
            console.print(Text("GATE FAILED", style="bold red"))
            for reason in failures:
                console.print(f"  {reason}")
        else:
            console.print(Text("gate passed", style="bold green"))


@app.command("list")
def list_runs(ctx: typer.Context) -> None:
    """Stored runs, oldest first."""
    project = project_dir(ctx)
    runs = RunStore(project / RUNS_DIR).runs()
    if not runs:
        out().print("no eval runs yet (buttress eval run FEATURE)")
        return
    table = Table(title="eval runs")
    for col in ("run", "feature", "dataset", "split", "variants", "score", "holdout use"):
        table.add_column(col)
    for r in runs:
        table.add_row(r.run_id[:12], r.feature, f"{r.dataset}@{r.dataset_version}", r.split,
                      ", ".join(s.variant for s in r.summaries),
                      f"{r.summaries[0].overall.value:.1%}",
                      str(r.holdout_uses) if r.holdout_uses is not None else "")
    out().print(table)


@app.command("calibrate")
def calibrate_cmd(ctx: typer.Context,
                  dataset: Annotated[str, typer.Argument(
                      help="A dataset of human-labelled outputs, with a judge scorer.")],
                  scorer: Annotated[str | None, typer.Option(
                      help="Which judge scorer of the dataset (default: the only one).")]
                  = None) -> None:
    """Measure a judge's agreement with human labels and store it."""
    project = project_dir(ctx)
    data = load_suite(project / "evals", dataset, False)
    judges = [s for s in data.settings.scorers if s.name == "judge"
              and (scorer is None or s.key == scorer)]
    if len(judges) != 1:
        raise UsageError(f"dataset {dataset!r} must name exactly one judge scorer "
                         f"(found {len(judges)}; pick one with --scorer)")

    async def go() -> None:
        async with open_client(project) as client:
            judge = default_registry().build(
                judges[0], ScorerContext(project_dir=project, client=client,
                                         tags=("calibration",)))
            assert isinstance(judge, LLMJudge)
            found = await calibrate(judge, data)
        CalibrationStore(project / CALIBRATION_DIR).save(found)
        a = found.overall
        out().print(f"judge {found.judge_key}: accuracy {a.accuracy:.1%}, kappa {a.kappa:.3f} "
                    f"(n={a.n})")
        for tag, s in found.slices.items():
            out().print(f"  {tag}: accuracy {s.accuracy:.1%}, kappa {s.kappa:.3f} (n={s.n})")

    asyncio.run(go())
