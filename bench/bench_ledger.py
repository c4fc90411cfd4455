"""Ledger write throughput and the cost recording adds to a call.

    PYTHONPATH=src python bench/bench_ledger.py [--n 50000] [--pg postgresql://postgres@127.0.0.1:5432/test]

Prints, for SQLite (and PostgreSQL when reachable):
- store:  records/s for direct batched ``store.write`` (500 per transaction);
- writer: records/s sustained end to end through ``LedgerWriter`` (queue, redaction, batches);
and the per-record ``record_call`` enqueue cost in µs, which is what the call path pays: alone,
and while the writer thread is busy (then the GIL it holds for redaction and row building is
shared with the caller).
A "record" is one call with one attempt.

    PYTHONPATH=src taskset -c 0 python bench/bench_ledger.py --stages [--n 20000] [--rounds 3]

prints instead the writer thread's CPU per record (``time.process_time``) for the common gateway
call (one attempt, one short user message, a short answer, a virtual key, nothing to redact),
stage by stage on batches of 100 into a SQLite file: the records way (``LedgerHook.records``,
``Redactor.call``, rows, insert and commit), the rows way where the hook has one
(``LedgerHook.rows``, then insert and commit), then the whole of ``LedgerWriter._write``, as
the writer thread runs it on what the hook queued. Each figure is the median of the rounds. To
measure another revision, point PYTHONPATH at its ``src``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


# -- --stages: the writer thread's CPU per record, stage by stage --------------------------------

UPSTREAM_KEY = "sk-bench-upstream-key-0000"  # scrubbed as the gateway scrubs its provider keys


def gateway_outcome(i: int) -> Any:
    """What the runtime hands the ledger hook for the common gateway call."""
    from buttress.ids import new_id
    from buttress.runtime.hooks import Outcome
    from buttress.runtime.result import Attempt, Call, CallResult, Target
    from buttress.types import CallRequest, Completion, Message, Usage

    call_id, now = new_id(), time.time()
    request = CallRequest(model="mock-gpt", max_tokens=64, messages=(
        Message.user("Say hello in one short sentence, " + "abcdefghij"[i % 10] + "x."),))
    call = Call(request=request, targets=(Target(provider="mock", model="mock-gpt",
                                                 alias="mock-gpt"),),
                call_id=call_id, trace_id=call_id, environment="production",
                key_id="key_7f3a9c2e")
    usage = Usage(prompt_tokens=12, completion_tokens=3)
    attempt = Attempt(index=0, kind="primary", provider="mock", model="mock-gpt",
                      started_at=now, latency_s=0.0123, status="ok", model_served="mock-gpt",
                      usage=usage, cost_usd=0.0000123)
    completion = Completion(text="Hello there!", usage=usage, model="mock-gpt",
                            system_fingerprint="fp_mock", response_id="chatcmpl-1")
    result = CallResult(call_id=call_id, trace_id=call_id, completion=completion,
                        provider="mock", model_requested="mock-gpt", model_served="mock-gpt",
                        attempts=(attempt,), latency_s=0.0125, cost_usd=0.0000123)
    return Outcome(call, result, None, (attempt,), 0.0125)


def queued(outcomes: list[Any]) -> list[Any]:
    """What ``LedgerHook.after`` queues on the writer for each outcome."""
    from buttress.ledger.hook import LedgerHook

    class Capture:
        def record_deferred(self, build: Any) -> None:
            entries.append(build)

    entries: list[Any] = []
    hook = LedgerHook(Capture(), clock=FixedWall())  # type: ignore[arg-type]

    async def after_each() -> None:
        for outcome in outcomes:
            await hook.after(outcome)

    asyncio.run(after_each())
    return entries


class FixedWall:
    def now(self) -> float:
        return 0.0

    def wall(self) -> float:
        return 0.0

    async def sleep(self, seconds: float) -> None:
        return None


@contextlib.contextmanager
def timed_transactions(store: Any, entered: list[float]) -> Iterator[None]:
    """Notes in ``entered`` when each write opens its transaction: rows are built before."""
    transaction = store._transaction

    @contextlib.contextmanager
    def timed() -> Iterator[Any]:
        entered[0] = time.process_time()
        with transaction() as cur:
            yield cur

    store._transaction = timed
    yield


def stage_round(n: int, batch: int) -> dict[str, float]:
    """One round: µs of CPU per record for each stage, and for the writer's whole batch."""
    from buttress.ledger.hook import LedgerHook
    from buttress.ledger.redaction import Redactor
    from buttress.ledger.sqlite import SQLiteStore

    outcomes = [gateway_outcome(i) for i in range(n)]  # each way writes its own database
    entries = queued(outcomes)
    # The gateway freezes what lives as long as the server; in flight, outcomes are few.
    gc.collect()
    gc.freeze()
    clock = time.process_time
    spent: dict[str, float] = {}

    def add(key: str, seconds: float) -> None:
        spent[key] = spent.get(key, 0.0) + seconds

    entered = [0.0]
    with tempfile.TemporaryDirectory() as tmp:
        # the records way: what every call took before LedgerHook.rows, and odd calls still do
        store = SQLiteStore(Path(tmp) / "records.db")
        redactor = Redactor(secrets=[UPSTREAM_KEY])
        hook = LedgerHook(LedgerWriter(store, redactor=redactor, flush_interval_s=3600))
        with timed_transactions(store, entered):
            for start in range(0, n, batch):
                t0 = clock()
                built = [hook.records(o, 0.0) for o in outcomes[start:start + batch]]
                t1 = clock()
                calls, attempts = [], []
                for call, tries in built:
                    clean = redactor.call(call)
                    calls.append(clean)
                    attempts.extend(redactor.attempt(a, clean.feature) for a in tries)
                t2 = clock()
                store.write(calls, attempts)
                t3 = clock()
                add("records: build", t1 - t0)
                add("records: redact", t2 - t1)
                add("records: rows", entered[0] - t2)
                add("records: insert", t3 - entered[0])
        hook.writer.close()
        store.close()

        if hasattr(LedgerHook, "rows"):  # the rows way, straight from the outcome
            store = SQLiteStore(Path(tmp) / "rows.db")
            with timed_transactions(store, entered):
                for start in range(0, n, batch):
                    t0 = clock()
                    rows = [hook.rows(o, redactor, store.boolean)
                            for o in outcomes[start:start + batch]]
                    t1 = clock()
                    store.write_rows(rows)
                    t2 = clock()
                    add("rows: build+redact", entered[0] - t0)
                    add("rows: insert", t2 - entered[0])
            store.close()

        store = SQLiteStore(Path(tmp) / "writer.db")
        writer = LedgerWriter(store, redactor=Redactor(secrets=[UPSTREAM_KEY]),
                              flush_interval_s=3600)
        for start in range(0, n, batch):
            t0 = clock()
            writer._write(entries[start:start + batch])
            add("LedgerWriter._write", clock() - t0)
        assert writer.stats.written == n, writer.stats
        writer.close()
        store.close()
    gc.unfreeze()
    return {k: v / n * 1e6 for k, v in spent.items()}


def stages(n: int, rounds: int, batch: int = 100) -> None:
    results = [stage_round(n, batch) for _ in range(rounds)]
    print(f"writer CPU per record, µs (median of {rounds} rounds of {n:,}, batches of {batch}):")
    for key in results[0]:
        values = [r[key] for r in results]
        print(f"  {key:20s} {statistics.median(values):6.1f}   "
              f"(rounds: {' '.join(f'{v:.1f}' for v in values)})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=None, help="records (default 50,000; 20,000 "
                    "with --stages)")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--stages", action="store_true",
                    help="the writer's CPU per record, stage by stage (SQLite only)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.stages:
        stages(args.n or 20_000, args.rounds)
        return
    args.n = args.n or 50_000

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
