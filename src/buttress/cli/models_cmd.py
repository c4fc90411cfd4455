"""``buttress models``: configured model aliases, whether pinned, whether reachable."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping

import httpx
import typer
from rich.table import Table
from rich.text import Text

from buttress.cli.console import out
from buttress.cli.project import config_path, project_dir, provider_kind
from buttress.config import Config, is_floating, load_config
from buttress.providers.probe import Reachability, probe


def models(ctx: typer.Context,
           check: bool = typer.Option(True, "--check/--no-check",
                                      help="Probe whether each provider is reachable.")) -> None:
    """List configured model aliases and whether each one is reachable."""
    config = load_config(config_path(project_dir(ctx)))
    reach = asyncio.run(_probe_all(config, os.environ)) if check else {}
    table = Table()
    for column in ("alias", "provider", "type", "model", "pinned"):
        table.add_column(column, overflow="fold")
    table.add_column("reachable", overflow="fold", min_width=16)
    for alias, model in sorted(config.models.items()):
        cfg = config.providers[model.provider]
        if cfg.type in ("local", "fake"):
            pinned = Text("n/a", style="dim")
        elif is_floating(model.model):
            pinned = Text("no (floating)", style="yellow")
        else:
            pinned = Text("yes", style="green")
        r = reach.get(model.provider)
        status = Text("not checked", style="dim") if r is None else \
            Text(r.detail, style="green" if r.ok else "red")
        table.add_row(alias, model.provider, provider_kind(cfg), model.model, pinned, status)
    console = out()
    console.print(table)
    for warning in config.pinning_warnings():
        console.print(Text(f"warning: {warning}", style="yellow"))


async def _probe_all(config: Config, env: Mapping[str, str]) -> dict[str, Reachability]:
    used = sorted({m.provider for m in config.models.values()})
    async with httpx.AsyncClient() as http:
        found = await asyncio.gather(*(probe(config.providers[name], env, http)
                                       for name in used))
    return dict(zip(used, found, strict=True))
