"""``buttress call FEATURE --var k=v``: one call, streamed, with its attempts shown."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from buttress.cli.console import err, out
from buttress.cli.project import OutcomeLog, open_client, project_dir
from buttress.cli.report import attempts_table, failure_lines, summary
from buttress.errors import ButtressError, ConfigError, UsageError, error_kind
from buttress.runtime.result import Attempt, CallResult
from buttress.runtime.structured import dump_value

EXIT_FAILED = 1


def parse_vars(pairs: list[str], base: Path = Path(".")) -> dict[str, str]:
    """``k=v`` pairs; a value ``@path`` is the text of that file (relative to ``base``)."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--var {pair!r}: expected NAME=VALUE or NAME=@FILE")
        if value.startswith("@"):
            path = base / value[1:]
            try:
                value = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(f"--var {name}: cannot read {str(path)!r}: {exc}") from None
        values[name.strip()] = value
    return values


def call(ctx: typer.Context,
         feature: Annotated[str, typer.Argument(help="A feature declared in buttress.toml.")],
         var: Annotated[list[str] | None, typer.Option(
             "--var", "-v", help="A prompt variable, NAME=VALUE or NAME=@FILE (repeatable).",
             show_default=False)] = None,
         as_json: Annotated[bool, typer.Option(
             "--json", help="Print the result as one JSON object instead of streaming.")] = False,
         ) -> None:
    """Call a feature once and stream the answer, then show latency, tokens and attempts."""
    project = project_dir(ctx)
    variables = parse_vars(var or [])
    log = OutcomeLog()
    run = _call_json if as_json else _call_streamed
    ok = asyncio.run(run(project, feature, variables, log))
    if not ok:
        raise typer.Exit(EXIT_FAILED)


async def _call_streamed(project: Path, feature: str, variables: dict[str, str],
                         log: OutcomeLog) -> bool:
    console = out()
    async with open_client(project, hooks=[log]) as client:
        # the feature's output contract (its prompt's ``output``) comes with the call
        stream = client.stream(feature, variables)
        started = False
        try:
            async with stream:
                async for chunk in stream:
                    if chunk.text:
                        started = True
                        console.print(chunk.text, end="", markup=False, highlight=False)
        except (ConfigError, UsageError):
            raise
        except ButtressError as exc:
            if started:
                console.print()
            _show_failure(exc, log)
            return False
        console.print()
        result = stream.result
        assert result is not None  # the stream ended normally
        if result.miss is not None:
            err().print(Text("the answer does not satisfy the output contract: " +
                             "; ".join(result.miss.reasons), style="yellow"))
        console.print()
        console.print(attempts_table(result.attempts))
        console.print(summary(result))
        return True


async def _call_json(project: Path, feature: str, variables: dict[str, str],
                     log: OutcomeLog) -> bool:
    async with open_client(project, hooks=[log]) as client:
        try:
            result = await client.call(feature, variables)
        except (ConfigError, UsageError):
            raise
        except ButtressError as exc:
            attempts = log.last.attempts if log.last else ()
            typer.echo(json.dumps({"ok": False, "error": {
                "kind": error_kind(exc), "message": str(exc),
                "attempts": [_attempt_json(a) for a in attempts]}}))
            return False
        typer.echo(json.dumps(result_json(result)))
        return True


def result_json(result: CallResult) -> dict[str, Any]:
    return {"ok": True, "text": result.text, "provider": result.provider,
            "model_requested": result.model_requested, "model_served": result.model_served,
            "latency_s": result.latency_s, "ttft_s": result.ttft_s,
            "usage": result.usage.model_dump(), "cost_usd": result.cost_usd,
            "call_id": result.call_id, "feature": result.feature,
            "prompt_version": result.prompt_version,
            "value": dump_value(result.value), "validation": result.validation,
            "miss": result.miss.model_dump() if result.miss is not None else None,
            "confidence": result.confidence, "tier": result.tier,
            "attempts": [_attempt_json(a) for a in result.attempts]}


def _attempt_json(attempt: Attempt) -> dict[str, Any]:
    return attempt.model_dump(mode="json", exclude={"started_at"})


def _show_failure(exc: ButtressError, log: OutcomeLog) -> None:
    console = err()
    outcome = log.last
    if outcome is not None and outcome.attempts:
        console.print(attempts_table(outcome.attempts))
    for i, line in enumerate(failure_lines(exc)):
        console.print(Text(f"error: {line}" if i == 0 else line, style="bold red" if i == 0
                           else "red"))
