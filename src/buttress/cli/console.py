"""Consoles for stdout and stderr, and the one-line error format every command uses."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text


def out() -> Console:
    # Made per command so it writes to whatever stdout is current (CliRunner swaps it).
    return Console(highlight=False, soft_wrap=True)


def err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def print_error(message: str) -> None:
    """One red line on stderr. Messages never carry secrets: keys live only in the env."""
    err().print(Text(f"error: {message}", style="bold red"))
