"""Per-key rate limits: requests per minute and tokens per minute, as token buckets.

A bucket holds up to ``per_minute`` units and refills at ``per_minute / 60`` a second, so a key
may burst its whole minute's allowance and then goes at the steady rate. Requests are taken one
at a time before dispatch. Tokens are unknown until a call ends, so a request is admitted while
the token bucket is not in debt and the call's actual tokens are charged afterwards (a bucket may
go negative; the key then waits until it refills). Everything is in-memory, per process, under
the asyncio loop (no locks needed: no awaits between check and take).
"""

from __future__ import annotations

from dataclasses import dataclass

from buttress.clock import SYSTEM_CLOCK, Clock


@dataclass(slots=True)
class TokenBucket:
    capacity: float
    level: float
    updated: float

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` units are available (0 when they already are)."""
        missing = amount - self.level
        return 0.0 if missing <= 0 else missing / (self.capacity / 60.0)


class RateLimiter:
    """RPM and TPM buckets per key id; limits are given per call, so key edits apply at once."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._rpm: dict[str, TokenBucket] = {}
        self._tpm: dict[str, TokenBucket] = {}

    def admit(self, key_id: str, rpm: int | None, tpm: int | None) -> float | None:
        """Take one request from ``key_id``'s allowance, or return the seconds to wait."""
        now = self._clock.now()
        requests = _current(self._rpm, key_id, rpm, now) if rpm else None
        wait = requests.wait_for(1.0) if requests is not None else 0.0
        if tpm:
            tokens = _current(self._tpm, key_id, tpm, now)
            if tokens.level <= 0:
                wait = max(wait, tokens.wait_for(1e-9))
        if wait > 0:
            return wait
        if requests is not None:
            requests.level -= 1.0
        return None

    def charge_tokens(self, key_id: str, tpm: int | None, tokens: int) -> None:
        """Charge a finished call's tokens to ``key_id``'s TPM allowance."""
        if not tpm or tokens <= 0:
            return
        _current(self._tpm, key_id, tpm, self._clock.now()).level -= tokens


def _current(table: dict[str, TokenBucket], key_id: str, capacity: int,
             now: float) -> TokenBucket:
    """``key_id``'s bucket, refilled up to ``now`` (and resized if the key's limit changed)."""
    bucket = table.get(key_id)
    if bucket is None:
        bucket = table[key_id] = TokenBucket(float(capacity), float(capacity), now)
        return bucket
    if bucket.capacity != capacity:
        bucket.capacity = float(capacity)
    level = bucket.level + (now - bucket.updated) * (capacity / 60.0)
    bucket.level = level if level < capacity else float(capacity)
    bucket.updated = now
    return bucket
