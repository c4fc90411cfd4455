"""One contract for every cache backend: memory, SQLite (a temp file) and the real Redis at
127.0.0.1:6379 (a unique namespace per test, deleted afterwards)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from buttress.cache.backend import CacheBackend, CacheBackendError
from buttress.cache.layer import CacheLayer, CachePolicy
from buttress.cache.memory import MemoryBackend
from buttress.cache.redis import RedisBackend
from buttress.cache.sqlite import SQLiteBackend
from buttress.client import AsyncClient
from buttress.config import parse_config
from buttress.errors import ConfigError, UsageError
from buttress.testing.clock import ManualClock
from buttress.testing.fake import FakeProvider
from buttress.types import Message

REDIS_URL = "redis://127.0.0.1:6379/0"


async def _redis_reachable() -> bool:
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await client.ping()
    except aioredis.RedisError:
        return False
    finally:
        await client.aclose()
    return True


async def require_redis() -> None:
    if await _redis_reachable():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"Redis is unreachable at {REDIS_URL} and CI=true")
    pytest.skip(f"Redis is unreachable at {REDIS_URL}")


class Harness:
    """Opens backends of one kind on one location, and makes time pass for them."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.clock = ManualClock()
        self.path = tmp_path / "cache.db"
        self.namespace = f"buttress-test:{uuid.uuid4().hex[:12]}:"
        self.opened: list[Any] = []
        self._memory: MemoryBackend | None = None

    def open(self, namespace: str | None = None) -> CacheBackend:
        backend: Any
        if self.kind == "memory":
            # one process: a "reopened" memory backend is the same dict
            self._memory = self._memory or MemoryBackend(clock=self.clock)
            return self._memory
        if self.kind == "sqlite":
            backend = SQLiteBackend(self.path, namespace=namespace or self.namespace,
                                    clock=self.clock)
        else:
            backend = RedisBackend(REDIS_URL, namespace=namespace or self.namespace)
        self.opened.append(backend)
        return backend  # type: ignore[no-any-return]

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        if self.kind == "redis":
            # Redis keeps its own time: expire now what would have expired by then
            import redis.asyncio as aioredis

            client = aioredis.from_url(REDIS_URL)
            async for key in client.scan_iter(match=self.namespace + "*"):
                ttl = await client.pttl(key)
                if 0 <= ttl <= seconds * 1000:
                    await client.pexpireat(key, 1)
            await client.aclose()

    async def cleanup(self) -> None:
        for backend in self.opened:
            if self.kind == "redis":
                await backend.clear()
            await backend.aclose()


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    if request.param == "redis":
        await require_redis()
    h = Harness(request.param, tmp_path)
    yield h
    await h.cleanup()


async def test_values_round_trip_and_overwrite(harness: Harness) -> None:
    b = harness.open()
    assert await b.get("x:missing") is None
    raw = bytes(range(256))
    await b.set("x:a", raw, 60)
    assert await b.get("x:a") == raw
    await b.set("x:a", b"new", 60)
    assert await b.get("x:a") == b"new"
    await b.delete("x:a")
    await b.delete("x:never-set")
    assert await b.get("x:a") is None


async def test_entries_expire(harness: Harness) -> None:
    b = harness.open()
    await b.set("x:short", b"1", 10)
    await b.set("x:long", b"2", 100)
    await harness.advance(11)
    assert await b.get("x:short") is None
    assert await b.get("x:long") == b"2"
    assert await b.scan("x:") == [("x:long", b"2")]


async def test_scan_returns_a_prefix_without_the_namespace(harness: Harness) -> None:
    b = harness.open()
    for i in range(1200):  # more than one SCAN/MGET batch
        await b.set(f"s:scope1:{i}", str(i).encode(), 60)
    await b.set("s:scope2:0", b"other", 60)
    await b.set("s:scope1*:0", b"glob chars are literal", 60)
    found = dict(await b.scan("s:scope1:"))
    assert len(found) == 1200
    assert found["s:scope1:7"] == b"7"
    assert await b.scan("s:nothing:") == []


async def test_entries_outlive_the_backend_object(harness: Harness) -> None:
    first = harness.open()
    await first.set("x:k", b"v", 60)
    if harness.kind != "memory":
        await first.aclose()
    assert await harness.open().get("x:k") == b"v"


async def test_clear_empties_only_its_own_namespace(harness: Harness) -> None:
    if harness.kind == "memory":
        b = harness.open()
        await b.set("x:k", b"v", 60)
        await b.clear()
        assert await b.get("x:k") is None
        return
    mine = harness.open()
    theirs = harness.open(namespace=harness.namespace[:-1] + "-other:")
    await mine.set("x:k", b"mine", 60)
    await theirs.set("x:k", b"theirs", 60)
    await mine.clear()
    assert await mine.get("x:k") is None
    assert await theirs.get("x:k") == b"theirs"
    await theirs.clear()


class SameVector:
    dim = 4

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return np.tile(np.array([0, 1, 0, 0], dtype=np.float32), (len(texts), 1))


CONFIG = """
[providers.fake]
type = "fake"

[models.m]
provider = "fake"
model = "fake-m"

[features.faq]
models = ["m"]
"""


async def test_exact_and_semantic_hits_survive_a_restart(harness: Harness) -> None:
    policies = {"faq": CachePolicy(ttl_s=60, semantic_threshold=0.9)}
    fake = FakeProvider(script=["answer", "other"])
    layer = CacheLayer(harness.open(), policies, clock=harness.clock, embedder=SameVector())
    client = AsyncClient(parse_config(CONFIG), providers={"fake": fake}, cache=layer)
    await client.call("faq", messages=[Message.user("how do refunds work")])
    if harness.kind != "memory":
        await layer.aclose()
    reopened = CacheLayer(harness.open(), policies, clock=harness.clock, embedder=SameVector())
    client = AsyncClient(parse_config(CONFIG), providers={"fake": fake}, cache=reopened)
    exact = await client.call("faq", messages=[Message.user("how do refunds work")])
    similar = await client.call("faq", messages=[Message.user("explain refunds to me")])
    assert exact.cache_hit
    assert similar.cache_hit
    assert similar.text == "answer"
    assert (reopened.stats.exact_hits, reopened.stats.semantic_hits) == (1, 1)
    assert len(fake.requests) == 1


async def test_an_unreachable_redis_is_a_typed_error() -> None:
    backend = RedisBackend("redis://127.0.0.1:1/0", socket_timeout_s=0.5)
    with pytest.raises(CacheBackendError, match="redis cache"):
        await backend.get("x:k")
    await backend.aclose()


def test_bad_locations_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="cannot open cache database"):
        SQLiteBackend(tmp_path / "file" / "cache.db")
    with pytest.raises(ConfigError, match="redis url"):
        RedisBackend("http://nowhere")


async def test_a_closed_sqlite_backend_refuses_use(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "c.db")
    await backend.aclose()
    await backend.aclose()
    with pytest.raises(UsageError, match="closed"):
        await backend.get("x:k")
