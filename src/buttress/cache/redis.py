"""The shared backend: Redis (the ``redis`` extra), through redis-py's asyncio client.

Expiry is Redis's own (``PX``). ``scan`` walks the keyspace with ``SCAN MATCH`` in batches, so a
large cache never blocks the server.
"""

from __future__ import annotations

from typing import Any

from buttress.cache.backend import CacheBackendError
from buttress.errors import ConfigError


def _import_redis() -> Any:
    try:
        import redis.asyncio as aioredis
    except ImportError as exc:
        raise ConfigError("the redis cache backend needs redis-py; install the extra: "
                          "pip install 'buttress[redis]'", source="cache",
                          key="cache.backend") from exc
    return aioredis


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisBackend:
    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, namespace: str = "buttress:",
                 client: Any = None, socket_timeout_s: float = 2.0) -> None:
        aioredis = _import_redis()
        self.namespace = namespace
        self._errors: tuple[type[BaseException], ...] = (aioredis.RedisError,)
        try:
            self._client = client or aioredis.from_url(
                url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s)
        except ValueError as exc:
            raise ConfigError(f"invalid redis url: {exc}", source="cache", key="cache.url") from exc

    async def get(self, key: str) -> bytes | None:
        value = await self._do(self._client.get(self.namespace + key))
        return bytes(value) if value is not None else None

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        await self._do(self._client.set(self.namespace + key, value,
                                        px=max(1, int(ttl_s * 1000))))

    async def delete(self, key: str) -> None:
        await self._do(self._client.delete(self.namespace + key))

    async def scan(self, prefix: str) -> list[tuple[str, bytes]]:
        keys = await self._keys(self.namespace + prefix)
        out: list[tuple[str, bytes]] = []
        cut = len(self.namespace)
        for start in range(0, len(keys), 500):
            batch = keys[start:start + 500]
            values = await self._do(self._client.mget(batch))
            out += [(bytes(k).decode()[cut:], bytes(v))
                    for k, v in zip(batch, values, strict=True) if v is not None]
        return out

    async def clear(self) -> None:
        keys = await self._keys(self.namespace)
        for start in range(0, len(keys), 500):
            await self._do(self._client.delete(*keys[start:start + 500]))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _keys(self, prefix: str) -> list[bytes]:
        keys: list[bytes] = []
        cursor = 0
        while True:
            cursor, batch = await self._do(self._client.scan(
                cursor, match=_glob_escape(prefix) + "*", count=1000))
            keys += batch
            if not cursor:
                return keys

    async def _do(self, op: Any) -> Any:
        try:
            return await op
        except self._errors as exc:
            raise CacheBackendError(f"redis cache: {type(exc).__name__}: {exc}") from exc
