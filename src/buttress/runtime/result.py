"""What a call was asked to do (``Call``), what each attempt did, and what came back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from buttress.errors import error_kind
from buttress.runtime.confidence import ConfidenceSpec
from buttress.runtime.policy import Policy
from buttress.runtime.routing import Routing
from buttress.runtime.structured import OutputContract
from buttress.trusted import trusted
from buttress.types import CallRequest, Completion, FinishReason, ToolCall, Usage, Value

NO_USAGE = Usage()

PriceFn = Callable[[str, str, Usage], float | None]
"""(provider name, model, usage) -> cost in USD, or None when the price is unknown."""

AttemptKind = Literal["primary", "retry", "fallback", "hedge", "cache", "repair", "sample"]
CacheMode = Literal["use", "bypass", "refresh"]
"""``use``: read and write the feature's cache; ``bypass``: neither; ``refresh``: write only."""
AttemptStatus = Literal["ok", "error", "cancelled", "skipped"]
ValidationOutcome = Literal["passed", "repaired", "failed"]


class Target(Value):
    """One step of a fallback chain: a configured provider and the provider's model name."""

    provider: str
    model: str
    alias: str = ""  # the configured alias, for display
    expected_latency_s: float | None = None  # configured; else the runtime's running average

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


class Call(Value):
    """Everything the runtime needs for one call. The request's ``model`` is replaced per target."""

    request: CallRequest
    targets: tuple[Target, ...]
    policy: Policy = Policy()
    call_id: str
    trace_id: str
    parent_id: str | None = None
    feature: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    prompt_commit: str | None = None
    environment: str = "development"
    tags: tuple[str, ...] = ()
    user_id: str | None = None
    session_id: str | None = None
    key_id: str | None = None
    cache: CacheMode = "use"
    metadata: dict[str, Any] = Field(default_factory=dict)
    # Output you can trust (runtime.checked); a call with none of them pays nothing for them.
    output: OutputContract | None = None
    confidence: ConfidenceSpec | None = None
    routing: Routing | None = None


class Attempt(Value):
    """One try against one target, in the order they started."""

    index: int
    kind: AttemptKind
    provider: str
    model: str
    started_at: float
    latency_s: float
    ttft_s: float | None = None
    status: AttemptStatus
    error_kind: str | None = None
    error: str | None = None
    model_served: str | None = None
    usage: Usage = Usage()
    #: priced once, when the attempt ended; None when it used no tokens or has no known price
    cost_usd: float | None = None


@dataclass(slots=True)
class AttemptClock:
    """A running attempt, mutable until it ends; becomes an ``Attempt``."""

    index: int
    kind: AttemptKind
    target: Target
    started_at: float  # wall clock
    started: float  # monotonic
    ttft_s: float | None = None
    usage: Usage = NO_USAGE  # immutable, so one shared instance will do
    model_served: str | None = None
    next_index: Callable[[], int] | None = None  # the executor's counter, for repairs
    price: PriceFn | None = None  # the runtime's, to price the attempt as it ends

    def restart(self, kind: AttemptKind, wall: float, now: float,
                error: BaseException | None) -> Attempt:
        """Close the step so far as a failed attempt and go on timing a new step (a repair)
        under a fresh index; the executor finishes whichever step is last."""
        done = self.finish(now, "error", error)
        if self.next_index is not None:
            self.index = self.next_index()
        self.kind, self.started_at, self.started = kind, wall, now
        self.ttft_s, self.usage = None, NO_USAGE
        return done

    def finish(self, now: float, status: AttemptStatus,
               error: BaseException | None = None) -> Attempt:
        usage, model_served = self.usage, self.model_served
        cost = None
        if self.price is not None and usage.total_tokens:
            cost = self.price(self.target.provider, model_served or self.target.model, usage)
        return trusted(Attempt, {  # every field comes from typed values
            "index": self.index, "kind": self.kind, "provider": self.target.provider,
            "model": self.target.model, "started_at": self.started_at,
            "latency_s": max(0.0, now - self.started), "ttft_s": self.ttft_s, "status": status,
            "error_kind": error_kind(error) if error is not None else None,
            "error": str(error) if error is not None else None,
            "model_served": model_served, "usage": usage, "cost_usd": cost})


class Miss(Value):
    """Why a call with an output contract has no value: every tier's answer was rejected."""

    reasons: tuple[str, ...]
    raw: str | None = None


class CallResult(Value):
    """A call that ended with an answer: the completion, where it came from, what it took.

    With an output contract, ``value`` is the validated answer (a model instance or JSON data)
    or ``None`` with ``miss`` saying why; ``tier`` is the position in the chain that answered.
    """

    call_id: str
    trace_id: str
    feature: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    completion: Completion
    provider: str
    model_requested: str
    model_served: str
    attempts: tuple[Attempt, ...]
    latency_s: float
    ttft_s: float | None = None
    cost_usd: float | None = None
    cache_hit: bool = False
    cost_saved_usd: float = 0.0  # on a cache hit: what the call that paid for the answer cost
    value: Any = None
    miss: Miss | None = None
    validation: ValidationOutcome | None = None
    validation_reasons: tuple[str, ...] = ()
    confidence: float | None = None
    tier: int | None = None

    @property
    def ok(self) -> bool:
        """False for a typed miss."""
        return self.miss is None

    @property
    def text(self) -> str:
        return self.completion.text or ""

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return self.completion.tool_calls

    @property
    def finish_reason(self) -> FinishReason:
        return self.completion.finish_reason

    @property
    def usage(self) -> Usage:
        return self.completion.usage

    @property
    def total_usage(self) -> Usage:
        """Tokens across every attempt, the ones that failed or lost a hedge included."""
        attempts = self.attempts
        if len(attempts) == 1:  # the usual case: nothing to add up
            return attempts[0].usage
        total = Usage()
        for attempt in attempts:
            total = total + attempt.usage
        return total
