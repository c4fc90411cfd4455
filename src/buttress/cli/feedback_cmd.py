"""``buttress feedback CALL_ID SIGNAL``: record a downstream signal about a call."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.text import Text

from buttress.cli.console import out, print_error
from buttress.cli.ledger_access import find_call, ledger_store
from buttress.cli.project import project_dir
from buttress.client import open_ledger
from buttress.errors import UsageError
from buttress.ledger.records import FEEDBACK_SIGNALS


def feedback(ctx: typer.Context,
             call_id: Annotated[str, typer.Argument(
                 help="A call id, or a unique prefix or suffix of one.")],
             signal: Annotated[str, typer.Argument(
                 help=f"One of {', '.join(FEEDBACK_SIGNALS)}.")],
             value: Annotated[float | None, typer.Option(
                 help="A number (required for score).")] = None,
             comment: Annotated[str | None, typer.Option(
                 help="Free text; redacted like call content before it is stored.")] = None,
             ) -> None:
    """Attach feedback (accepted, edited, retried, rejected, score) to a recorded call."""
    if signal not in FEEDBACK_SIGNALS:
        raise UsageError(f"unknown feedback signal {signal!r}; "
                         f"choose one of {', '.join(FEEDBACK_SIGNALS)}")
    project = project_dir(ctx)
    with ledger_store(project) as (config, store):
        record, _ = find_call(store, call_id)
    # through the writer, so the comment is redacted with the project's policy and env keys
    writer = open_ledger(config, project, os.environ)
    try:
        writer.record_feedback(record.call_id, signal, value, comment)
    finally:
        writer.close()
        writer.store.close()  # the writer does not own its store
    stats = writer.stats
    if stats.written + stats.replayed < 1:
        print_error(f"the feedback for call {record.call_id} could not be written to the "
                    "ledger (see the log above)")
        raise typer.Exit(1)
    shown = "" if value is None else f" = {value:g}"
    out().print(Text(f"recorded {signal}{shown} for call {record.call_id}"))
