"""Mapping between ledger records and flat table rows, shared by every SQL store.

Column order here is the one source of truth for inserts and selects. Writing builds tuples by
attribute access rather than ``model_dump`` because it runs for every record on the writer thread.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from buttress.ledger.records import AttemptRecord, CallRecord, FeedbackRecord, Validation

CALL_COLUMNS = (
    "call_id", "schema_version", "trace_id", "parent_id", "feature", "prompt_name",
    "prompt_version", "environment", "tags", "user_id", "session_id", "api_key_id", "provider",
    "model_requested", "model_served", "system_fingerprint", "request", "output_text",
    "output_value", "finish_reason", "validation_outcome", "validation_reasons", "status",
    "error_kind", "error_message", "latency_ms", "ttft_ms", "prompt_tokens", "completion_tokens",
    "cached_tokens", "reasoning_tokens", "cost_usd", "cost_saved_usd", "cache_hit", "tier",
    "confidence", "created_at", "attempts", "prompt_commit",
)
ATTEMPT_COLUMNS = (
    "attempt_id", "call_id", "idx", "kind", "provider", "model_requested", "model_served",
    "status", "error_kind", "error_message", "latency_ms", "ttft_ms", "prompt_tokens",
    "completion_tokens", "cached_tokens", "reasoning_tokens", "cost_usd", "started_at",
)
FEEDBACK_COLUMNS = ("feedback_id", "call_id", "signal", "value", "comment", "created_at")


def _stdlib_dumps(value: Any) -> str:
    # default=str: an odd parsed value must not stop the batch it travels in.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _fast_dumps() -> Callable[[Any], str]:
    """orjson when installed (the gateway extra brings it; several times faster), with the
    standard library's leniency: non-string keys become strings, odd values ``str``."""
    try:
        import orjson
    except ImportError:
        return _stdlib_dumps
    options = orjson.OPT_NON_STR_KEYS

    def fast(value: Any) -> str:
        try:
            return orjson.dumps(value, default=str, option=options).decode()
        except (TypeError, orjson.JSONEncodeError):  # e.g. an int beyond 64 bits
            return _stdlib_dumps(value)

    return fast


_dumps: Callable[[Any], str] | None = None


def dumps(value: Any) -> str:
    """A column's JSON text. The encoder is chosen on first use, not at import."""
    global _dumps
    if _dumps is None:
        _dumps = _fast_dumps()
    return _dumps(value)


def call_row(c: CallRecord) -> tuple[Any, ...]:
    v = c.validation
    return (
        c.call_id, c.schema_version, c.trace_id, c.parent_id, c.feature, c.prompt_name,
        c.prompt_version, c.environment, dumps(list(c.tags)), c.user_id, c.session_id,
        c.api_key_id, c.provider, c.model_requested, c.model_served, c.system_fingerprint,
        dumps(c.request), c.output_text,
        None if c.output_value is None else dumps(c.output_value),
        c.finish_reason, v.outcome if v else None, dumps(list(v.reasons)) if v else None,
        c.status, c.error_kind, c.error_message, c.latency_ms, c.ttft_ms, c.prompt_tokens,
        c.completion_tokens, c.cached_tokens, c.reasoning_tokens, c.cost_usd, c.cost_saved_usd,
        c.cache_hit, c.tier, c.confidence, c.created_at, c.attempts, c.prompt_commit,
    )


def attempt_row(a: AttemptRecord) -> tuple[Any, ...]:
    return (
        a.attempt_id, a.call_id, a.index, a.kind, a.provider, a.model_requested, a.model_served,
        a.status, a.error_kind, a.error_message, a.latency_ms, a.ttft_ms, a.prompt_tokens,
        a.completion_tokens, a.cached_tokens, a.reasoning_tokens, a.cost_usd, a.started_at,
    )


def feedback_row(f: FeedbackRecord) -> tuple[Any, ...]:
    return (f.feedback_id, f.call_id, f.signal, f.value, f.comment, f.created_at)


def tag_rows(calls: Sequence[CallRecord]) -> list[tuple[str, str]]:
    return [(c.call_id, tag) for c in calls for tag in dict.fromkeys(c.tags)]


def call_from_row(row: Sequence[Any]) -> CallRecord:
    d = dict(zip(CALL_COLUMNS, row, strict=True))
    outcome = d.pop("validation_outcome")
    reasons = d.pop("validation_reasons")
    d["validation"] = (Validation(outcome=outcome, reasons=tuple(json.loads(reasons or "[]")))
                       if outcome is not None else None)
    d["tags"] = tuple(json.loads(d["tags"]))
    d["request"] = json.loads(d["request"]) if d["request"] else {}
    d["output_value"] = json.loads(d["output_value"]) if d["output_value"] is not None else None
    d["cache_hit"] = bool(d["cache_hit"])
    return CallRecord.model_validate(d)


def attempt_from_row(row: Sequence[Any]) -> AttemptRecord:
    d = dict(zip(ATTEMPT_COLUMNS, row, strict=True))
    d["index"] = d.pop("idx")
    return AttemptRecord.model_validate(d)


def feedback_from_row(row: Sequence[Any]) -> FeedbackRecord:
    return FeedbackRecord.model_validate(dict(zip(FEEDBACK_COLUMNS, row, strict=True)))
