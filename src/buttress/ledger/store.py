"""The store seam: what every ledger backend (SQLite, PostgreSQL) must do, over plain values.

Stores are synchronous and thread-safe; the ledger writer drives writes from its own thread, and
readers (CLI, dashboard, budgets) call them from wherever they run, off the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from buttress.ledger.records import AttemptRecord, CallRecord, CallStatus, FeedbackRecord

AggregateBy = Literal["feature", "model", "provider", "key", "tag", "day"]
AGGREGATE_BY: tuple[str, ...] = ("feature", "model", "provider", "key", "tag", "day")


class CallFilter(BaseModel):
    """Which calls to list. Unset fields do not filter; ``model`` matches requested or served.

    ``since`` is inclusive and ``until`` exclusive (UTC epoch seconds); results are newest first.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    feature: str | None = None
    status: CallStatus | None = None
    model: str | None = None
    provider: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    tag: str | None = None
    trace_id: str | None = None
    api_key_id: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = Field(default=100, ge=1, le=100_000)
    offset: int = Field(default=0, ge=0)


class AggregateRow(BaseModel):
    """Totals for one group. ``key`` is the feature, model, provider, key id, tag or UTC day
    (``YYYY-MM-DD``); ``None`` when calls had no value for it (e.g. no virtual key)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str | None
    calls: int
    errors: int
    misses: int
    cache_hits: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost_usd: float
    cost_saved_usd: float

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@runtime_checkable
class LedgerStore(Protocol):
    def write(self, calls: Sequence[CallRecord], attempts: Sequence[AttemptRecord] = (),
              feedback: Sequence[FeedbackRecord] = ()) -> None:
        """Persist one batch atomically. Records whose id is already stored are skipped."""
        ...

    def query_calls(self, filter: CallFilter | None = None) -> list[CallRecord]:
        """Calls matching ``filter``, newest first."""
        ...

    def get_call(self, call_id: str) -> tuple[CallRecord, list[AttemptRecord]] | None:
        """One call with its attempts in order, or ``None`` if unknown."""
        ...

    def feedback_for(self, call_id: str) -> list[FeedbackRecord]:
        """Feedback recorded against a call, oldest first."""
        ...

    def aggregate(self, by: AggregateBy, since: float | None = None,
                  until: float | None = None) -> list[AggregateRow]:
        """Totals grouped by ``by`` over ``[since, until)``, highest cost first."""
        ...

    def spend(self, since: float | None = None, until: float | None = None, *,
              feature: str | None = None, key: str | None = None,
              tag: str | None = None) -> float:
        """Total ``cost_usd`` of calls over ``[since, until)``, optionally for one scope."""
        ...

    def close(self) -> None:
        """Release connections. Idempotent."""
        ...
