"""``buttress eval``: run a feature's datasets (with a baseline and a CI gate), calibrate judges,
list stored runs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from buttress.cli.console import err, out
from buttress.cli.project import open_client, project_dir
from buttress.errors import ConfigError, UsageError
from buttress.evals.calibration import CalibrationStore, calibrate
from buttress.evals.compare import Comparison, compare, gate_failures
from buttress.evals.dataset import Dataset, find_dataset, load_dataset
from buttress.evals.experiment import Experiment, parse_variant
from buttress.evals.holdout import LOCK_NAME, HoldoutLock
from buttress.evals.judge import LLMJudge
from buttress.evals.report import pct, to_json, to_markdown
from buttress.evals.results import EvalRun, Variant
from buttress.evals.scorers import ScorerContext, default_registry
from buttress.evals.store import RUNS_DIR, RunStore

EXIT_GATE = 1
CALIBRATION_DIR = Path(".buttress") / "evals" / "calibration"
REPORTS_DIR = Path(".buttress") / "evals" / "reports"

app = typer.Typer(name="eval", no_args_is_help=True,
                  help="Evals: run datasets against a feature, compare, gate, calibrate judges.")


def _dataset(evals: Path, name: str, holdout: bool) -> Dataset:
    main_path = find_dataset(evals, name, "main")
    main = load_dataset(main_path) if main_path else None
    if not holdout:
        if main is None:
            raise ConfigError(f"no dataset {name!r} (expected {evals / name}.yaml or .jsonl)",
                              source=str(evals))
        return main
    path = find_dataset(evals, name, "holdout")
    if path is None:
        raise ConfigError(f"no holdout for {name!r} (expected {evals / name}.holdout.yaml)",
                          source=str(evals))
    data = load_dataset(path)
    if main is not None and data.settings == type(data.settings)():
        # a holdout file may hold only cases: it is scored like its main split
        data = Dataset(name=data.name, path=data.path, split=data.split, cases=data.cases,
                       version=data.version, settings=main.settings)
    return data


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
        concurrency: Annotated[int, typer.Option(min=1, help="Cases in flight.")] = 16,
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
        ) -> None:
    """Run a dataset through a feature, score it, store the run and report it."""
    project = project_dir(ctx)
    evals = project / "evals"
    data = _dataset(evals, dataset or feature, holdout)
    lock = HoldoutLock(evals / LOCK_NAME)
    if data.split == "holdout":
        lock.check(data, reseal=reseal)
    else:
        _mention_holdout(evals, data.name, lock)
    store = RunStore(project / RUNS_DIR)
    base = store.load(baseline) if baseline else None
    result = asyncio.run(_run(project, feature, data, variant or [], epochs, concurrency,
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
    reports = project / REPORTS_DIR
    reports.mkdir(parents=True, exist_ok=True)
    md = to_markdown(result, comparison, failures)
    (json_path or reports / f"{result.run_id}.json").write_text(
        to_json(result, comparison, failures), encoding="utf-8")
    (markdown_path or reports / f"{result.run_id}.md").write_text(md, encoding="utf-8")
    _print(result, comparison, failures)
    if failures:
        raise typer.Exit(EXIT_GATE)


def _mention_holdout(evals: Path, name: str, lock: HoldoutLock) -> None:
    if find_dataset(evals, name, "holdout") is None:
        return
    seal = lock.seals().get(name)
    uses = seal.uses if seal else 0
    err().print(f"holdout split of {name!r} not run (pass --holdout); used {uses} time(s)")


async def _run(project: Path, feature: str, data: Dataset, variants: list[str], epochs: int,
               concurrency: int, *, hide: bool) -> EvalRun:
    parsed = [parse_variant(v) for v in variants]
    async with open_client(project) as client:
        with Progress(console=err(), transient=True) as bar:
            task = bar.add_task(f"{feature} × {data.name}", total=None)
            experiment = Experiment(
                client, feature, data, variants=parsed or [Variant()],
                epochs=epochs, concurrency=concurrency, hide_outputs=hide,
                calibrations=CalibrationStore(project / CALIBRATION_DIR),
                progress=lambda done, total: bar.update(task, completed=done, total=total))
            return await experiment.run()


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
    data = _dataset(project / "evals", dataset, False)
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
