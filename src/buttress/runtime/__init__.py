"""The call runtime: deadlines, timeouts, retries, breakers, fallback, hedging, streaming.

Owns: executing a ``Call`` against providers and the hooks around it. Imports ``providers`` and
core values; must not import the ledger, the gateway, the CLI or config files (it is handed
everything it needs).
"""

from buttress.runtime.hooks import CallHook, Outcome
from buttress.runtime.policy import Policy
from buttress.runtime.result import Attempt, Call, CallResult, Target
from buttress.runtime.runtime import Runtime
from buttress.runtime.streaming import CallStream

__all__ = ["Attempt", "Call", "CallHook", "CallResult", "CallStream", "Outcome", "Policy",
           "Runtime", "Target"]
