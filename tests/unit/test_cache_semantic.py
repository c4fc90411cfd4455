"""The semantic cache: paraphrases hit, negations and numbers do not, scopes never mix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from buttress.cache.embedder import WordLlamaEmbedder
from buttress.cache.layer import CacheLayer, CachePolicy
from buttress.cache.memory import MemoryBackend
from buttress.cache.semantic import VectorIndex, _decode, _encode
from buttress.client import AsyncClient
from buttress.config import parse_config
from buttress.testing.clock import ManualClock
from buttress.testing.fake import FakeProvider
from buttress.types import Message

CONFIG = """
[providers.fake]
type = "fake"

[models.m]
provider = "fake"
model = "fake-m"

[features.support]
models = ["m"]
cache = { ttl_s = 60, semantic = { threshold = 0.92 } }

[features.sales]
models = ["m"]
cache = { ttl_s = 60, semantic = { threshold = 0.92 } }
"""


class SameVector:
    """Every text means the same: only scoping and guards can keep entries apart."""

    dim = 4

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return np.tile(np.array([1, 0, 0, 0], dtype=np.float32), (len(texts), 1))


@pytest.fixture(scope="module")
def wordllama() -> WordLlamaEmbedder:
    embedder = WordLlamaEmbedder()
    embedder.load()  # from the wheel, downloads disabled: this fails rather than fetch
    return embedder


def client(layer: CacheLayer, fake: FakeProvider) -> AsyncClient:
    return AsyncClient(parse_config(CONFIG), providers={"fake": fake}, cache=layer)


def ask(text: str) -> list[Message]:
    return [Message.system("You answer support questions."), Message.user(text)]


async def test_refund_and_not_refund_do_not_share_an_entry(wordllama: WordLlamaEmbedder) -> None:
    """Acceptance: with the real embedder the two sit at cosine 0.95, above the threshold;
    the negation guard keeps them apart."""
    clock = ManualClock()
    layer = CacheLayer(MemoryBackend(clock=clock), {"support": CachePolicy(60, 0.92)},
                       clock=clock, embedder=wordllama)
    fake = FakeProvider(script=["Yes, within 30 days.", "You always can."])
    c = client(layer, fake)
    yes = await c.call("support", messages=ask("can I get a refund"))
    no = await c.call("support", messages=ask("can I not get a refund"))
    assert (yes.text, no.text) == ("Yes, within 30 days.", "You always can.")
    assert not no.cache_hit
    assert len(fake.requests) == 2
    vectors = wordllama.embed(["can i get a refund", "can i not get a refund"])
    assert float(vectors[0] @ vectors[1]) >= 0.92  # the guard, not the threshold, decided
    # and each still answers its own paraphrase
    again = await c.call("support", messages=ask("Could I get a refund?"))
    assert again.cache_hit
    assert again.text == "Yes, within 30 days."
    assert layer.stats.semantic_hits == 1
    assert layer.stats.scores[0] >= 0.92


async def test_numbers_block_a_hit(wordllama: WordLlamaEmbedder) -> None:
    layer = CacheLayer(MemoryBackend(), {"support": CachePolicy(60, 0.5)}, embedder=wordllama)
    fake = FakeProvider(script=["shipped", "pending"])
    c = client(layer, fake)
    await c.call("support", messages=ask("where is order 123"))
    other = await c.call("support", messages=ask("where is order 456"))
    assert other.text == "pending"
    assert not other.cache_hit


async def test_unrelated_questions_miss(wordllama: WordLlamaEmbedder) -> None:
    layer = CacheLayer(MemoryBackend(), {"support": CachePolicy(60, 0.92)}, embedder=wordllama)
    fake = FakeProvider(script=["refund answer", "password answer"])
    c = client(layer, fake)
    await c.call("support", messages=ask("can I get a refund"))
    other = await c.call("support", messages=ask("how do I reset my password"))
    assert other.text == "password answer"


async def test_entries_are_scoped_by_feature_and_prompt_version() -> None:
    layer = CacheLayer(MemoryBackend(), {"support": CachePolicy(60, 0.9),
                                         "sales": CachePolicy(60, 0.9)}, embedder=SameVector())
    fake = FakeProvider(script=["a", "b", "c", "d"])
    c = client(layer, fake)
    await c.call("support", messages=ask("tell me something"))
    assert (await c.call("support", messages=ask("say something else"))).text == "a"
    assert (await c.call("sales", messages=ask("say something else"))).text == "b"
    call = c.prepare("support", messages=ask("say something else"))
    v2 = call.model_copy(update={"prompt_version": "v2"})
    assert (await c.runtime.complete(v2)).text == "c"
    other_system = [Message.system("You sell."), Message.user("say something else")]
    assert (await c.call("support", messages=other_system)).text == "d"


async def test_semantic_entries_survive_a_restart() -> None:
    backend = MemoryBackend()
    fake = FakeProvider(script=["a", "b"])
    first = CacheLayer(backend, {"support": CachePolicy(60, 0.9)}, embedder=SameVector())
    await client(first, fake).call("support", messages=ask("tell me something"))
    reopened = CacheLayer(backend, {"support": CachePolicy(60, 0.9)}, embedder=SameVector())
    hit = await client(reopened, fake).call("support", messages=ask("say anything"))
    assert hit.cache_hit
    assert hit.text == "a"


async def test_a_vector_whose_answer_expired_is_forgotten() -> None:
    clock = ManualClock()
    backend = MemoryBackend(clock=clock)
    layer = CacheLayer(backend, {"support": CachePolicy(60, 0.9)}, clock=clock,
                       embedder=SameVector())
    c = client(layer, FakeProvider(script=["a", "b"]))
    await c.call("support", messages=ask("tell me something"))
    for key in [k for k, _ in await backend.scan("x:")]:
        await backend.delete(key)  # as if evicted
    assert (await c.call("support", messages=ask("say anything"))).text == "b"
    assert len(await backend.scan("s:")) == 1  # the stale vector went, the new one is there


def test_the_index_returns_the_best_candidates_above_the_threshold() -> None:
    index = VectorIndex(2)
    for i in range(100):  # grows past its first allocation
        angle = i / 100
        index.add(f"k{i}", np.array([np.cos(angle), np.sin(angle)], dtype=np.float32),
                  signature_of(""))
    found = index.search(np.array([1, 0], dtype=np.float32), 0.999, limit=3)
    assert [k for _, k, _ in found] == ["k0", "k1", "k2"]
    index.remove("k0")
    assert index.search(np.array([1, 0], dtype=np.float32), 0.999, 1)[0][1] == "k1"
    assert len(index) == 99


def test_stored_vectors_round_trip_and_bad_bytes_are_skipped() -> None:
    vector = np.array([0.5, -0.25, 1.0], dtype=np.float32)
    decoded = _decode(_encode(vector, "héllo"), 3)
    assert decoded is not None
    assert decoded[1] == "héllo"
    assert np.array_equal(decoded[0], vector)
    assert _decode(_encode(vector, "x"), 4) is None  # another embedder size
    assert _decode(b"junk", 3) is None
    assert _decode(b"", 3) is None


def signature_of(text: str):  # type: ignore[no-untyped-def]
    from buttress.cache.guard import signature

    return signature(text)
