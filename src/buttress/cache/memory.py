"""The in-process backend: a dict with expiry times, bounded by evicting the oldest entries."""

from __future__ import annotations

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import UsageError


class MemoryBackend:
    def __init__(self, *, max_entries: int = 100_000, clock: Clock = SYSTEM_CLOCK) -> None:
        if max_entries < 1:
            raise UsageError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.clock = clock
        # key -> (value, expires_at on the monotonic clock); insertion order is age order
        self._data: dict[str, tuple[bytes, float]] = {}

    async def get(self, key: str) -> bytes | None:
        found = self._data.get(key)
        if found is None:
            return None
        if found[1] <= self.clock.now():
            del self._data[key]
            return None
        return found[0]

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        self._data.pop(key, None)  # re-insert so that a refreshed entry counts as new
        self._data[key] = (value, self.clock.now() + ttl_s)
        while len(self._data) > self.max_entries:
            del self._data[next(iter(self._data))]

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def scan(self, prefix: str) -> list[tuple[str, bytes]]:
        now = self.clock.now()
        return [(k, v) for k, (v, exp) in self._data.items()
                if k.startswith(prefix) and exp > now]

    async def clear(self) -> None:
        self._data.clear()

    async def aclose(self) -> None:
        return None

    def __len__(self) -> int:
        return len(self._data)
