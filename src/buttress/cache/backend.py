"""The backend seam: bytes under string keys, with a time to live, and a prefix scan."""

from __future__ import annotations

from typing import Protocol

from buttress.errors import ButtressError


class CacheBackendError(ButtressError):
    """A backend failed (server down, timeout, disk). The cache layer logs it and answers a
    miss: a cache must never turn a call that could succeed into a failure."""


class CacheBackend(Protocol):
    """Where cache entries live. Keys are namespaced by the backend (its ``namespace``), so
    several caches, or test runs, share one server. Expired entries read as missing."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def scan(self, prefix: str) -> list[tuple[str, bytes]]:
        """Every live entry whose key starts with ``prefix`` (keys returned without the
        namespace). Used once per semantic scope to rebuild its index after a restart."""
        ...

    async def clear(self) -> None:
        """Delete every entry in this backend's namespace."""
        ...

    async def aclose(self) -> None: ...
