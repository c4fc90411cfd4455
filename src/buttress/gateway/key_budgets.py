"""Virtual keys' budgets, enforced by the costs package's ``BudgetBook`` (scope ``key``).

A call hook like the config's budgets: it reserves the call's maximum cost against its key's
budgets before dispatch (so concurrent calls cannot overspend by more than one call's maximum)
and settles after. The book is rebuilt from the key records whenever keys change; calls already
in flight settle against the book they reserved in.
"""

from __future__ import annotations

from collections.abc import Iterable

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.costs.alerts import AlertSink
from buttress.costs.budgets import BudgetBook, SpendSource
from buttress.costs.hook import BudgetHook, MaxCostFn
from buttress.gateway.keys import VirtualKey
from buttress.runtime.hooks import Outcome
from buttress.runtime.result import Call


class KeyBudgets:
    def __init__(self, max_cost: MaxCostFn, *, spend_source: SpendSource | None = None,
                 clock: Clock = SYSTEM_CLOCK, alert_sink: AlertSink | None = None) -> None:
        self._max_cost = max_cost
        self.spend_source = spend_source
        self._clock = clock
        self._sink = alert_sink
        self._hook = BudgetHook(None, max_cost)
        self._by_call: dict[str, BudgetHook] = {}
        self.book: BudgetBook | None = None

    def update(self, keys: Iterable[VirtualKey]) -> None:
        """Rebuild the budgets from the key records (at start and whenever keys change)."""
        budgets = [b for k in keys if k.active for b in k.budgets()]
        self.book = BudgetBook(budgets, spend_source=self.spend_source, clock=self._clock,
                               alert_sink=self._sink) if budgets else None
        # a fresh hook re-reads this period's spend from the ledger on its first call
        self._hook = BudgetHook(self.book, self._max_cost)

    async def before(self, call: Call) -> None:
        if call.key_id is None or self.book is None:
            return
        hook = self._hook
        await hook.before(call)
        self._by_call[call.call_id] = hook

    async def after(self, outcome: Outcome) -> None:
        hook = self._by_call.pop(outcome.call.call_id, None)
        if hook is not None:
            await hook.after(outcome)
