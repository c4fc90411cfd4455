"""The versioned records the ledger persists: one per call, one per attempt, one per feedback.

Records are plain immutable values. The runtime builds them; the writer redacts and stores them.
``SCHEMA_VERSION`` is the version of these record shapes and is stored on every call row, so a
reader can tell which shape a row was written with.
"""

from __future__ import annotations

from math import isfinite
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from buttress.trusted import trusted
from buttress.types import CallRequest, Message, Usage

SCHEMA_VERSION = 2

CallStatus = Literal["ok", "error", "miss", "cancelled"]
AttemptKind = Literal["primary", "retry", "fallback", "hedge", "cache", "repair", "sample"]
AttemptStatus = Literal["ok", "error", "cancelled", "skipped"]
FeedbackSignal = Literal["accepted", "edited", "retried", "rejected", "score"]
FEEDBACK_SIGNALS: tuple[str, ...] = ("accepted", "edited", "retried", "rejected", "score")


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def trusted(cls, fields: dict[str, Any]) -> Self:
        """A record from values the runtime has already typed, without validating them again
        (``buttress.trusted``: the writer builds two records per call). A dict that names every
        field (the hook's do) becomes the record's own: the caller must not change it after."""
        return trusted(cls, fields)

    def evolve(self, update: dict[str, Any]) -> Self:
        """A copy with ``update`` applied (trusted values, as for ``trusted``)."""
        return self.trusted({**self.__dict__, **update})


class Validation(Record):
    """The outcome of checking the output against the feature's contract."""

    outcome: str  # e.g. "passed", "failed", "repaired", "skipped"
    reasons: tuple[str, ...] = ()


class CallRecord(Record):
    """One call as the application saw it, whatever happened underneath.

    ``cost_usd`` is the total of every attempt (``None`` when the price is unknown);
    ``cost_saved_usd`` is what a cache hit saved. ``created_at`` is UTC epoch seconds.
    ``api_key_id`` names a virtual key; it is never the secret itself.
    """

    schema_version: int = SCHEMA_VERSION
    call_id: str
    trace_id: str | None = None
    parent_id: str | None = None
    feature: str = ""
    prompt_name: str | None = None
    prompt_version: str | None = None  # the prompt file's content hash
    prompt_commit: str | None = None  # the git commit holding that content, when committed
    environment: str | None = None
    tags: tuple[str, ...] = ()
    user_id: str | None = None
    session_id: str | None = None
    api_key_id: str | None = None
    provider: str = ""
    model_requested: str = ""
    model_served: str | None = None
    system_fingerprint: str | None = None
    request: dict[str, Any] = Field(default_factory=dict)
    output_text: str | None = None
    output_value: Any = None
    finish_reason: str | None = None
    validation: Validation | None = None
    status: CallStatus = "ok"
    error_kind: str | None = None
    error_message: str | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None
    cost_saved_usd: float = 0.0
    cache_hit: bool = False
    tier: int | None = None
    confidence: float | None = None
    created_at: float
    attempts: int = 0

    @property
    def usage(self) -> Usage:
        return Usage(prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
                     cached_tokens=self.cached_tokens, reasoning_tokens=self.reasoning_tokens)


class AttemptRecord(Record):
    """One attempt against one provider within a call (or a cache lookup that answered it).

    ``attempt_id`` defaults to ``"{call_id}:{index}"`` so re-recording the same attempt is
    idempotent.
    """

    attempt_id: str = ""  # filled in from call_id and index when left empty
    call_id: str
    index: int
    kind: AttemptKind = "primary"
    provider: str = ""
    model_requested: str = ""
    model_served: str | None = None
    status: AttemptStatus = "ok"
    error_kind: str | None = None
    error_message: str | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None
    started_at: float

    @model_validator(mode="before")
    @classmethod
    def _default_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("attempt_id") and "call_id" in data:
            data = {**data, "attempt_id": f"{data['call_id']}:{data.get('index', 0)}"}
        return data


class FeedbackRecord(Record):
    """A downstream signal about a call, recorded any time after it. ``score`` needs a value."""

    feedback_id: str
    call_id: str
    signal: FeedbackSignal
    value: float | None = None
    comment: str | None = None
    created_at: float

    @model_validator(mode="after")
    def _score_has_value(self) -> FeedbackRecord:
        if self.signal == "score" and self.value is None:
            raise ValueError("feedback signal 'score' needs a numeric value")
        return self


def request_payload(request: CallRequest) -> dict[str, Any]:
    """The JSON form of a request as the ledger stores it: messages and the parameters set."""
    plain = _plain_payload(request)
    return plain if plain is not None else request.model_dump(mode="json",
                                                                exclude_defaults=True)


def _plain_payload(r: CallRequest) -> dict[str, Any] | None:
    """``request_payload`` of the usual request, in half the time of ``model_dump``: text
    messages and scalar parameters, no tools, response format or extras. None for any other,
    which ``model_dump`` serialises instead (a test holds the two equal)."""
    if type(r) is not CallRequest or r.tools or r.response_format is not None or r.extra:
        return None
    messages = []
    for m in r.messages:
        if type(m) is not Message or m.tool_calls or m.tool_call_id is not None or \
                m.name is not None:
            return None
        content = m.content
        messages.append({"role": m.role} if content is None else
                        {"role": m.role, "content": content})
    out: dict[str, Any] = {"model": r.model, "messages": messages}
    for name, value in (("temperature", r.temperature), ("top_p", r.top_p)):
        if value is not None:
            if type(value) is not float or not isfinite(value):  # as pydantic would say it
                return None
            out[name] = value
    if r.max_tokens is not None:
        out["max_tokens"] = r.max_tokens
    if r.stop:
        out["stop"] = list(r.stop)
    if r.seed is not None:
        out["seed"] = r.seed
    if r.tool_choice is not None:
        out["tool_choice"] = r.tool_choice
    if r.logprobs:
        out["logprobs"] = r.logprobs
    if r.top_logprobs is not None:
        out["top_logprobs"] = r.top_logprobs
    return out
