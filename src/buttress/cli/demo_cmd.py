"""``buttress demo [DIR]``: the gateway on the triage example, on the embedded model, with chaos.

Offline and keyless: it starts ``buttress serve``'s gateway on 127.0.0.1, drives a burst of
triage requests through it over HTTP (the OpenAI wire format, ``model`` = the feature), then
keeps serving until Ctrl-C (``--no-serve`` exits after the burst). The primary is the local
model wrapped in seeded fault injection, the fallback the same model without it, so retries,
fallbacks and breakers visibly happen.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from buttress.cli.console import out
from buttress.cli.project import CONFIG_FILE, OutcomeLog, config_path, project_dir
from buttress.cli.report import attempt_chain, failure_lines, seconds
from buttress.client import AsyncClient
from buttress.errors import UsageError
from buttress.runtime.hooks import Outcome
from buttress.scaffold import write_scaffold
from buttress.types import Usage

FEATURE = "triage"

TICKETS = (
    "I was charged twice for my subscription this month. Please refund the extra charge.",
    "The app crashes every time I open the settings page on my Android phone.",
    "My order #4471 was supposed to arrive last week and the tracking has not moved.",
    "How do I change the email address on my account?",
    "I cannot log in: the password reset email never arrives.",
    "The blender I received is broken. I want my money back.",
    "Your API returns HTTP 500 on every request since this morning; production is down!",
    "Just wanted to say the new dashboard looks great, thanks!",
)


def demo(ctx: typer.Context,
         directory: Annotated[Path | None, typer.Argument(
             help="Project to run in; created with `init` if it has no buttress.toml "
                  "(default: ./buttress-demo).", show_default=False)] = None,
         port: Annotated[int, typer.Option(
             help="Gateway port on 127.0.0.1 (another free one if taken).")] = 8080,
         serve: Annotated[bool, typer.Option(
             "--serve/--no-serve", help="Keep the gateway serving after the burst, until "
                                        "Ctrl-C (--no-serve: run the burst and exit).")
         ] = True) -> None:
    """Start the gateway on the triage example and drive a burst of traffic through it, with
    chaos injected on the primary."""
    target = directory if directory is not None else project_dir(ctx) / "buttress-demo"
    console = out()
    if not (target / CONFIG_FILE).exists():
        write_scaffold(target)
        console.print(Text(f"Created the example project in {target} (buttress init).",
                           style="dim"))
    ok = asyncio.run(_run(target, console, port=port, serve=serve))
    if not ok:
        raise typer.Exit(1)


async def _run(project: Path, console: Console, *, port: int, serve: bool) -> bool:
    import os

    import httpx

    from buttress.gateway.app import GatewayApp
    from buttress.gateway.server import build_gateway, uvicorn_config
    from buttress.gateway.uvicorn_server import GatewayServer

    log = OutcomeLog()
    gateway = build_gateway(config_path(project), env=os.environ, hooks=(log,))
    client = gateway.client
    feature = client.config.features.get(FEATURE)
    if feature is None:
        await client.aclose()
        raise UsageError(f"{project / CONFIG_FILE} has no feature {FEATURE!r}; "
                         "run the demo in a fresh directory")
    chain = " → ".join(feature.models)
    console.print(Text(f"Feature {FEATURE!r}: {feature.description}", style="bold"))
    console.print(Text(f"models in fallback order: {chain}  ·  chaos on the primary",
                       style="dim"))
    loaded = await _warm_up(client)
    console.print(Text(f"embedded model loaded in {seconds(loaded)}", style="dim"))
    port = port if _port_free(port) else _port_free_any()
    server = GatewayServer(uvicorn_config(GatewayApp(gateway), "127.0.0.1", port))
    serving = asyncio.create_task(server.serve())  # its lifespan closes the client
    while not server.started:
        if serving.done():
            serving.result()  # startup failed: raise its error
            return False
        await asyncio.sleep(0.01)
    url = f"http://127.0.0.1:{port}"
    console.print(Text(f"gateway serving the OpenAI API at {url}/v1\n", style="dim"))
    try:
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            for i, ticket in enumerate(TICKETS, 1):
                console.print(Text(f"[{i}/{len(TICKETS)}] ", style="bold").append(
                    _shorten(ticket, 70), style="italic"))
                # model = the feature; its prompt takes the ticket as a variable
                response = await http.post("/v1/chat/completions", json={
                    "model": FEATURE, "messages": [], "vars": {"ticket": ticket}},
                    headers={"x-buttress-tags": "demo", "x-buttress-session": "demo"})
                outcome = log.last
                if response.status_code == 200:
                    text = response.json()["choices"][0]["message"]["content"] or ""
                    console.print(Text("  → ").append(text.strip(), style="cyan"))
                elif outcome is not None and outcome.error is not None:
                    for line in failure_lines(outcome.error):
                        console.print(Text(f"  {line}", style="red"))
                else:
                    message = response.json().get("error", {}).get("message", "")
                    console.print(Text(f"  HTTP {response.status_code}: {message}",
                                       style="red"))
                if outcome is not None:
                    who = outcome.result.provider if outcome.result else "nobody"
                    chain_line = Text("  ").append(attempt_chain(outcome.attempts))
                    chain_line.append(f"  ·  answered by {who}  ·  "
                                      f"{seconds(outcome.latency_s)}", style="dim")
                    console.print(chain_line)
        console.print()
        _summary(console, log.outcomes, client, url)
        if serve:
            console.print(Text(f"\nServing at {url}/v1 until Ctrl-C (it drains in-flight "
                               "requests and flushes the ledger).", style="bold"))
            await serving
    finally:
        server.should_exit = True
        await serving
    return all(o.result is not None for o in log.outcomes)


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_free_any() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _warm_up(client: AsyncClient) -> float:
    """Load the local model before the first call, so its load time is not a call's latency."""
    from buttress.providers.llamacpp import LlamaCppProvider

    start = time.perf_counter()
    for provider in client.runtime.providers.values():
        if isinstance(provider, LlamaCppProvider):
            await provider.load()
    return time.perf_counter() - start


