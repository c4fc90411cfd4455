"""Budgets per feature, key, tag and globally, per UTC day or month.

Hard limits are enforced before dispatch: ``reserve`` books the request's maximum cost against
every budget that applies, or raises ``BudgetExceeded``; ``settle`` swaps the reservation for the
actual cost. Because a reservation is counted as spent until it settles, concurrent calls cannot
overspend a limit as long as each call's actual cost stays within its reserved maximum.

Soft thresholds send one ``Alert`` per budget per period, as does the first hard refusal.

Spend already recorded (by earlier runs, or other replicas) comes from ``spend_source`` when
``sync`` is awaited, typically at start-up and then periodically. The in-memory count takes the
larger of what it knows and what the store reports, so unflushed ledger records are not lost but
spend by other replicas is only seen at the next ``sync``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.costs.alerts import Alert, AlertSink, LogAlertSink
from buttress.costs.periods import PeriodKind, PeriodWindow, period_at
from buttress.errors import BudgetExceeded, ConfigError, UsageError
from buttress.types import Value

ScopeKind = Literal["global", "feature", "key", "tag"]


class Budget(Value):
    """A spending limit in USD for one scope and period.

    ``scope`` is ``global`` or one of ``feature``, ``key`` (a virtual API key id) and ``tag``,
    with ``target`` naming which. The optional soft threshold is ``soft_fraction`` of the limit
    or ``soft_usd``, not both.
    """

    scope: ScopeKind = "global"
    target: str | None = None
    period: PeriodKind = "daily"
    limit_usd: float = Field(ge=0, allow_inf_nan=False)
    soft_fraction: float | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)
    soft_usd: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    name: str = ""

    @model_validator(mode="after")
    def _check(self) -> Budget:
        if self.scope == "global" and self.target is not None:
            raise ValueError("a global budget takes no target")
        if self.scope != "global" and not self.target:
            raise ValueError(f"a {self.scope} budget needs a target (which {self.scope})")
        if self.soft_fraction is not None and self.soft_usd is not None:
            raise ValueError("give soft_fraction or soft_usd, not both")
        if not self.name:
            object.__setattr__(self, "name", f"{self.scope_label}/{self.period}")
        return self

    @property
    def scope_label(self) -> str:
        return "global" if self.scope == "global" else f"{self.scope}:{self.target}"

    @property
    def soft_threshold(self) -> float | None:
        if self.soft_fraction is not None:
            return self.limit_usd * self.soft_fraction
        return self.soft_usd


@dataclass(frozen=True, slots=True)
class CallScopes:
    """What a call is charged to: its feature, its virtual API key and its tags."""

    feature: str | None = None
    key: str | None = None
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.tags) > 1:  # a repeated tag must not charge its budget twice
            object.__setattr__(self, "tags", tuple(dict.fromkeys(self.tags)))


@dataclass(frozen=True, slots=True)
class SpendQuery:
    """Asks the ledger: how much did ``scope``/``target`` spend in ``[start, end)``?"""

    budget: str
    scope: ScopeKind
    target: str | None
    start: datetime
    end: datetime


SpendSource = Callable[[SpendQuery], Awaitable[float]]


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    budget: str
    scope: str
    period: str
    limit_usd: float
    spent_usd: float
    reserved_usd: float
    soft_threshold_usd: float | None


@dataclass(slots=True)
class _State:
    """One budget during one period."""

    budget: Budget
    window: PeriodWindow
    soft: float | None = None  # the budget's soft threshold, read once
    spent: float = 0.0
    reserved: float = 0.0
    soft_alerted: bool = False
    hard_alerted: bool = False


class Reservation:
    """Money held against budgets for one call. Exactly one of ``settle`` or ``release``."""

    __slots__ = ("_book", "_done", "_states", "amount")

    def __init__(self, book: BudgetBook, states: Sequence[_State], amount: float) -> None:
        self._book = book
        self._states = states
        self._done = False
        self.amount = amount

    @property
    def budgets(self) -> tuple[str, ...]:
        return tuple(s.budget.name for s in self._states)

    def settle(self, actual_cost: float | None) -> None:
        """The call finished: drop the reservation and charge what it cost (``None``: unpriced,
        charged as 0)."""
        self._book._finish(self, actual_cost)

    def release(self, actual_cost: float | None = 0.0) -> None:
        """The call failed: drop the reservation, charging any partial cost it did incur."""
        self._book._finish(self, actual_cost)


class BudgetBook:
    """Every budget's spend and reservations for the current periods; safe across asyncio tasks
    and threads (one lock, held for O(applicable budgets) arithmetic only)."""

    def __init__(self, budgets: Iterable[Budget], spend_source: SpendSource | None = None, *,
                 clock: Clock = SYSTEM_CLOCK, alert_sink: AlertSink | None = None) -> None:
        self._budgets = tuple(budgets)
        seen: set[str] = set()
        for budget in self._budgets:
            if budget.name in seen:
                raise ConfigError(f"two budgets are named {budget.name!r}; names must be unique",
                                  key="budgets")
            seen.add(budget.name)
        self._global = tuple(b for b in self._budgets if b.scope == "global")
        self._scoped: dict[tuple[str, str], tuple[Budget, ...]] = {}
        for budget in self._budgets:
            if budget.scope != "global":
                index = (budget.scope, budget.target or "")
                self._scoped[index] = (*self._scoped.get(index, ()), budget)
        self._spend_source = spend_source
        self._clock = clock
        self._sink: AlertSink = alert_sink if alert_sink is not None else LogAlertSink()
        self._states: dict[str, _State] = {}
        self._windows: dict[PeriodKind, PeriodWindow] = {}
        self._lock = threading.Lock()

    @property
    def budgets(self) -> tuple[Budget, ...]:
        return self._budgets

    def applicable(self, scopes: CallScopes) -> list[Budget]:
        """The budgets a call with these scopes is charged to."""
        found = list(self._global)
        scoped = self._scoped
        if scoped:
            if scopes.feature is not None:
                found.extend(scoped.get(("feature", scopes.feature), ()))
            if scopes.key is not None:
                found.extend(scoped.get(("key", scopes.key), ()))
            for tag in scopes.tags:
                found.extend(scoped.get(("tag", tag), ()))
        return found

    def reserve(self, scopes: CallScopes, max_cost: float) -> Reservation:
        """Hold ``max_cost`` against every applicable budget, or raise ``BudgetExceeded`` (and
        hold nothing) when any hard limit would be passed."""
        if not max_cost >= 0 or math.isinf(max_cost):  # also refuses NaN
            raise UsageError(f"max_cost must be a finite amount >= 0, got {max_cost!r}")
        budgets = self.applicable(scopes)
        if not budgets:
            return Reservation(self, (), max_cost)
        wall = self._clock.wall()
        refusal: BudgetExceeded | None = None
        alert: Alert | None = None
        with self._lock:
            states = [self._state(budget, wall) for budget in budgets]
            for state in states:
                committed = state.spent + state.reserved
                limit = state.budget.limit_usd
                if committed + max_cost > limit:
                    refusal = BudgetExceeded(state.budget.name, limit, committed, max_cost)
                    if not state.hard_alerted:
                        state.hard_alerted = True
                        alert = _alert(state, "hard_limit", committed + max_cost, limit, wall,
                                       "a call was refused before dispatch")
                    break
            else:
                for state in states:
                    state.reserved += max_cost
        if alert is not None:
            self._sink.send(alert)
        if refusal is not None:
            raise refusal
        return Reservation(self, states, max_cost)

    def _finish(self, reservation: Reservation, actual_cost: float | None) -> None:
        actual = 0.0 if actual_cost is None else actual_cost
        bad = not actual >= 0 or math.isinf(actual)
        alerts: list[Alert] = []
        with self._lock:
            if reservation._done:
                raise UsageError("this reservation was already settled or released")
            reservation._done = True
            charge = 0.0 if bad else actual
            for state in reservation._states:
                state.reserved = max(0.0, state.reserved - reservation.amount)
                state.spent += charge
                if state.soft is not None:
                    self._check_soft(state, alerts)
        for alert in alerts:
            self._sink.send(alert)
        if bad:
            raise UsageError(f"actual_cost must be a finite amount >= 0, got {actual_cost!r}; "
                             "the reservation was released without a charge")

    async def sync(self) -> None:
        """Load what each budget already spent this period from ``spend_source``."""
        if self._spend_source is None:
            return
        wall = self._clock.wall()
        for budget in self._budgets:
            window = self._window(budget.period, wall)
            spent = await self._spend_source(SpendQuery(
                budget.name, budget.scope, budget.target, window.start_datetime,
                window.end_datetime))
            if not spent >= 0 or math.isinf(spent):
                raise UsageError(f"spend source gave {spent!r} for budget {budget.name!r}")
            alerts: list[Alert] = []
            with self._lock:
                state = self._state(budget, wall)
                if state.window == window:
                    state.spent = max(state.spent, spent)
                    self._check_soft(state, alerts)
            for alert in alerts:
                self._sink.send(alert)

    def status(self) -> list[BudgetStatus]:
        """Every budget's standing in its current period."""
        wall = self._clock.wall()
        with self._lock:
            states = [self._state(budget, wall) for budget in self._budgets]
            return [BudgetStatus(s.budget.name, s.budget.scope_label, s.window.label,
                                 s.budget.limit_usd, s.spent, s.reserved,
                                 s.budget.soft_threshold) for s in states]

    def _state(self, budget: Budget, wall: float) -> _State:
        state = self._states.get(budget.name)
        if state is None or not state.window.contains(wall):
            # A new period starts from zero; reservations made in the old one still settle
            # against the old state object they hold.
            state = _State(budget, self._window(budget.period, wall), budget.soft_threshold)
            self._states[budget.name] = state
        return state

    def _window(self, kind: PeriodKind, wall: float) -> PeriodWindow:
        window = self._windows.get(kind)
        if window is None or not window.contains(wall):
            window = period_at(kind, wall)
            self._windows[kind] = window
        return window

    def _check_soft(self, state: _State, alerts: list[Alert]) -> None:
        threshold = state.soft
        if threshold is not None and not state.soft_alerted and state.spent >= threshold:
            state.soft_alerted = True
            alerts.append(_alert(state, "soft_limit", state.spent, threshold, self._clock.wall(),
                                 f"hard limit ${state.budget.limit_usd:.6f}"))


def _alert(state: _State, kind: Literal["soft_limit", "hard_limit"], value: float,
           threshold: float, wall: float, detail: str) -> Alert:
    return Alert(kind=kind, scope=state.budget.scope_label, period=state.window.label,
                 value=value, threshold=threshold, budget=state.budget.name, detail=detail,
                 at=wall)

