"""``buttress eval sample``: recorded production calls into a dataset file, as cases to label."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, get_args

import typer

from buttress.cli.console import out
from buttress.cli.ledger_access import ledger_store
from buttress.cli.project import project_dir
from buttress.cli.timespec import parse_when
from buttress.errors import UsageError
from buttress.evals.sampling import case_from_call, write_cases
from buttress.ledger import CallFilter
from buttress.ledger.records import CallStatus, FeedbackSignal

_SCAN = 10_000  # calls read per page while filtering by feedback


def sample_cmd(
        ctx: typer.Context,
        feature: Annotated[str, typer.Argument(help="The feature whose calls to sample.")],
        to: Annotated[Path, typer.Option("--to", help="Dataset file to write (evals/X.yaml).")],
        status: Annotated[str | None, typer.Option(
            help="Only calls with this status (ok, error, ...).")] = None,
        feedback: Annotated[list[str] | None, typer.Option(
            help="Only calls with this feedback signal (rejected, edited, ...; repeatable).",
            show_default=False)] = None,
        since: Annotated[str | None, typer.Option(
            help="Calls after this time: 30m, 2h, 7d or an ISO date.")] = None,
        limit: Annotated[int, typer.Option(min=1, help="At most this many cases.")] = 50,
        append: Annotated[bool, typer.Option(
            "--append", help="Add to an existing dataset file (new call ids only).")] = False,
        ) -> None:
    """Sample recorded calls into a dataset file as new cases, each marked needs_label."""
    project = project_dir(ctx)
    statuses = get_args(CallStatus)
    if status is not None and status not in statuses:
        raise UsageError(f"--status {status!r}: expected one of {', '.join(statuses)}")
    signals = set(feedback or ())
    unknown = signals - set(get_args(FeedbackSignal))
    if unknown:
        raise UsageError(f"--feedback {', '.join(sorted(unknown))}: expected one of "
                         f"{', '.join(get_args(FeedbackSignal))}")
    path = to if to.is_absolute() else project / to
    if path.exists() and not append:
        raise UsageError(f"{path} exists; pass --append to add the sampled cases to it")
    window = parse_when(since, time.time()) if since else None
    with ledger_store(project) as (_, store):
        cases: list[dict[str, Any]] = []
        offset = 0
        while len(cases) < limit:
            page = store.query_calls(CallFilter(
                feature=feature, status=status, since=window,
                limit=limit if not signals else _SCAN, offset=offset))
            for record in page:
                given = store.feedback_for(record.call_id)
                if signals and not signals & {f.signal for f in given}:
                    continue
                cases.append(case_from_call(record, given, _prompt_lookup(project)))
                if len(cases) >= limit:
                    break
            if not signals or len(page) < _SCAN:
                break
            offset += _SCAN
    if not cases:
        raise UsageError(f"no recorded call of feature {feature!r} matches the filters")
    written = write_cases(path, cases, append=append, feature=feature)
    out().print(f"{written} case(s) to label written to {path}"
                + (f" ({len(cases) - written} already there)" if written < len(cases) else ""))


def _prompt_lookup(project: Path) -> Any:
    from buttress.prompts import PromptStore

    store = PromptStore(project / "prompts")
    return store.get
