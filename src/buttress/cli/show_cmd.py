"""``buttress show CALL_ID``: one recorded call with its request, output, attempts and feedback."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from buttress.cli.console import out
from buttress.cli.ledger_access import find_call, ledger_store
from buttress.cli.ledger_report import local_time, ms, prompt_ref, served, status_text, usd
from buttress.cli.project import project_dir
from buttress.ledger import AttemptRecord, CallRecord, FeedbackRecord


def show(ctx: typer.Context,
         call_id: Annotated[str, typer.Argument(
             help="A call id, or a unique prefix or suffix of one (as `buttress logs` prints).")],
         as_json: Annotated[bool, typer.Option(
             "--json", help="The call, its attempts and feedback as one JSON object.")] = False,
         ) -> None:
    """One call as recorded: fields, request, output, every attempt and its feedback.

    Content is shown as the ledger stored it, after redaction.
    """
    with ledger_store(project_dir(ctx)) as (_, store):
        record, attempts = find_call(store, call_id)
        feedback = store.feedback_for(record.call_id)
    if as_json:
        typer.echo(json.dumps({
            "call": record.model_dump(mode="json"),
            "attempts": [a.model_dump(mode="json") for a in attempts],
            "feedback": [f.model_dump(mode="json") for f in feedback]}))
        return
    console = out()
    console.print(fields_grid(record))
    print_request(console, record.request)
    print_output(console, record)
    console.print()
    console.print(attempts_table(attempts))
    if feedback:
        console.print()
        console.print(feedback_table(feedback))


def fields_grid(r: CallRecord) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    tokens = f"{r.prompt_tokens} prompt / {r.completion_tokens} completion"
    if r.cached_tokens or r.reasoning_tokens:
        tokens += f" ({r.cached_tokens} cached, {r.reasoning_tokens} reasoning)"
    requested = r.model_requested or "-"
    rows: list[tuple[str, str | Text]] = [
        ("call", r.call_id),
        ("time", local_time(r.created_at, full=True)),
        ("trace / parent", f"{r.trace_id or '-'} / {r.parent_id or '-'}"),
        ("feature", r.feature or "-"),
        ("prompt", prompt_ref(r)),
        ("environment", r.environment or "-"),
        ("tags", ", ".join(r.tags) or "-"),
        ("user / session", f"{r.user_id or '-'} / {r.session_id or '-'}"),
        ("key", r.api_key_id or "-"),
        ("served by", served(r)),
        ("model requested", requested),
        ("fingerprint", r.system_fingerprint or "-"),
        ("status", status_text(r.status, r.error_kind)),
    ]
    if r.error_message:
        rows.append(("error", Text(r.error_message, style="red")))
    rows += [
        ("finish reason", r.finish_reason or "-"),
        ("latency / ttft", f"{ms(r.latency_ms)} / {ms(r.ttft_ms)}"),
        ("tokens", tokens),
        ("cost", usd(r.cost_usd) + (f" (saved {usd(r.cost_saved_usd)})"
                                     if r.cost_saved_usd else "")),
        ("cache hit", "yes" if r.cache_hit else "no"),
        ("attempts", str(r.attempts)),
    ]
    if r.validation is not None:
        reasons = "; ".join(r.validation.reasons)
        rows.append(("validation", r.validation.outcome + (f": {reasons}" if reasons else "")))
    for name, value in rows:
        grid.add_row(name, value if isinstance(value, Text) else Text(value))
    return grid


def print_request(console: Console, request: dict[str, Any]) -> None:
    console.print()
    console.print(Text("request", style="bold underline"))
    params = {k: v for k, v in request.items() if k not in ("messages", "model")}
    if params:
        console.print(Text("parameters: " + json.dumps(params, sort_keys=True), style="dim"))
    for message in request.get("messages") or ():
        if not isinstance(message, dict):
            console.print(Text(str(message)))
            continue
        console.print(Text(f"[{message.get('role', '?')}]", style="cyan"))
        content = message.get("content")
        console.print(Text("(not stored)" if content is None else str(content),
                           style="dim" if content is None else ""))
        if message.get("tool_calls"):
            console.print(Text(json.dumps(message["tool_calls"]), style="dim"))


def print_output(console: Console, r: CallRecord) -> None:
    console.print()
    console.print(Text("output", style="bold underline"))
    if r.output_text is None and r.output_value is None:
        console.print(Text("(none)", style="dim"))
        return
    if r.output_text is not None:
        if r.status in ("error", "cancelled"):  # a stream that ended without an answer
            console.print(Text("(partial: delivered before the call ended)", style="dim"))
        console.print(Text(r.output_text))
    if r.output_value is not None:
        console.print(Text(json.dumps(r.output_value, indent=2), style="dim"))


def attempts_table(attempts: Sequence[AttemptRecord]) -> Table:
    # the error, the widest cell, goes last so the numbers stay on one line at 80 columns
    table = Table(title="attempts", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False, collapse_padding=True)
    table.add_column("#", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("provider/model", overflow="fold", min_width=10)
    table.add_column("status", no_wrap=True)
    for column in ("latency", "ttft", "tokens", "cost"):
        table.add_column(column, no_wrap=True, justify="right")
    table.add_column("error", overflow="fold", min_width=12)
    for a in attempts:
        model = a.model_served or a.model_requested
        error = a.error_kind or ""
        if a.error_message:
            # provider errors start with "provider/model: ", which the row already shows
            message = a.error_message.removeprefix(f"{a.provider}/{a.model_requested}: ")
            error = f"{error}: {message}"
        table.add_row(str(a.index + 1), a.kind, f"{a.provider}/{model}",
                      status_text(a.status), ms(a.latency_ms), ms(a.ttft_ms),
                      f"{a.prompt_tokens}/{a.completion_tokens}", usd(a.cost_usd),
                      Text(error, style="red" if error else ""))
    return table


def feedback_table(feedback: Sequence[FeedbackRecord]) -> Table:
    table = Table(title="feedback", title_justify="left", show_edge=False)
    for column in ("time", "signal", "value", "comment"):
        table.add_column(column, overflow="fold")
    for f in feedback:
        table.add_row(local_time(f.created_at), f.signal,
                      "-" if f.value is None else f"{f.value:g}", Text(f.comment or ""))
    return table