def _summary(console: Console, outcomes: Sequence[Outcome], client: AsyncClient,
             url: str) -> None:
    calls = len(outcomes)
    ok = sum(o.result is not None for o in outcomes)
    attempts = [a for o in outcomes for a in o.attempts]
    retries = sum(a.kind == "retry" for a in attempts)
    fallbacks = sum(o.result is not None and o.result.attempts[-1].kind == "fallback"
                    for o in outcomes)
    latencies = sorted(o.latency_s for o in outcomes)
    usage = sum((a.usage for a in attempts), Usage())
    console.print(Text("Summary", style="bold"))
    console.print(f"  calls {calls} · succeeded {ok} · attempts {len(attempts)} · "
                  f"retries {retries} · answered by a fallback {fallbacks}")
    console.print(f"  latency p50 {seconds(_quantile(latencies, 0.5))} · "
                  f"p95 {seconds(_quantile(latencies, 0.95))}")
    console.print(f"  tokens {usage.prompt_tokens} prompt / {usage.completion_tokens} "
                  "completion")
    injected = _injected(client)
    if injected:
        console.print("  faults injected on the primary: " + ", ".join(
            f"{kind} ×{n}" for kind, n in sorted(injected.items())))
    where = client.project_dir
    console.print()
    console.print(Text("Where to look", style="bold"))
    console.print(f"  the gateway (any OpenAI SDK, base_url):  {url}/v1   model \"{FEATURE}\" or "
                  "an alias")
    console.print(f"  try it:  curl {url}/v1/chat/completions -H 'content-type: application/json'"
                  f" -d '{{\"model\": \"local\", \"messages\": [{{\"role\": \"user\", "
                  "\"content\": \"hi\"}]}'")
    console.print(f"  Prometheus metrics:                      {url}/metrics")
    console.print(f"  every call and attempt is in the ledger: buttress -C {where} logs")
    console.print(f"  one call with its attempts:              buttress -C {where} show CALL_ID")
    console.print(f"  spend by feature or model:               buttress -C {where} cost --by model")
    console.print(f"  run it yourself:                         buttress -C {where} call triage "
                  "--var ticket='...'")


def _injected(client: AsyncClient) -> dict[str, int]:
    from buttress.testing.chaos import ChaosProvider

    total: dict[str, int] = {}
    for provider in client.runtime.providers.values():
        if isinstance(provider, ChaosProvider):
            for kind, n in provider.injected.items():
                total[kind] = total.get(kind, 0) + n
    return total


def _quantile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile of sorted ``values``."""
    if not values:
        return None
    return values[max(0, math.ceil(q * len(values)) - 1)]


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
