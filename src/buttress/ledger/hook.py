"""The call hook that turns every call's outcome into ledger records and queues them.

On the call path it only queues the outcome; the writer thread builds the records, without
validation (``Record.trusted``: the values come from typed runtime objects), then redacts and
stores them. For a SQL store and the usual call (an unchecked answer with nothing to redact) it
builds the rows straight from the outcome instead (``rows``), skipping the records.
"""

from __future__ import annotations

from collections.abc import Callable
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
from buttress.ledger.redaction import Redactor
from buttress.ledger.rows import CallRows, dumps, tag_pairs, tags_json
from buttress.ledger.writer import LedgerWriter, PendingCall
from buttress.runtime.hooks import Outcome
from buttress.runtime.result import Attempt, Call, CallResult
from buttress.runtime.structured import dump_value


class LedgerHook:
    needs_before = False  # it records outcomes only

    def __init__(self, writer: LedgerWriter, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.writer = writer
        self.clock = clock

    async def before(self, call: Call) -> None:
        return None

    async def after(self, outcome: Outcome) -> None:
        # The records are built on the writer thread: the call path pays one append.
        self.writer.record_deferred(_Pending(self, outcome, self.clock.wall()))

    def records(self, outcome: Outcome,
                wall: float | None = None) -> tuple[CallRecord, tuple[AttemptRecord, ...]]:
        # Every field is given: ``trusted`` takes the dict as it is, with no defaults to merge.
        call, tries = outcome.call, outcome.attempts
        first = tries[0] if tries else None
        asked: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION, "call_id": call.call_id,
            "trace_id": call.trace_id, "parent_id": call.parent_id,
            "feature": call.feature or "", "prompt_name": call.prompt_name,
            "prompt_version": call.prompt_version, "prompt_commit": call.prompt_commit,
            "environment": call.environment,
            "tags": call.tags, "user_id": call.user_id, "session_id": call.session_id,
            "api_key_id": call.key_id, "request": request_payload(call.request),
            "latency_ms": outcome.latency_s * 1000,
            "ttft_ms": outcome.ttft_s * 1000 if outcome.ttft_s is not None else None,
            "attempts": len(tries),
            # a call refused before dispatch (a budget) has no attempt to date it by
            "created_at": first.started_at if first else (wall or self.clock.wall()),
        }
        result = outcome.result
        fields = _answered(asked, result) if result is not None else self._failed(asked, outcome)
        record = CallRecord.trusted(fields)
        return record, tuple([self._attempt(call.call_id, a) for a in tries])

    def rows(self, outcome: Outcome, redactor: Redactor,
             boolean: Callable[[bool], Any] = bool) -> CallRows | None:
        """``rows.call_rows`` of ``records(outcome)`` once redacted, built without them for a
        call that answered, unchecked, and that redaction keeps as it is: the usual call. None
        for any other. A test holds the two ways equal; a new column goes in both."""
        result, tries = outcome.result, outcome.attempts
        if result is None or not tries or result.validation is not None or \
                result.miss is not None or result.confidence is not None or \
                result.tier is not None:
            return None
        call, completion = outcome.call, result.completion
        feature, request = call.feature or "", request_payload(call.request)
        value = _tool_calls(completion.tool_calls)
        if not redactor.keeps(feature, request, value,
                              (completion.text, *[a.error for a in tries]),
                              (call.user_id, call.session_id, call.parent_id,
                               result.model_requested, result.model_served, *call.tags)):
            return None
        usage, ttft, call_id, tags = completion.usage, outcome.ttft_s, call.call_id, call.tags
        row = (  # in CALL_INSERT_COLUMNS order
            call_id, SCHEMA_VERSION, call.trace_id, call.parent_id, feature, call.prompt_name,
            call.prompt_version, call.environment, call.user_id, call.session_id, call.key_id,
            result.provider, result.model_requested, result.model_served,
            completion.system_fingerprint, completion.text, completion.finish_reason,
            "ok", None, None, outcome.latency_s * 1000,  # status, error kind and message
            ttft * 1000 if ttft is not None else None, usage.prompt_tokens,
            usage.completion_tokens, usage.cached_tokens, usage.reasoning_tokens,
            result.cost_usd, result.cost_saved_usd, None, None,  # tier, confidence
            tries[0].started_at, len(tries), call.prompt_commit,
            tags_json(tags), dumps(request),
            None if value is None else dumps(value), None, None,  # validation outcome, reasons
            boolean(result.cache_hit),
        )
        return row, tag_pairs(call_id, tags), [_attempt_row(call_id, a) for a in tries]

    def _failed(self, asked: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
        """The fields of a call that ended without an answer, over those of what it asked."""
        error, tries, call = outcome.error, outcome.attempts, outcome.call
        last = tries[-1] if tries else None
        target = call.targets[0] if call.targets else None
        return {
            **asked,
            "provider": last.provider if last else (target.provider if target else ""),
            "model_requested": last.model if last else (target.model if target else ""),
            "model_served": None, "system_fingerprint": None,
            # a stream that ended without an answer: what it had delivered
            "output_text": outcome.partial_text, "output_value": None, "finish_reason": None,
            "validation": None, "status": "cancelled" if outcome.cancelled else "error",
            "error_kind": error_kind(error) if error is not None else "cancelled",
            "error_message": _message(error) if error is not None else "caller went away",
            "prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0, "reasoning_tokens": 0,
            "cost_usd": self._cost(tries), "cost_saved_usd": 0.0, "cache_hit": False,
            "tier": None, "confidence": None,
        }

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


class _Pending(PendingCall):
    """A call's outcome as the hook queued it: its records, or straight its rows."""

    __slots__ = ("hook", "outcome", "wall")

    def __init__(self, hook: LedgerHook, outcome: Outcome, wall: float) -> None:
        self.hook, self.outcome, self.wall = hook, outcome, wall

    def __call__(self) -> tuple[CallRecord, tuple[AttemptRecord, ...]]:
        return self.hook.records(self.outcome, self.wall)

    def rows(self, redactor: Redactor, boolean: Callable[[bool], Any]) -> CallRows | None:
        return self.hook.rows(self.outcome, redactor, boolean)


def _attempt_row(call_id: str, a: Attempt) -> tuple[Any, ...]:
    """The row of ``_attempt``'s record, in ATTEMPT_COLUMNS order."""
    u = a.usage
    return (f"{call_id}:{a.index}", call_id, a.index, a.kind, a.provider, a.model,
            a.model_served, a.status, a.error_kind, a.error, a.latency_s * 1000,
            a.ttft_s * 1000 if a.ttft_s is not None else None, u.prompt_tokens,
            u.completion_tokens, u.cached_tokens, u.reasoning_tokens, a.cost_usd, a.started_at)


def _answered(asked: dict[str, Any], result: CallResult) -> dict[str, Any]:
    """The fields of a call that ended with an answer, over those of what it asked."""
    completion = result.completion
    usage = completion.usage
    fields = {
        **asked,
        "provider": result.provider, "model_requested": result.model_requested,
        "model_served": result.model_served,
        "system_fingerprint": completion.system_fingerprint,
        "output_text": completion.text, "output_value": _tool_calls(completion.tool_calls),
        "finish_reason": completion.finish_reason, "validation": None,
        "status": "ok", "error_kind": None, "error_message": None,
        "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
        "cached_tokens": usage.cached_tokens, "reasoning_tokens": usage.reasoning_tokens,
        "cost_usd": result.cost_usd, "cost_saved_usd": result.cost_saved_usd,
        "cache_hit": result.cache_hit, "tier": None, "confidence": None,
    }
    if result.validation is not None or result.miss is not None or \
            result.confidence is not None or result.tier is not None:
        fields.update(_checked(result))
    return fields


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
