"""``buttress logs``: recorded calls, newest first, filtered, as a table or JSON lines."""

from __future__ import annotations

import json
from typing import Annotated, get_args

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from buttress.cli.console import out
from buttress.cli.ledger_access import ledger_store
from buttress.cli.ledger_report import local_time, ms, prompt_ref, served, short_id, status_text
from buttress.cli.project import project_dir
from buttress.cli.timespec import parse_when
from buttress.clock import SYSTEM_CLOCK
from buttress.errors import UsageError
from buttress.ledger import CallFilter, CallRecord
from buttress.ledger.records import CallStatus

STATUSES: tuple[str, ...] = get_args(CallStatus)
WIDE = 140


def logs(ctx: typer.Context,
         feature: Annotated[str | None, typer.Option(help="Only this feature.")] = None,
         status: Annotated[str | None, typer.Option(
             help=f"Only this status: {', '.join(STATUSES)}.")] = None,
         model: Annotated[str | None, typer.Option(
             help="Only this model (requested or served).")] = None,
         provider: Annotated[str | None, typer.Option(help="Only this provider.")] = None,
         prompt_version: Annotated[str | None, typer.Option(
             "--prompt-version", help="Only calls made with this prompt version.")] = None,
         tag: Annotated[str | None, typer.Option(help="Only calls with this tag.")] = None,
         since: Annotated[str | None, typer.Option(
             help="From this time: 30m, 2h, 7d ago, or an ISO date/datetime.")] = None,
         until: Annotated[str | None, typer.Option(
             help="Before this time (same forms as --since).")] = None,
         limit: Annotated[int, typer.Option(min=1, max=100_000,
                                            help="At most this many calls.")] = 50,
         as_json: Annotated[bool, typer.Option(
             "--json", help="One JSON object per call per line.")] = False,
         ) -> None:
    """Recorded calls, newest first."""
    if status is not None and status not in STATUSES:
        raise UsageError(f"--status {status!r}: choose one of {', '.join(STATUSES)}")
    now = SYSTEM_CLOCK.wall()
    window = {"since": parse_when(since, now, option="--since") if since else None,
              "until": parse_when(until, now, option="--until") if until else None}
    query = CallFilter.model_validate({
        "feature": feature, "status": status, "model": model, "provider": provider,
        "prompt_version": prompt_version, "tag": tag, "limit": limit, **window})
    with ledger_store(project_dir(ctx)) as (_, store):
        calls = store.query_calls(query)
    if as_json:
        for record in calls:
            typer.echo(json.dumps(record.model_dump(mode="json")))
        return
    console = out()
    if not calls:
        console.print(Text("no calls match", style="dim"))
        return
    console.print(calls_table(calls, console.width))
    if len(calls) == limit:
        console.print(Text(f"showing the newest {limit}; use --limit for more", style="dim"))


def calls_table(calls: list[CallRecord], width: int) -> Table:
    """The calls as rows; below ``WIDE`` columns the prompt, TTFT and tokens are left out (``show``
    and ``--json`` have them) so the rest stays readable at 80 columns."""
    wide = width >= WIDE
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  collapse_padding=True)
    table.add_column("time", no_wrap=True)
    table.add_column("id", no_wrap=True, style="cyan")
    table.add_column("feature", overflow="fold")
    if wide:
        table.add_column("prompt", overflow="fold")
    table.add_column("served by", overflow="fold", min_width=9)
    table.add_column("status", overflow="fold", min_width=6)
    table.add_column("latency", no_wrap=True, justify="right")
    if wide:
        table.add_column("ttft", no_wrap=True, justify="right")
        table.add_column("tokens in/out", no_wrap=True, justify="right")
    table.add_column("cost", no_wrap=True, justify="right")
    for c in calls:
        cells: list[str | Text] = [local_time(c.created_at, short=not wide),
                                   short_id(c.call_id), c.feature or "-"]
        if wide:
            cells.append(prompt_ref(c))
        cells += [served(c), status_text(c.status, c.error_kind), ms(c.latency_ms)]
        if wide:
            cells += [ms(c.ttft_ms), f"{c.prompt_tokens}/{c.completion_tokens}"]
        cells.append("-" if c.cost_usd is None else f"${c.cost_usd:.4f}")
        table.add_row(*cells)
    return table
