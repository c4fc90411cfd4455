"""Ledger write throughput and the cost recording adds to a call.

    PYTHONPATH=src python bench/bench_ledger.py [--n 50000] [--pg postgresql://postgres@127.0.0.1:5432/test]

Prints, for SQLite (and PostgreSQL when reachable):
- store:  records/s for direct batched ``store.write`` (500 per transaction);
- writer: records/s sustained end to end through ``LedgerWriter`` (queue, redaction, batches);
and the per-record ``record_call`` enqueue cost in µs, which is what the call path pays: alone,
and while the writer thread is busy (then the GIL it holds for redaction and row building is
shared with the caller).
A "record" is one call with one attempt.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from buttress.ledger import AttemptRecord, CallRecord
from buttress.ledger.store import LedgerStore
from buttress.ledger.writer import LedgerWriter

BODY = "Summarise the following clinical note for the handover. " * 8


def make(i: int, run: str) -> tuple[CallRecord, list[AttemptRecord]]:
    cid = f"{run}-{i}"
    now = time.time()
    call = CallRecord(
        call_id=cid, trace_id=run, feature="summarise", prompt_name="summary",
        prompt_version="3f2a9c1", environment="production", tags=("team:notes",),
        provider="openai", model_requested="gpt-4o-mini", model_served="gpt-4o-mini-2024-07-18",
        request={"model": "gpt-4o-mini", "temperature": 0.2,
                 "messages": [{"role": "system", "content": "You are careful."},
                              {"role": "user", "content": BODY}]},
        output_text="The patient is stable; continue current plan. " * 3,
        latency_ms=812.0, ttft_ms=210.0, prompt_tokens=420, completion_tokens=60,
        cost_usd=0.0001, created_at=now, attempts=1)
    return call, [AttemptRecord(call_id=cid, index=0, provider="openai",
                                model_requested="gpt-4o-mini", latency_ms=812.0,
                                prompt_tokens=420, completion_tokens=60, started_at=now)]


def bench_store(store: LedgerStore, n: int) -> float:
    run = uuid.uuid4().hex[:8]
    records = [make(i, run) for i in range(n)]
    start = time.perf_counter()
    for s in range(0, n, 500):
        chunk = records[s:s + 500]
        store.write([c for c, _ in chunk], [a for _, at in chunk for a in at])
    return n / (time.perf_counter() - start)


def bench_writer(store: LedgerStore, n: int) -> tuple[float, float]:
    run = uuid.uuid4().hex[:8]
    records = [make(i, run) for i in range(n)]
    writer = LedgerWriter(store, max_queue=n + 1, on_full="block")
    start = time.perf_counter()
    enqueue_s = 0.0
    for call, attempts in records:
        t = time.perf_counter()
        writer.record_call(call, attempts)
        enqueue_s += time.perf_counter() - t
    writer.flush()
    elapsed = time.perf_counter() - start
    stats = writer.stats
    writer.close()
    assert stats.written == n, stats
    return n / elapsed, enqueue_s / n * 1e6


def bench_enqueue(store: LedgerStore, n: int) -> float:
    """record_call cost alone: the writer thread sleeps until the end, so no GIL contention."""
    run = uuid.uuid4().hex[:8]
    records = [make(i, run) for i in range(n)]
    writer = LedgerWriter(store, max_queue=n + 1, batch_size=n + 1, flush_interval_s=3600)
    start = time.perf_counter()
    for call, attempts in records:
        writer.record_call(call, attempts)
    per_us = (time.perf_counter() - start) / n * 1e6
    writer.close()
    return per_us


def report(name: str, open_store: Callable[[], LedgerStore], n: int) -> None:
    store = open_store()
    try:
        direct = bench_store(store, n)
        sustained, loaded_us = bench_writer(store, n)
        idle_us = bench_enqueue(store, n)
    finally:
        store.close()
    print(f"{name:9s} store.write {direct:8,.0f} rec/s | writer (redact+batch) "
          f"{sustained:8,.0f} rec/s | record_call {idle_us:.2f} µs idle writer, "
          f"{loaded_us:.2f} µs while it writes (GIL)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()

    from buttress.ledger.sqlite import SQLiteStore

    with tempfile.TemporaryDirectory() as tmp:
        report("sqlite", lambda: SQLiteStore(Path(tmp) / "bench.db"), args.n)

    from buttress.ledger.postgres import PostgresStore

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    try:
        PostgresStore(args.pg, schema=schema).close()
    except Exception as exc:
        print(f"postgres   skipped: {exc}")
        return
    try:
        report("postgres", lambda: PostgresStore(args.pg, schema=schema), args.n)
    finally:
        cleanup = PostgresStore(args.pg, schema=schema)
        cleanup.drop_schema()
        cleanup.close()


if __name__ == "__main__":
    main()
