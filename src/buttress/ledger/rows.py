"""Mapping between ledger records and flat table rows, shared by every SQL store.

Column order here is the one source of truth for inserts and selects. Writing builds tuples
straight from a record's ``__dict__`` rather than by ``model_dump``, because it runs for every
record on the writer thread.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from operator import itemgetter
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

# Inserts list the columns stored as the record holds them first, fetched in one C call,
# then those derived from it (JSON text, the validation's two columns, cache_hit last).
_CALL_DERIVED = ("tags", "request", "output_value", "validation_outcome", "validation_reasons",
                 "cache_hit")
_CALL_AS_IS = tuple(c for c in CALL_COLUMNS if c not in _CALL_DERIVED)
CALL_INSERT_COLUMNS = _CALL_AS_IS + _CALL_DERIVED
_call_as_is = itemgetter(*_CALL_AS_IS)
# the record fields of ATTEMPT_COLUMNS, in their order: only "idx" is named otherwise
_attempt_fields = itemgetter(*("index" if c == "idx" else c for c in ATTEMPT_COLUMNS))
_feedback_fields = itemgetter(*FEEDBACK_COLUMNS)


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


def call_row(c: CallRecord, boolean: Callable[[bool], Any] = bool) -> tuple[Any, ...]:
    """``c`` as a row in ``CALL_INSERT_COLUMNS`` order; ``boolean`` gives ``cache_hit`` the
    type its store binds best (``SqlStore.boolean``)."""
    d = c.__dict__
    v, tags, value = d["validation"], d["tags"], d["output_value"]
    return (
        *_call_as_is(d), tags_json(tags), dumps(d["request"]),
        None if value is None else dumps(value),
        None if v is None else v.outcome, None if v is None else dumps(list(v.reasons)),
        boolean(d["cache_hit"]),
    )


def attempt_row(a: AttemptRecord) -> tuple[Any, ...]:
    """``a`` as a row in ``ATTEMPT_COLUMNS`` order."""
    return _attempt_fields(a.__dict__)  # type: ignore[no-any-return]


def feedback_row(f: FeedbackRecord) -> tuple[Any, ...]:
    return _feedback_fields(f.__dict__)  # type: ignore[no-any-return]


def tags_json(tags: tuple[str, ...]) -> str:
    """The ``tags`` column of a call with these tags."""
    return "[]" if tags == () else dumps(list(tags))


def tag_pairs(call_id: str, tags: tuple[str, ...]) -> list[tuple[str, str]]:
    """The ``call_tags`` rows of one call: each tag once."""
    return [(call_id, tag) for tag in dict.fromkeys(tags)] if tags else []


def tag_rows(calls: Sequence[CallRecord]) -> list[tuple[str, str]]:
    return [pair for c in calls for pair in tag_pairs(c.call_id, c.tags)]


CallRows = tuple[tuple[Any, ...], list[tuple[str, str]], list[tuple[Any, ...]]]
"""One call's rows: its own, its tags' and its attempts'."""


def call_rows(call: CallRecord, attempts: Sequence[AttemptRecord],
              boolean: Callable[[bool], Any] = bool) -> CallRows:
    return (call_row(call, boolean), tag_pairs(call.call_id, call.tags),
            [attempt_row(a) for a in attempts])


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
