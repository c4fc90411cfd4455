"""``buttress replay CALL_ID``: run a recorded call again and diff the new output against the old.

By default the stored request (messages and parameters) goes to the same model chain: the
feature's models when the feature is still configured, else the provider and model that served
it. ``--model`` picks another alias. ``--prompt-version`` or ``--var`` re-render the prompt instead;
the ledger stores rendered messages, not template variables, so those must come from ``--var``.
Messages the caller added after the prompt's own are not replayed when re-rendering.

The replay is a new call, recorded in the ledger with the tag ``replay`` and the original call as
its parent.
"""

from __future__ import annotations

import asyncio
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from buttress.cli.call_cmd import parse_vars
from buttress.cli.console import err, out
from buttress.cli.ledger_access import find_call, ledger_store
from buttress.cli.ledger_report import short_id
from buttress.cli.project import OutcomeLog, open_client, project_dir
from buttress.cli.report import attempts_table, failure_lines, summary
from buttress.config import Config
from buttress.errors import ButtressError, ConfigError, UsageError
from buttress.ids import new_id
from buttress.ledger import CallRecord
from buttress.runtime.result import Call
from buttress.types import CallRequest

EXIT_FAILED = 1
REPLAY_TAG = "replay"
REDACTED = "[REDACTED:"
HASHED = "sha256:"
_REQUEST_FIELDS = frozenset(CallRequest.model_fields) - {"model", "messages", "extra"}


@dataclass
class ReplayPlan:
    """What the replay sends, where, and what the reader should know about it."""

    request: CallRequest
    aliases: tuple[str, ...]
    feature: str | None
    prompt_name: str | None
    prompt_version: str | None
    notes: list[str] = field(default_factory=list)


def replay(ctx: typer.Context,
           call_id: Annotated[str, typer.Argument(
               help="A call id, or a unique prefix or suffix of one.")],
           prompt_version: Annotated[str | None, typer.Option(
               "--prompt-version", help="Re-render the feature's prompt at this version "
               "(needs its variables via --var).")] = None,
           model: Annotated[str | None, typer.Option(
               "--model", "-m", help="Send to this model alias (or PROVIDER/MODEL) instead.")
           ] = None,
           var: Annotated[list[str] | None, typer.Option(
               "--var", "-v", help="A prompt variable, NAME=VALUE or NAME=@FILE (repeatable); "
               "re-renders the prompt.", show_default=False)] = None,
           ) -> None:
    """Re-run a recorded call and show a diff of the old and new outputs."""
    project = project_dir(ctx)
    variables = parse_vars(var or [])
    with ledger_store(project) as (config, store):
        record, _ = find_call(store, call_id)
    plan = plan_replay(record, config, project, prompt_version=prompt_version, model=model,
                       variables=variables)
    if not asyncio.run(_run(project, config, record, plan)):
        raise typer.Exit(EXIT_FAILED)


def plan_replay(record: CallRecord, config: Config, project: Path, *,
                prompt_version: str | None = None, model: str | None = None,
                variables: dict[str, str] | None = None) -> ReplayPlan:
    """The request and model chain a replay of ``record`` uses. Raises ``UsageError`` or
    ``ConfigError`` when it cannot be rebuilt."""
    spec = config.features.get(record.feature) if record.feature else None
    prompt_name: str | None
    version: str | None
    if prompt_version is not None or variables:
        request, prompt_name, version = _rerendered(record, config, project, prompt_version,
                                                    variables or {})
    else:
        request, prompt_name, version = (_stored(record), record.prompt_name,
                                         record.prompt_version)
    if model is not None:
        aliases: tuple[str, ...] = (model,)
    elif spec is not None:
        aliases = spec.models
    elif record.provider and record.model_requested:
        aliases = (f"{record.provider}/{record.model_requested}",)
    else:
        raise UsageError(f"call {record.call_id} names no configured feature and no model; "
                         "choose one with --model")
    plan = ReplayPlan(request=request, aliases=aliases, feature=record.feature or None,
                      prompt_name=prompt_name, prompt_version=version)
    if any(REDACTED in (m.content or "") for m in request.messages):
        plan.notes.append("the stored request was redacted before it was recorded; the replay "
                          "sends the redacted text ([REDACTED:...] markers), not the original")
    return plan


def _stored(record: CallRecord) -> CallRequest:
    messages = record.request.get("messages") or []
    contents = [m.get("content") if isinstance(m, dict) else None for m in messages]
    if not messages or any(c is None or str(c).startswith(HASHED) for c in contents):
        raise UsageError(f"the ledger did not keep the messages of call {record.call_id} (its "
                         "feature's redaction policy is hash or drop); re-render its prompt "
                         "with --var NAME=VALUE instead")
    try:
        return CallRequest.model_validate({**record.request, "model": ""})
    except ValueError as exc:
        raise UsageError(f"the stored request of call {record.call_id} cannot be read back: "
                         f"{exc}") from None


