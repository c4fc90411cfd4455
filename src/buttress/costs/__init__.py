"""Cost: pricing calls, budgets enforced before dispatch, alerts and runaway detection.

Owns: the price of a call (from the maintained ``genai-prices`` table plus local overrides),
budgets per feature, key, tag and globally, alert values and sinks, and runaway detection.
Everything here is in-memory and cheap enough for the call path; already-spent amounts come in
through an injected ``SpendSource`` (the ledger's aggregate queries).

Must not import: ``buttress.ledger``, ``buttress.gateway``, ``buttress.cli`` (they call into this
package, not the other way round). Only ``hook.py``, the call hook, reads the runtime's values.
"""

from buttress.costs.alerts import Alert, AlertSink, LogAlertSink, WebhookAlertSink
from buttress.costs.budgets import (
    Budget,
    BudgetBook,
    BudgetStatus,
    CallScopes,
    Reservation,
    SpendQuery,
)
from buttress.costs.pricing import Cost, ModelPrice, Pricer, Unpriced
from buttress.costs.runaway import RunawayDetector, RunawayPolicy

__all__ = [
    "Alert",
    "AlertSink",
    "Budget",
    "BudgetBook",
    "BudgetStatus",
    "CallScopes",
    "Cost",
    "LogAlertSink",
    "ModelPrice",
    "Pricer",
    "Reservation",
    "RunawayDetector",
    "RunawayPolicy",
    "SpendQuery",
    "Unpriced",
    "WebhookAlertSink",
]
