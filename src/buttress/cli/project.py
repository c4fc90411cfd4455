"""Opening a project for a command: its config, its providers and a client over them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import typer

from buttress.client import AsyncClient
from buttress.config import ProviderConfig
from buttress.runtime.hooks import CallHook, Outcome
from buttress.runtime.result import Call

CONFIG_FILE = "buttress.toml"


def project_dir(ctx: typer.Context) -> Path:
    """The ``--project`` directory (the current one by default)."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Path) else Path(".")


def config_path(project: Path) -> Path:
    return project / CONFIG_FILE


def open_client(project: Path, *, hooks: Sequence[CallHook] = ()) -> AsyncClient:
    """A client for the project's config, with keys from the process environment.

    It records to the ledger the config names, like any client made ``from_config``.
    """
    return AsyncClient.from_config(config_path(project), env=os.environ, hooks=hooks)


def provider_kind(cfg: ProviderConfig) -> str:
    return f"{cfg.type} + chaos" if cfg.chaos is not None else cfg.type


class OutcomeLog:
    """A call hook that keeps every outcome, failures included (their attempts are here)."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    async def before(self, call: Call) -> None:
        return None

    async def after(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    @property
    def last(self) -> Outcome | None:
        return self.outcomes[-1] if self.outcomes else None
