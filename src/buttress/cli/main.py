"""``buttress``: the entry point, the global ``--project`` option and error reporting."""

from __future__ import annotations

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
from buttress.cli.eval_cmd import app as eval_app
from buttress.cli.keys_cmd import app as keys_app
from buttress.cli.prompts_cmd import app as prompts_app
from buttress.errors import ButtressError

EXIT_CONFIG = 2


class _Group(TyperGroup):
    """Turns any ``ButtressError`` a command lets through into one red line and exit code 2."""

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
app.add_typer(eval_app, name="eval")
app.add_typer(keys_app, name="keys")


def main() -> None:
    app(prog_name="buttress")
