"""The call hook that turns every call's outcome into ledger records and queues them.

It runs on the call path, so it builds records without validation (``Record.trusted``: the
values come from typed runtime objects) and hands them to the writer's queue; redaction and all
I/O happen on the writer thread.
"""

from __future__ import annotations

from typing import Any

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import AllAttemptsFailed, error_kind
from buttress.ledger.records import (
    SCHEMA_VERSION,
    AttemptRecord,
    CallRecord,
    Validation,
    request_payload,
)
from buttress.ledger.writer import LedgerWriter
from buttress.runtime.hooks import Outcome
from buttress.runtime.result import Attempt, Call, CallResult
from buttress.runtime.structured import dump_value


class LedgerHook:
    def __init__(self, writer: LedgerWriter, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.writer = writer
        self.clock = clock

    async def before(self, call: Call) -> None:
        return None

    async def after(self, outcome: Outcome) -> None:
        # The records are built on the writer thread: the call path pays one append.
        wall = self.clock.wall()
        self.writer.record_deferred(lambda: self.records(outcome, wall))

    def records(self, outcome: Outcome,
                wall: float | None = None) -> tuple[CallRecord, tuple[AttemptRecord, ...]]:
        call, result, error = outcome.call, outcome.result, outcome.error
        first = outcome.attempts[0] if outcome.attempts else None
        fields: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION, "call_id": call.call_id,
            "trace_id": call.trace_id, "parent_id": call.parent_id,
            "feature": call.feature or "", "prompt_name": call.prompt_name,
            "prompt_version": call.prompt_version, "prompt_commit": call.prompt_commit,
            "environment": call.environment,
            "tags": call.tags, "user_id": call.user_id, "session_id": call.session_id,
            "api_key_id": call.key_id, "request": request_payload(call.request),
            "latency_ms": outcome.latency_s * 1000,
            "ttft_ms": outcome.ttft_s * 1000 if outcome.ttft_s is not None else None,
            "attempts": len(outcome.attempts),
            # a call refused before dispatch (a budget) has no attempt to date it by
            "created_at": first.started_at if first else (wall or self.clock.wall()),
            "output_text": None, "output_value": None, "finish_reason": None,
            "validation": None, "cost_saved_usd": 0.0, "cache_hit": False, "tier": None,
            "confidence": None, "system_fingerprint": None,
        }
        if result is not None:
            usage = result.usage
            fields.update(
                provider=result.provider, model_requested=result.model_requested,
                model_served=result.model_served,
                system_fingerprint=result.completion.system_fingerprint,
                output_text=result.completion.text, finish_reason=result.finish_reason,
                status="ok", error_kind=None, error_message=None,
                prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens, reasoning_tokens=usage.reasoning_tokens,
                cost_usd=result.cost_usd, cache_hit=result.cache_hit,
                cost_saved_usd=result.cost_saved_usd,
                output_value=_tool_calls(result.completion.tool_calls),
            )
            if result.validation is not None or result.miss is not None or \
                    result.confidence is not None or result.tier is not None:
                fields.update(_checked(result))
        else:
            last = outcome.attempts[-1] if outcome.attempts else None
            target = call.targets[0] if call.targets else None
            fields.update(
                provider=last.provider if last else (target.provider if target else ""),
                model_requested=last.model if last else (target.model if target else ""),
                model_served=None,
                status="cancelled" if outcome.cancelled else "error",
                error_kind=error_kind(error) if error is not None else "cancelled",
                error_message=_message(error) if error is not None else "caller went away",
                prompt_tokens=0, completion_tokens=0, cached_tokens=0, reasoning_tokens=0,
                cost_usd=self._cost(outcome.attempts),
            )
        record = CallRecord.trusted(fields)
        return record, tuple(self._attempt(call.call_id, a) for a in outcome.attempts)

    def _attempt(self, call_id: str, a: Attempt) -> AttemptRecord:
        u = a.usage
        return AttemptRecord.trusted({
            "attempt_id": f"{call_id}:{a.index}", "call_id": call_id,
            "index": a.index, "kind": a.kind, "provider": a.provider, "model_requested": a.model,
            "model_served": a.model_served, "status": a.status, "error_kind": a.error_kind,
            "error_message": a.error, "latency_ms": a.latency_s * 1000,
            "ttft_ms": a.ttft_s * 1000 if a.ttft_s is not None else None,
            "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "cached_tokens": u.cached_tokens, "reasoning_tokens": u.reasoning_tokens,
            "cost_usd": a.cost_usd, "started_at": a.started_at})

    def _cost(self, attempts: tuple[Attempt, ...]) -> float:
        """A failed call's spend: what its attempts used, each priced by the runtime as it
        ended (an unknown price counts as 0)."""
        return sum(a.cost_usd or 0.0 for a in attempts)


def _checked(result: CallResult) -> dict[str, Any]:
    """What a checked call adds: its value or miss, validation, confidence and tier."""
    out: dict[str, Any] = {"confidence": result.confidence, "tier": result.tier}
    if result.validation is not None:
        out["validation"] = Validation(outcome=result.validation,
                                       reasons=result.validation_reasons)
    if result.miss is not None:
        out.update(status="miss", error_kind="output_miss",
                   error_message="; ".join(result.miss.reasons))
    elif result.value is not None:
        out["output_value"] = dump_value(result.value)
    return out


def _message(error: BaseException) -> str:
    if isinstance(error, AllAttemptsFailed):
        inner = "; ".join(str(e) for e in error.exceptions)
        return f"{error.message}: {inner}"
    return str(error)


def _tool_calls(calls: tuple[Any, ...]) -> Any:
    if not calls:
        return None
    return {"tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments}
                           for c in calls]}
