"""``buttress cost``: spend and tokens grouped by feature, model, provider, key, tag or day."""

from __future__ import annotations

import json
from typing import Annotated, cast

import typer
from rich.table import Table
from rich.text import Text

from buttress.cli.console import out
from buttress.cli.ledger_access import ledger_store
from buttress.cli.ledger_report import usd
from buttress.cli.project import project_dir
from buttress.cli.timespec import parse_when
from buttress.clock import SYSTEM_CLOCK
from buttress.errors import UsageError
from buttress.ledger import AggregateRow
from buttress.ledger.store import AGGREGATE_BY, AggregateBy


def cost(ctx: typer.Context,
         by: Annotated[str, typer.Option(
             help=f"Group by: {', '.join(AGGREGATE_BY)}.")] = "feature",
         since: Annotated[str | None, typer.Option(
             help="From this time: 30m, 2h, 7d ago, an ISO date/datetime, or 'all'.")] = "7d",
         until: Annotated[str | None, typer.Option(
             help="Before this time (same forms as --since).")] = None,
         as_json: Annotated[bool, typer.Option(
             "--json", help="One JSON object per group per line, then the total.")] = False,
         ) -> None:
    """What calls cost and how many tokens they used, grouped, with a total."""
    if by not in AGGREGATE_BY:
        raise UsageError(f"--by {by!r}: choose one of {', '.join(AGGREGATE_BY)}")
    group = cast(AggregateBy, by)
    now = SYSTEM_CLOCK.wall()
    start = parse_when(since, now, option="--since") if since and since != "all" else None
    end = parse_when(until, now, option="--until") if until else None
    with ledger_store(project_dir(ctx)) as (_, store):
        rows = store.aggregate(group, start, end)
        # every call has exactly one feature, so this total counts each call once, even when
        # grouping by tag counts a call under each of its tags
        total = _sum(store.aggregate("feature", start, end))
    if as_json:
        for row in rows:
            typer.echo(json.dumps({"by": by, **row.model_dump(mode="json")}))
        typer.echo(json.dumps({"by": "total", **total.model_dump(mode="json")}))
        return
    console = out()
    if not rows:
        console.print(Text("no calls in this window", style="dim"))
        return
    console.print(cost_table(by, rows, total))
    if by == "tag":
        console.print(Text("a call with several tags counts under each; untagged calls are in "
                           "the total only", style="dim"))


def cost_table(by: str, rows: list[AggregateRow], total: AggregateRow) -> Table:
    table = Table(show_edge=False, show_footer=True)
    table.add_column(by, footer="total", overflow="fold")
    for name, value in (("calls", total.calls), ("errors", total.errors),
                        ("tokens in", total.prompt_tokens),
                        ("tokens out", total.completion_tokens)):
        table.add_column(name, footer=str(value), justify="right", no_wrap=True)
    table.add_column("cost USD", footer=usd(total.cost_usd), justify="right", no_wrap=True)
    for row in rows:
        label = "(none)" if row.key is None or row.key == "" else row.key
        table.add_row(Text(label), str(row.calls), str(row.errors), str(row.prompt_tokens),
                      str(row.completion_tokens), usd(row.cost_usd))
    return table


def _sum(rows: list[AggregateRow]) -> AggregateRow:
    fields = ("calls", "errors", "misses", "cache_hits", "prompt_tokens", "completion_tokens",
              "cached_tokens", "reasoning_tokens", "cost_usd", "cost_saved_usd")
    totals = {name: sum(getattr(row, name) for row in rows) for name in fields}
    return AggregateRow.model_validate({"key": None, **totals})
