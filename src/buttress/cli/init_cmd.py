"""``buttress init [DIR]``: scaffold a project with the worked ``triage`` example."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from buttress.cli.console import out
from buttress.cli.project import project_dir
from buttress.scaffold import write_scaffold


def init(ctx: typer.Context,
         directory: Annotated[Path | None, typer.Argument(
             help="Where to create the project (default: the --project directory).",
             show_default=False)] = None,
         force: Annotated[bool, typer.Option(
             "--force", help="Overwrite files that already exist.")] = False) -> None:
    """Create buttress.toml, prompts/, schemas/ and evals/ with a worked example feature."""
    target = directory if directory is not None else project_dir(ctx)
    written = write_scaffold(target, force=force)
    console = out()
    console.print(Text(f"Created a buttress project in {target}:", style="bold"))
    for path in written:
        console.print(Text(f"  {path.relative_to(target).as_posix()}"))
    where = "" if target == Path(".") else f" -C {target}"
    console.print(Text("\nNext steps:", style="bold"))
    console.print(Text(f"  buttress{where} models                      # what is configured"))
    console.print(Text(f"  buttress{where} call triage --var ticket='I was charged twice'"))
    console.print(Text(f"  buttress demo {target}" if where else "  buttress demo ."))
