"""Call hooks: cross-cutting behaviour (budgets, recording, metrics, alerts) around every call.

A hook sees a call before it is dispatched (and may refuse it by raising, as a budget does) and
sees its outcome after, success or failure, plain or streamed. ``after`` must not block: it hands
work to queues (the ledger writer) or does in-memory bookkeeping. The list of hooks is assembled
in one place, ``buttress.client.build_runtime``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from buttress.runtime.result import Attempt, Call, CallResult

log = logging.getLogger("buttress.runtime")


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a call ended: ``result`` on success, ``error`` on failure, neither if abandoned."""

    call: Call
    result: CallResult | None
    error: BaseException | None
    attempts: tuple[Attempt, ...]
    latency_s: float
    ttft_s: float | None = None
    cancelled: bool = False
    #: the text a stream had delivered when it ended without an answer (interrupted or left)
    partial_text: str | None = None

    @property
    def status(self) -> str:
        if self.result is not None:
            return "ok" if self.result.miss is None else "miss"
        return "cancelled" if self.cancelled else "error"


class CallHook(Protocol):
    """A hook may set ``needs_before = False`` (a class or instance attribute) when its
    ``before`` does nothing, as a hook that only records outcomes: the runtime then does not
    call it (``refusers``)."""

    async def before(self, call: Call) -> None:
        """Called before dispatch; raise to refuse the call."""
        ...

    async def after(self, outcome: Outcome) -> None:
        """Called once when the call has ended, whatever the outcome. Must not block."""
        ...


class CallCache(Protocol):
    """Answers a call from earlier results. ``lookup`` runs before dispatch (before budgets, so
    a hit reserves nothing); ``store`` runs after a successful call. Both honour ``call.cache``
    and must stay cheap: a slow backend is the cache's to hide (e.g. a background write)."""

    async def lookup(self, call: Call) -> CallResult | None: ...

    async def store(self, call: Call, result: CallResult) -> None: ...


def refusers(hooks: Sequence[CallHook]) -> tuple[CallHook, ...]:
    """The hooks whose ``before`` counts (all but those that say ``needs_before = False``)."""
    return tuple(h for h in hooks if getattr(h, "needs_before", True))


async def run_before(hooks: Sequence[CallHook], call: Call) -> None:
    for hook in hooks:
        await hook.before(call)


async def run_after(hooks: Sequence[CallHook], outcome: Outcome) -> None:
    # A failing hook must not turn a good call into an error, nor stop the others.
    for hook in hooks:
        try:
            await hook.after(outcome)
        except Exception:
            log.exception("call hook %s failed after call %s", type(hook).__name__,
                          outcome.call.call_id)
