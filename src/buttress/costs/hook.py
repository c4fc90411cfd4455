"""The call hook that enforces budgets before dispatch and watches for runaway spend.

``before`` reserves the request's maximum cost against every budget that applies (or raises
``BudgetExceeded``, so the call is never sent); ``after`` settles the reservation with what the
call actually cost and feeds the runaway detector. This module is the costs package's one link to
the runtime, whose values it reads.
"""

from __future__ import annotations

from collections.abc import Callable

from buttress.costs.budgets import BudgetBook, CallScopes, Reservation
from buttress.costs.pricing import Pricer
from buttress.costs.runaway import RunawayDetector
from buttress.runtime.hooks import Outcome
from buttress.runtime.result import Call
from buttress.types import Usage

#: the most one call may cost, before it is sent
MaxCostFn = Callable[[Call], float]


class BudgetHook:
    def __init__(self, book: BudgetBook | None, max_cost: MaxCostFn, *,
                 runaway: RunawayDetector | None = None) -> None:
        self.book = book
        self.needs_before = book is not None  # no book: nothing to reserve
        self.max_cost = max_cost
        self.runaway = runaway
        self._held: dict[str, Reservation] = {}
        self._synced = False

    async def before(self, call: Call) -> None:
        if self.book is None:
            return
        if not self._synced:
            # spend recorded before this process started counts against this period's budgets
            self._synced = True
            await self.book.sync()
        scopes = CallScopes(feature=call.feature, key=call.key_id, tags=call.tags)
        self._held[call.call_id] = self.book.reserve(scopes, self.max_cost(call))

    async def after(self, outcome: Outcome) -> None:
        cost = outcome.result.cost_usd if outcome.result is not None else None
        reservation = self._held.pop(outcome.call.call_id, None)
        if reservation is not None:
            reservation.settle(cost)
        if self.runaway is not None and outcome.call.feature:
            self.runaway.observe(outcome.call.feature, cost)


class CallPricing:
    """Prices calls by provider *type* (config names providers; genai-prices knows types)."""

    def __init__(self, provider_types: dict[str, str], pricer: Pricer | None = None,
                 default_max_tokens: int = 4096) -> None:
        self.pricer = pricer or Pricer(local_providers={"local", "fake", "llamacpp"})
        self.types = provider_types
        self.default_max_tokens = default_max_tokens

    def price(self, provider: str, model: str, usage: Usage) -> float | None:
        cost = self.pricer.price(self.types.get(provider, provider), model, usage)
        return cost.total_usd if cost is not None else None

    def max_cost(self, call: Call) -> float:
        """The most this call's request can cost on any model of its chain."""
        request = call.request
        # about 3 characters a token, rounded up generously: reserving too much is safe
        chars = 0
        for m in request.messages:
            chars += len(m.content or "") + 16
        prompt_tokens = chars // 3 + 16
        max_tokens = request.max_tokens or self.default_max_tokens
        most = 0.0
        for t in call.targets:
            cost = self.pricer.max_cost(self.types.get(t.provider, t.provider), t.model,
                                        prompt_tokens, max_tokens)
            if cost > most or cost != cost:  # a NaN (no price gives one) stays: refused
                most = cost
        return most
