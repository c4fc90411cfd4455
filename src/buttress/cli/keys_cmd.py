"""``buttress keys create | list | revoke``: the gateway's virtual API keys.

Keys live hashed in the ledger database; ``create`` prints the secret once and it cannot be
shown again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from buttress.cli.console import out
from buttress.cli.project import config_path, project_dir
from buttress.config import load_config
from buttress.gateway.keys import KeyStore, VirtualKey, open_key_store

app = typer.Typer(no_args_is_help=True, help="Virtual API keys for `buttress serve`.")


@contextmanager
def _store(project: Path) -> Iterator[KeyStore]:
    config = load_config(config_path(project))
    store = open_key_store(config.ledger.url, base_dir=project)
    try:
        yield store
    finally:
        store.close()


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (value or "").split(",") if p.strip())


@app.command()
def create(ctx: typer.Context,
           name: Annotated[str, typer.Option(help="A name to recognise the key by.")],
           models: Annotated[str | None, typer.Option(
               help="Comma-separated model aliases it may call (default: all).")] = None,
           features: Annotated[str | None, typer.Option(
               help="Comma-separated features it may call (default: all).")] = None,
           rpm: Annotated[int | None, typer.Option(help="Requests per minute.", min=1)] = None,
           tpm: Annotated[int | None, typer.Option(help="Tokens per minute.", min=1)] = None,
           budget_daily: Annotated[float | None, typer.Option(
               help="Daily budget in USD.", min=0)] = None,
           budget_monthly: Annotated[float | None, typer.Option(
               help="Monthly budget in USD.", min=0)] = None) -> None:
    """Create a key and print its secret (shown only this once)."""
    with _store(project_dir(ctx)) as store:
        key, secret = store.create(name, models=_split(models), features=_split(features),
                                   rpm=rpm, tpm=tpm, budget_daily_usd=budget_daily,
                                   budget_monthly_usd=budget_monthly)
    console = out()
    console.print(Text(f"created key {key.key_id} ({key.name})", style="bold"))
    console.print(Text("secret (shown once, store it now):", style="dim"))
    typer.echo(secret)


def _when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def _limits(k: VirtualKey) -> str:
    parts = [f"{k.rpm} rpm" if k.rpm else "", f"{k.tpm} tpm" if k.tpm else "",
             f"${k.budget_daily_usd:g}/day" if k.budget_daily_usd is not None else "",
             f"${k.budget_monthly_usd:g}/month" if k.budget_monthly_usd is not None else ""]
    return ", ".join(p for p in parts if p) or "-"


@app.command("list")
def list_keys(ctx: typer.Context,
              as_json: Annotated[bool, typer.Option("--json", help="One JSON line per key.")
                                 ] = False) -> None:
    """Every key with its limits (never the secret)."""
    with _store(project_dir(ctx)) as store:
        keys = store.list()
    if as_json:
        for k in keys:
            typer.echo(json.dumps({
                "key_id": k.key_id, "name": k.name, "models": list(k.models),
                "features": list(k.features), "rpm": k.rpm, "tpm": k.tpm,
                "budget_daily_usd": k.budget_daily_usd,
                "budget_monthly_usd": k.budget_monthly_usd, "created_at": k.created_at,
                "revoked_at": k.revoked_at}))
        return
    if not keys:
        out().print("no keys yet: buttress keys create --name NAME")
        return
    table = Table(box=None)
    for column in ("id", "name", "models", "features", "limits", "created", "status"):
        table.add_column(column)
    for k in keys:
        table.add_row(k.key_id, k.name, ",".join(k.models) or "all",
                      ",".join(k.features) or "all", _limits(k), _when(k.created_at),
                      "active" if k.active else f"revoked {_when(k.revoked_at)}")
    out().print(table)


@app.command()
def revoke(ctx: typer.Context,
           key: Annotated[str, typer.Argument(help="Key id or name.")]) -> None:
    """Revoke a key; a running gateway refuses it within seconds."""
    with _store(project_dir(ctx)) as store:
        revoked = store.revoke(key)
    out().print(f"revoked key {revoked.key_id} ({revoked.name})")
