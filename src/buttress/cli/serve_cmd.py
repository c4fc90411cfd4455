"""``buttress serve``: the OpenAI-compatible gateway over the project's runtime."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from buttress.cli.console import err
from buttress.cli.project import config_path, project_dir


def serve(ctx: typer.Context,
          host: Annotated[str, typer.Option(
              help="Address to bind. Without virtual keys only loopback is allowed.")
          ] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
          require_keys: Annotated[bool, typer.Option(
              "--require-keys", help="Refuse requests without a virtual key even when none "
                                     "exists yet (the gateway is then closed).")] = False,
          drain: Annotated[float, typer.Option(
              help="Seconds to let in-flight requests finish on shutdown.")] = 30.0,
          ) -> None:
    """Serve POST /v1/chat/completions, GET /v1/models, /health and /metrics."""
    from buttress.gateway.server import serve as run

    err().print(Text(f"buttress gateway on http://{host}:{port}/v1  (Ctrl-C drains and "
                     "stops)", style="dim"))
    run(config_path(project_dir(ctx)), host=host, port=port, require_keys=require_keys,
        drain_s=drain)
