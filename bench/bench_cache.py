"""Cache benchmarks: exact-hit latency (memory backend, target <= 100 µs), semantic lookup at
100,000 entries (target <= 5 ms), and the semantic cache's hit rate and precision on the
paraphrase set in ``bench/data/paraphrases.jsonl`` (true paraphrases that should hit; negations,
different numbers, topics and products that must not).

Run: PYTHONPATH=src python bench/bench_cache.py
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path

import numpy as np

from buttress.cache.embedder import WordLlamaEmbedder
from buttress.cache.guard import compatible, signature
from buttress.cache.layer import CacheLayer, CachePolicy
from buttress.cache.memory import MemoryBackend
from buttress.cache.semantic import SemanticCache, normalise
from buttress.runtime.result import Attempt, Call, CallResult, Target
from buttress.types import CallRequest, Completion, Message, Usage

THRESHOLD = 0.92  # the configured default
PAIRS = Path(__file__).parent / "data" / "paraphrases.jsonl"


def make_call(text: str, i: int = 0) -> Call:
    request = CallRequest(model="", messages=(
        Message.system("You are a support agent for ACME. Answer briefly."),
        Message.user(text)), temperature=0.2, max_tokens=300)
    return Call(request=request, targets=(Target(provider="openai", model="gpt-4o-2024-08-06"),),
                call_id=f"c{i}", trace_id=f"c{i}", feature="support", prompt_version="abc123")


def make_result(call: Call) -> CallResult:
    attempt = Attempt(index=0, kind="primary", provider="openai", model="gpt-4o-2024-08-06",
                      started_at=0.0, latency_s=0.8, status="ok")
    return CallResult(call_id=call.call_id, trace_id=call.trace_id, feature="support",
                      completion=Completion(text="You can get a refund within 30 days. " * 8,
                                            usage=Usage(prompt_tokens=120,
                                                        completion_tokens=80)),
                      provider="openai", model_requested="gpt-4o-2024-08-06",
                      model_served="gpt-4o-2024-08-06", attempts=(attempt,), latency_s=0.8,
                      cost_usd=0.0011)


async def exact_hit_latency(n: int = 20_000) -> None:
    layer = CacheLayer(MemoryBackend(), {"support": CachePolicy(ttl_s=3600)})
    call = make_call("can I get a refund")
    await layer.store(call, make_result(call))
    for _ in range(500):
        await layer.lookup(call)
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        hit = await layer.lookup(call)
        samples.append(time.perf_counter() - t)
        assert hit is not None
    samples.sort()
    us = [s * 1e6 for s in samples]
    print(f"exact hit (memory, key + get + decode + result), {n} lookups: "
          f"mean {statistics.fmean(us):.1f} µs, p50 {us[n // 2]:.1f} µs, "
          f"p99 {us[int(n * 0.99)]:.1f} µs (target <= 100 µs)")


async def semantic_lookup_latency(embedder: WordLlamaEmbedder, entries: int = 100_000,
                                  n: int = 200) -> None:
    semantic = SemanticCache(MemoryBackend(), embedder)
    await semantic.lookup("scope", "warm up", THRESHOLD)  # loads the model
    index = semantic.index("scope")
    assert index is not None
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((entries, embedder.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    sig = signature("")
    for i in range(entries):
        index.add(f"k{i}", vectors[i], sig)
    questions = ["can I get a refund for order 123", "how do I reset my password",
                 "where is my package", "can I not get a refund"]
    samples = []
    for i in range(n):
        t = time.perf_counter()
        await semantic.lookup("scope", questions[i % len(questions)], THRESHOLD)
        samples.append(time.perf_counter() - t)
    samples.sort()
    ms = [s * 1e3 for s in samples]
    print(f"semantic lookup (embed + search + guard) at {len(index):,} entries x "
          f"{embedder.dim} dims, {n} lookups: mean {statistics.fmean(ms):.2f} ms, "
          f"p50 {ms[n // 2]:.2f} ms, p99 {ms[int(n * 0.99)]:.2f} ms (target <= 5 ms)")


async def paraphrase_quality(embedder: WordLlamaEmbedder) -> None:
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    same = sum(r["same"] for r in rows)
    print(f"paraphrase set: {len(rows)} pairs ({same} paraphrases, {len(rows) - same} "
          "near misses)")
    # the configured threshold, through the real cache: one fresh layer per pair
    hits = correct = 0
    by_kind: dict[str, int] = {}
    for i, r in enumerate(rows):
        layer = CacheLayer(MemoryBackend(), {"support": CachePolicy(3600, THRESHOLD)},
                           embedder=embedder)
        stored = make_call(r["stored"], 2 * i)
        await layer.store(stored, make_result(stored))
        hit = await layer.lookup(make_call(r["asked"], 2 * i + 1)) is not None
        if hit:
            hits += 1
            correct += r["same"]
            if not r["same"]:
                by_kind[r["kind"]] = by_kind.get(r["kind"], 0) + 1
    true_hits = correct
    print(f"  threshold {THRESHOLD} (configured): hit rate on paraphrases "
          f"{true_hits}/{same} = {true_hits / same:.0%}, precision {correct}/{hits} = "
          f"{correct / hits if hits else 1:.0%}; false hits by kind: {by_kind or 'none'}")
    # a sweep, with and without the guard, from the same similarities
    a = embedder.embed([normalise(r["stored"]) for r in rows])
    b = embedder.embed([normalise(r["asked"]) for r in rows])
    sims = np.sum(a * b, axis=1)
    guard = [compatible(signature(r["stored"]), signature(r["asked"])) for r in rows]
    for t in (0.80, 0.85, 0.88, 0.90, 0.92, 0.95):
        for guarded in (True, False):
            hit = [s >= t and (g or not guarded) for s, g in zip(sims, guard, strict=True)]
            tp = sum(h and r["same"] for h, r in zip(hit, rows, strict=True))
            n_hits = sum(hit)
            print(f"  threshold {t:.2f} {'guard on ' if guarded else 'guard off'}: "
                  f"hit rate {tp / same:5.0%}, precision "
                  f"{(tp / n_hits if n_hits else 1):5.0%} ({n_hits} hits)")


async def main() -> None:
    await exact_hit_latency()
    embedder = WordLlamaEmbedder()
    await semantic_lookup_latency(embedder)
    await paraphrase_quality(embedder)


if __name__ == "__main__":
    asyncio.run(main())
