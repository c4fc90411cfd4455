"""Circuit breaker per provider and model, with half-open probing."""

from __future__ import annotations

from typing import Literal

from buttress.clock import Clock
from buttress.errors import CircuitOpen

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Opens after ``failures`` consecutive failures; after ``cooldown_s`` lets one probe through.

    A successful probe closes the circuit; a failed one re-opens it for another cool-down.
    While the probe is in flight other attempts are refused.
    """

    def __init__(self, provider: str, model: str, *, failures: int, cooldown_s: float,
                 clock: Clock) -> None:
        self.provider = provider
        self.model = model
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._consecutive = 0
        self._opened_at = 0.0
        self._state: State = "closed"
        self._probing = False

    @property
    def state(self) -> State:
        if self._state == "open" and self._clock.now() - self._opened_at >= self.cooldown_s:
            return "half_open"
        return self._state

    def acquire(self) -> None:
        """Allow an attempt or raise ``CircuitOpen``."""
        state = self.state
        if state == "closed":
            return
        if state == "half_open" and not self._probing:
            self._state = "half_open"
            self._probing = True
            return
        reopens_in = max(0.0, self._opened_at + self.cooldown_s - self._clock.now())
        raise CircuitOpen(self.provider, self.model, reopens_in)

    def record_success(self) -> None:
        self._consecutive = 0
        self._state = "closed"
        self._probing = False

    def record_failure(self) -> None:
        self._consecutive += 1
        if self._state == "half_open" or self._consecutive >= self.failures:
            self._state = "open"
            self._opened_at = self._clock.now()
        self._probing = False

    def record_abandoned(self) -> None:
        """The attempt was cancelled (a hedge lost, the caller left): no verdict either way."""
        if self._state == "half_open":
            self._probing = False


class BreakerBoard:
    """The breakers of one runtime, one per (provider, model), created on first use."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._breakers: dict[tuple[str, str], CircuitBreaker] = {}

    def get(self, provider: str, model: str, *, failures: int,
            cooldown_s: float) -> CircuitBreaker:
        key = (provider, model)
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = CircuitBreaker(provider, model, failures=failures, cooldown_s=cooldown_s,
                                     clock=self._clock)
            self._breakers[key] = breaker
        return breaker

    def states(self) -> dict[tuple[str, str], State]:
        return {key: b.state for key, b in self._breakers.items()}