def _rerendered(record: CallRecord, config: Config, project: Path, version: str | None,
                variables: dict[str, str]) -> tuple[CallRequest, str, str]:
    from buttress.prompts import PromptStore

    spec = config.features.get(record.feature) if record.feature else None
    name = record.prompt_name or (spec.prompt if spec is not None else None)
    if not name:
        raise UsageError(f"call {record.call_id} was not made from a prompt, so --prompt-version "
                         "and --var cannot re-render it")
    prompt = PromptStore(project / "prompts").get(name, version or record.prompt_version)
    missing = sorted({v.name for v in prompt.variables_used()} - set(variables))
    if missing:
        raise UsageError(
            f"prompt {prompt.ref} needs {', '.join(missing)}: the ledger keeps the rendered "
            "messages, not the template's variables, so pass each with --var NAME=VALUE")
    params: dict[str, Any] = {k: v for k, v in record.request.items() if k != "messages"}
    extra: dict[str, Any] = dict(params.pop("extra", None) or {})
    chosen = prompt.params
    params.update({k: v for k, v in chosen.model_dump(mode="json", exclude={"extra"}).items()
                   if v not in (None, [], ())})
    extra.update(chosen.extra)
    for key, value in (spec.params if spec is not None else {}).items():
        if key in _REQUEST_FIELDS:
            params[key] = value
        else:
            extra[key] = value
    messages = [m.model_dump(mode="json") for m in prompt.render(variables)]
    try:
        request = CallRequest.model_validate({**params, "extra": extra, "model": "",
                                              "messages": messages})
    except ValueError as exc:
        raise UsageError(f"cannot rebuild the request of call {record.call_id}: {exc}") from None
    return request, prompt.name, prompt.version


async def _run(project: Path, config: Config, record: CallRecord, plan: ReplayPlan) -> bool:
    console = out()
    log = OutcomeLog()
    async with open_client(project, hooks=[log]) as client:
        feature = config.features.get(record.feature) if record.feature else None
        policy = config.feature_policy(record.feature) if feature is not None else config.policy
        replay_id = new_id()
        call = Call(request=plan.request, targets=client.targets(plan.aliases), policy=policy,
                    call_id=replay_id, trace_id=replay_id, parent_id=record.call_id,
                    feature=plan.feature, prompt_name=plan.prompt_name,
                    prompt_version=plan.prompt_version, environment=config.environment,
                    tags=(REPLAY_TAG,))
        prompt = f", prompt {plan.prompt_name}@{plan.prompt_version}" if plan.prompt_name else ""
        console.print(Text(f"replaying call {record.call_id} (feature {record.feature or '-'}"
                           f"{prompt}) on {', '.join(plan.aliases)}", style="bold"))
        for note in plan.notes:
            console.print(Text(f"note: {note}", style="yellow"))
        try:
            result = await client.runtime.complete(call)
        except (ConfigError, UsageError):
            raise
        except ButtressError as exc:
            _show_failure(err(), exc, log)
            err().print(Text(f"the failed replay is recorded as call {replay_id}", style="dim"))
            return False
    print_diff(console, record, result.text)
    console.print()
    console.print(attempts_table(result.attempts))
    console.print(summary(result))
    console.print(Text(f"recorded as call {replay_id} (tag {REPLAY_TAG!r}, parent "
                       f"{record.call_id})", style="dim"))
    return True


def print_diff(console: Console, record: CallRecord, new_text: str) -> None:
    old_text = record.output_text or ""
    if record.status in ("error", "cancelled"):
        what = ("it had no output" if record.output_text is None else
                "its output is what it had delivered before it ended")
        console.print(Text(f"the original call failed ({record.error_kind}); {what}",
                           style="dim"))
    lines = list(difflib.unified_diff(
        old_text.splitlines(), new_text.splitlines(),
        fromfile=f"original {short_id(record.call_id)}", tofile="replay", lineterm=""))
    if not lines:
        console.print(Text("the outputs are identical", style="green"))
        console.print(Text(new_text))
        return
    for line in lines:
        console.print(Text(line, style=_diff_style(line)))


def _diff_style(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "bold"
    if line.startswith("@@"):
        return "cyan"
    return "green" if line.startswith("+") else "red" if line.startswith("-") else ""


def _show_failure(console: Console, exc: ButtressError, log: OutcomeLog) -> None:
    outcome = log.last
    if outcome is not None and outcome.attempts:
        console.print(attempts_table(outcome.attempts))
    for i, line in enumerate(failure_lines(exc)):
        console.print(Text(f"error: {line}" if i == 0 else line,
                           style="bold red" if i == 0 else "red"))


