"""What the ``buttress eval`` commands share: finding a suite, running an experiment under a live
progress bar, and writing the JSON, Markdown and HTML reports."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from buttress.cli.console import err
from buttress.cli.project import open_client
from buttress.config import Config
from buttress.errors import ConfigError
from buttress.evals.calibration import CalibrationStore
from buttress.evals.compare import Comparison
from buttress.evals.dataset import Dataset, find_dataset, list_datasets, load_dataset, subset
from buttress.evals.experiment import Experiment
from buttress.evals.html_report import to_html
from buttress.evals.report import to_json, to_markdown
from buttress.evals.results import EvalRun, Variant

CALIBRATION_DIR = Path(".buttress") / "evals" / "calibration"
REPORTS_DIR = Path(".buttress") / "evals" / "reports"


def load_suite(evals: Path, name: str, holdout: bool) -> Dataset:
    """``evals/NAME`` (or its holdout, scored with the main split's settings)."""
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


def feature_suites(evals: Path, feature: str, dataset: str | None) -> list[Dataset]:
    """The main splits that evaluate ``feature``: the one named, else every dataset whose suite
    names the feature or whose name is the feature's."""
    if dataset is not None:
        return [load_suite(evals, dataset, False)]
    found = []
    for name in list_datasets(evals):
        path = find_dataset(evals, name, "main")
        if path is None:
            continue
        data = load_dataset(path)
        if data.settings.feature == feature or (data.settings.feature is None
                                                and name == feature):
            found.append(data)
    if not found:
        raise ConfigError(f"no dataset evaluates feature {feature!r} (add evals/{feature}.yaml "
                          "or set `feature:` in a dataset)", source=str(evals))
    return found


def limited(data: Dataset, limit: int | None) -> Dataset:
    return subset(data, limit) if limit is not None and limit < len(data.cases) else data


LOCAL_CONCURRENCY, REMOTE_CONCURRENCY = 1, 16


def default_concurrency(config: Config, feature: str, variants: Sequence[Variant]) -> int:
    """Cases in flight when not given: one when every model the run may call is in-process
    (llama.cpp generates one answer at a time, so parallel calls would only queue into their
    timeouts and trip the breaker), sixteen otherwise."""
    spec = config.features.get(feature)
    aliases = [v.model for v in variants if v.model] or []
    if spec is not None and (not aliases or any(v.model is None for v in variants)):
        aliases += spec.models
    providers = set()
    for alias in aliases:
        model = config.models.get(alias)
        providers.add(model.provider if model else alias.partition("/")[0])
    local = providers and all(
        p in config.providers and config.providers[p].type == "local" for p in providers)
    return LOCAL_CONCURRENCY if local else REMOTE_CONCURRENCY


async def run_experiment(project: Path, feature: str, data: Dataset,
                         variants: Sequence[Variant], *, epochs: int = 1,
                         concurrency: int | None = None, hide: bool = False) -> EvalRun:
    """Run ``data`` through ``feature`` for each variant, with a live progress bar on stderr.

    The prompt's output schema goes with every call as ``response_format``, as ``buttress
    call`` sends it, so providers that constrain decoding return JSON of that shape.
    """
    async with open_client(project) as client:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=err(), transient=True) as bar:
            task = bar.add_task(f"{feature} × {data.name}", total=None)
            experiment = Experiment(
                client, feature, data, variants=list(variants) or [Variant()], epochs=epochs,
                concurrency=concurrency or default_concurrency(client.config, feature, variants),
                hide_outputs=hide,
                calibrations=CalibrationStore(project / CALIBRATION_DIR),
                progress=lambda done, total: bar.update(task, completed=done, total=total))
            return await experiment.run()


def write_reports(project: Path, run: EvalRun, comparison: Comparison | None,
                  failures: list[str] | None, *, json_path: Path | None = None,
                  markdown_path: Path | None = None,
                  html_path: Path | None = None) -> list[Path]:
    """The run's JSON, Markdown and HTML reports (under ``.buttress/evals/reports/`` unless a
    path is given); returns where they went."""
    reports = project / REPORTS_DIR
    reports.mkdir(parents=True, exist_ok=True)
    written = []
    for given, suffix, text in (
            (json_path, "json", to_json(run, comparison, failures)),
            (markdown_path, "md", to_markdown(run, comparison, failures)),
            (html_path, "html", to_html(run, comparison, failures))):
        path = given or reports / f"{run.run_id}.{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
