"""The cache layer through the client: exact hits, TTL, modes, per-feature policy, the ledger."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from buttress.cache.backend import CacheBackendError
from buttress.cache.layer import CacheLayer, CachePolicy
from buttress.cache.memory import MemoryBackend
from buttress.client import AsyncClient, build_cache
from buttress.config import parse_config
from buttress.errors import UsageError
from buttress.ledger.sqlite import SQLiteStore
from buttress.ledger.writer import LedgerWriter
from buttress.testing.clock import ManualClock
from buttress.testing.fake import FakeProvider, Reply
from buttress.types import Message, Usage

CONFIG = """
[providers.fake]
type = "fake"

[models.m]
provider = "fake"
model = "fake-m"

[features.faq]
models = ["m"]
cache = { ttl_s = 60 }

[features.live]
models = ["m"]
"""


def price(provider: str, model: str, usage: Usage) -> float:
    return 0.001 * usage.total_tokens


def client(fake: FakeProvider, clock: ManualClock, cache: CacheLayer | None = None,
           ledger: LedgerWriter | None = None) -> AsyncClient:
    return AsyncClient(parse_config(CONFIG), providers={"fake": fake}, clock=clock,
                       price=price, ledger=ledger, cache=cache)


def ask(text: str) -> list[Message]:
    return [Message.user(text)]


async def test_an_exact_hit_answers_without_the_provider_for_free() -> None:
    clock = ManualClock()
    fake = FakeProvider(script=[Reply("paris", usage=Usage(prompt_tokens=10,
                                                           completion_tokens=5))])
    layer = CacheLayer(MemoryBackend(clock=clock), {"faq": CachePolicy(ttl_s=60)}, clock=clock)
    c = client(fake, clock, layer)
    first = await c.call("faq", messages=ask("capital of france?"))
    hit = await c.call("faq", messages=ask("capital of france?"))
    assert len(fake.requests) == 1
    assert (first.cache_hit, first.cost_usd) == (False, pytest.approx(0.015))
    assert hit.cache_hit
    assert hit.text == "paris"
    assert hit.cost_usd == 0.0
    assert hit.cost_saved_usd == pytest.approx(0.015)
    assert hit.usage == Usage()  # a hit spends no tokens
    assert [a.kind for a in hit.attempts] == ["cache"]
    assert hit.attempts[0].usage == Usage()
    assert hit.call_id != first.call_id
    assert hit.model_served == first.model_served
    assert (layer.stats.exact_hits, layer.stats.misses, layer.stats.stores) == (1, 1, 1)


async def test_entries_expire_after_their_ttl() -> None:
    clock = ManualClock()
    fake = FakeProvider(script=["one", "two"])
    c = client(fake, clock, CacheLayer(MemoryBackend(clock=clock), {"faq": CachePolicy(60)},
                                       clock=clock))
    await c.call("faq", messages=ask("q"))
    clock.advance(59)
    assert (await c.call("faq", messages=ask("q"))).text == "one"
    clock.advance(2)
    assert (await c.call("faq", messages=ask("q"))).text == "two"


async def test_bypass_and_refresh_per_call() -> None:
    clock = ManualClock()
    fake = FakeProvider(script=["one", "two", "three"])
    c = client(fake, clock, CacheLayer(MemoryBackend(clock=clock), {"faq": CachePolicy()},
                                       clock=clock))
    await c.call("faq", messages=ask("q"))
    assert (await c.call("faq", messages=ask("q"), cache="bypass")).text == "two"
    assert (await c.call("faq", messages=ask("q"))).text == "one"  # bypass wrote nothing
    assert (await c.call("faq", messages=ask("q"), cache="refresh")).text == "three"
    assert (await c.call("faq", messages=ask("q"))).text == "three"


async def test_only_features_with_a_policy_are_cached() -> None:
    clock = ManualClock()
    fake = FakeProvider(script=["one", "two", "three", "four"])
    c = client(fake, clock, CacheLayer(MemoryBackend(clock=clock), {"faq": CachePolicy()},
                                       clock=clock))
    await c.call("live", messages=ask("q"))
    assert (await c.call("live", messages=ask("q"))).text == "two"
    await c.complete("m", ask("q"), cache="use")  # no feature: no policy
    assert not (await c.complete("m", ask("q"), cache="use")).cache_hit


async def test_failed_or_filtered_answers_are_not_stored() -> None:
    clock = ManualClock()
    fake = FakeProvider(script=[Reply("x", finish_reason="content_filter"), "ok"])
    c = client(fake, clock, CacheLayer(MemoryBackend(clock=clock), {"faq": CachePolicy()},
                                       clock=clock))
    await c.call("faq", messages=ask("q"))
    assert (await c.call("faq", messages=ask("q"))).text == "ok"


class BrokenBackend(MemoryBackend):
    async def get(self, key: str) -> bytes | None:
        raise CacheBackendError("down")

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        raise CacheBackendError("down")


async def test_a_failing_backend_is_a_miss_not_an_error() -> None:
    clock = ManualClock()
    fake = FakeProvider(script=["one", "two"])
    layer = CacheLayer(BrokenBackend(clock=clock), {"faq": CachePolicy()}, clock=clock)
    c = client(fake, clock, layer)
    assert (await c.call("faq", messages=ask("q"))).text == "one"
    assert (await c.call("faq", messages=ask("q"))).text == "two"
    assert layer.stats.errors == 4


async def test_a_corrupt_entry_is_ignored() -> None:
    clock = ManualClock()
    backend = MemoryBackend(clock=clock)
    fake = FakeProvider(script=["one", "two"])
    c = client(fake, clock, CacheLayer(backend, {"faq": CachePolicy()}, clock=clock))
    await c.call("faq", messages=ask("q"))
    for key in [k for k, _ in await backend.scan("x:")]:
        await backend.set(key, b"{not json", 60)
    assert (await c.call("faq", messages=ask("q"))).text == "two"


def test_policies_are_checked() -> None:
    with pytest.raises(UsageError, match="ttl_s"):
        CachePolicy(ttl_s=0)
    with pytest.raises(UsageError, match="threshold"):
        CachePolicy(semantic_threshold=1.5)
    with pytest.raises(UsageError, match="max_entries"):
        MemoryBackend(max_entries=0)


async def test_the_memory_backend_evicts_its_oldest_entries() -> None:
    backend = MemoryBackend(max_entries=2, clock=ManualClock())
    for key in ("a", "b", "c"):
        await backend.set(key, key.encode(), 60)
    assert [await backend.get(k) for k in ("a", "b", "c")] == [None, b"b", b"c"]


async def test_hits_reach_the_ledger_with_the_cost_they_saved(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "ledger.db")
    writer = LedgerWriter(store)
    clock = ManualClock()
    fake = FakeProvider(script=[Reply("paris", usage=Usage(prompt_tokens=10,
                                                           completion_tokens=5))])
    c = client(fake, clock, CacheLayer(MemoryBackend(clock=clock), {"faq": CachePolicy()},
                                       clock=clock), ledger=writer)
    first = await c.call("faq", messages=ask("capital?"))
    hit = await c.call("faq", messages=ask("capital?"))
    await c.aclose()
    await asyncio.to_thread(writer.close)
    paid, _paid_attempts = store.get_call(first.call_id) or (None, [])
    saved, saved_attempts = store.get_call(hit.call_id) or (None, [])
    store.close()
    assert paid is not None
    assert saved is not None
    assert (paid.cache_hit, paid.cost_saved_usd) == (False, 0.0)
    assert saved.cache_hit
    assert saved.cost_usd == 0.0
    assert saved.cost_saved_usd == pytest.approx(0.015)
    assert saved.prompt_tokens == 0
    assert saved.output_text == "paris"
    assert [a.kind for a in saved_attempts] == ["cache"]
    assert saved_attempts[0].cost_usd is None
    assert saved_attempts[0].prompt_tokens == 0


async def test_the_client_builds_its_cache_from_config(tmp_path: Path) -> None:
    fake = FakeProvider(script=["one", "two"])
    c = AsyncClient(parse_config(CONFIG), providers={"fake": fake})
    await c.call("faq", messages=ask("q"))
    assert (await c.call("faq", messages=ask("q"))).cache_hit
    await c.aclose()
    config = parse_config(CONFIG + '\n[cache]\nbackend = "sqlite"\nurl = "sqlite:///c/x.db"\n')
    layer = build_cache(config, tmp_path)
    assert layer is not None
    assert (tmp_path / "c" / "x.db").exists()
    await layer.aclose()
    assert build_cache(parse_config(CONFIG.replace("cache = { ttl_s = 60 }", "")),
                       tmp_path) is None
