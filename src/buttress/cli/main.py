"""``buttress``: the entry point, the global ``--project`` option and error reporting."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from buttress.cli import (
    call_cmd,
    cost_cmd,
    demo_cmd,
    feedback_cmd,
    init_cmd,
    logs_cmd,
    models_cmd,
    replay_cmd,
    serve_cmd,
    show_cmd,
)
from buttress.cli.console import print_error
from buttress.cli.keys_cmd import app as keys_app
from buttress.cli.prompts_cmd import app as prompts_app
from buttress.errors import ButtressError

EXIT_CONFIG = 2

#: command groups imported only when named: ``buttress eval`` pulls in the whole eval harness
#: (and PyYAML), about 80 ms that ``buttress serve`` would otherwise spend starting up
_LAZY_GROUPS = {"eval": "buttress.cli.eval_cmd"}


class _Group(TyperGroup):
    """Turns any ``ButtressError`` a command lets through into one red line and exit code 2,
    and loads the lazy groups when they are named (or listed in ``--help``)."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in _LAZY_GROUPS if n not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in _LAZY_GROUPS and cmd_name not in self.commands:
            group = importlib.import_module(_LAZY_GROUPS[cmd_name]).app
            self.add_command(typer.main.get_command(group), cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context
        try:
            return super().invoke(ctx)
        except ButtressError as exc:
            print_error(str(exc))
            raise typer.Exit(EXIT_CONFIG) from None


app = typer.Typer(
    cls=_Group, name="buttress", no_args_is_help=True, add_completion=False,
    # locals could hold keys read from the environment: never print them
    pretty_exceptions_show_locals=False,
    help="The engineering around LLM calls: resilient calls, prompts as code, evals.")


@app.callback()
def _root(ctx: typer.Context, project: Annotated[Path, typer.Option(
        "--project", "-C", file_okay=False,
        help="Project directory (where buttress.toml lives).")] = Path(".")) -> None:
    ctx.obj = project


app.command("init")(init_cmd.init)
app.command("call")(call_cmd.call)
app.command("models")(models_cmd.models)
app.command("demo")(demo_cmd.demo)
app.command("logs")(logs_cmd.logs)
app.command("show")(show_cmd.show)
app.command("replay")(replay_cmd.replay)
app.command("cost")(cost_cmd.cost)
app.command("feedback")(feedback_cmd.feedback)
app.command("serve")(serve_cmd.serve)
app.add_typer(prompts_app, name="prompts")
app.add_typer(keys_app, name="keys")


def main() -> None:
    app(prog_name="buttress")
