"""``buttress prompts``: list, show, diff, lint and label the prompt files of a project."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from buttress.errors import ConfigError
from buttress.prompts import Prompt, PromptStore, lint, split_ref

app = typer.Typer(name="prompts", no_args_is_help=True,
                  help="Prompts as code: list, show, diff, lint and label prompt files.")

Project = Annotated[Path, typer.Option(
    "--project", "-p", file_okay=False, help="Project directory (prompts in <project>/prompts).")]


def _store(project: Path) -> PromptStore:
    return PromptStore(project / "prompts")


def _out() -> Console:
    # Created per command so it writes to whatever stdout is current (CliRunner swaps it).
    return Console(highlight=False, soft_wrap=True)


def _fail(exc: ConfigError) -> NoReturn:
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        Text(f"error: {exc}", style="bold red"))
    raise typer.Exit(1)


def _get(store: PromptStore, ref: str) -> Prompt:
    name, version = split_ref(ref)
    return store.get(name, version)


@app.command("list")
def list_prompts(project: Project = Path(".")) -> None:
    """Every prompt with its version, commit, labels and description."""
    store = _store(project)
    try:
        labels = store.labels()
    except ConfigError as exc:
        _fail(exc)
    table = Table("name", "version", "commit", "labels", "description")
    broken = False
    for name in store.names():
        try:
            prompt = store.get(name)
        except ConfigError as exc:
            broken = True
            table.add_row(name, "-", "-", "", Text(f"invalid: {exc}", style="red"))
            continue
        pins = labels.get(name, {})
        shown = [label if version == prompt.version else f"{label}={version}"
                 for label, version in sorted(pins.items())]
        table.add_row(Text(name), prompt.version, prompt.git_commit or "-",
                      Text(", ".join(shown)), Text(prompt.description))
    _out().print(table)
    if broken:
        raise typer.Exit(1)


@app.command()
def show(ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@LABEL.")],
         project: Project = Path("."),
         render: Annotated[bool, typer.Option("--render", help="Render into messages.")] = False,
         var: Annotated[list[str] | None, typer.Option(
             "--var", help="KEY=VALUE template variable for --render (repeatable).")] = None,
         ) -> None:
    """A prompt's file at a version (default: the current file)."""
    store = _store(project)
    out = _out()
    try:
        prompt = _get(store, ref)
        pins = [label for label, version in store.labels().get(prompt.name, {}).items()
                if version == prompt.version]
        out.print(Text(f"{prompt.name}  version {prompt.version}  commit "
                       f"{prompt.git_commit or '-'}  labels {', '.join(sorted(pins)) or '-'}",
                       style="bold"))
        out.print(Text(f"{prompt.source}"), style="dim")
        if not render:
            out.print(Text(prompt.text))
            return
        messages = prompt.render(_variables(var or []))
    except ConfigError as exc:
        _fail(exc)
    for message in messages:
        out.print(Text(f"[{message.role}]", style="cyan"))
        out.print(Text(message.content or ""))


@app.command()
def diff(a: Annotated[str, typer.Argument(help="NAME or NAME@VERSION.")],
         b: Annotated[str, typer.Argument(help="NAME or NAME@VERSION.")],
         project: Project = Path(".")) -> None:
    """A unified diff between two prompt versions (or two prompts)."""
    store = _store(project)
    try:
        old, new = _get(store, a), _get(store, b)
    except ConfigError as exc:
        _fail(exc)
    lines = list(difflib.unified_diff(old.text.splitlines(), new.text.splitlines(),
                                      fromfile=old.ref, tofile=new.ref, lineterm=""))
    out = _out()
    if not lines:
        out.print(f"{old.ref} and {new.ref} are identical")
        return
    for line in lines:
        out.print(Text(line, style=_diff_style(line)))


@app.command("lint")
def lint_prompts(project: Project = Path(".")) -> None:
    """Check every prompt; exits 1 when any error is found."""
    store = _store(project)
    with _importable(project):
        problems = lint(store, project)
    out = _out()
    for problem in problems:
        out.print(Text(str(problem), style="red" if problem.severity == "error" else "yellow"))
    errors = sum(problem.severity == "error" for problem in problems)
    warnings = len(problems) - errors
    out.print(f"{len(store.names())} prompt(s), {errors} error(s), {warnings} warning(s)")
    if errors:
        raise typer.Exit(1)


@app.command()
def label(name: Annotated[str, typer.Argument(help="Prompt name.")],
          label: Annotated[str, typer.Argument(help="Label, e.g. production or staging.")],
          version: Annotated[str | None, typer.Option(
              "--version", "-v", help="Version to pin (default: the current file).")] = None,
          project: Project = Path(".")) -> None:
    """Pin LABEL of NAME to a version in prompts/prompts.lock."""
    store = _store(project)
    try:
        prompt = store.label(name, label, version)
    except ConfigError as exc:
        _fail(exc)
    _out().print(Text(f"{name}: {label} -> {prompt.version} (written to {store.lock_path})"))


def _variables(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise ConfigError(f"--var expects KEY=VALUE, got {pair!r}", source="command line")
        values[key] = value
    return values


def _diff_style(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "bold"
    if line.startswith("@@"):
        return "cyan"
    if line.startswith("+"):
        return "green"
    if line.startswith("-"):
        return "red"
    return ""


@contextmanager
def _importable(project: Path) -> Iterator[None]:
    """Let ``python:`` output references name modules of the project itself."""
    entry = str(project.resolve())
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added:
            sys.path.remove(entry)
