"""The ledger writer: queue policies, batching, redaction before persistence, spill and replay."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from buttress.errors import ConfigError, UsageError
from buttress.ledger import AttemptRecord, CallFilter, CallRecord, FeedbackRecord
from buttress.ledger.spill import SpillFile, entry_json
from buttress.ledger.sqlite import SQLiteStore
from buttress.ledger.writer import LedgerWriter, WriterStats
from buttress.testing.clock import ManualClock

SECRET = "sk-test-" + "SECRET1234567890abcdef"


def call(i: int, **kw: Any) -> CallRecord:
    return CallRecord(call_id=f"c{i}", feature="f", created_at=1_700_000_000.0 + i, **kw)


class MemoryStore:
    """Records batches; optionally holds each write until ``release`` or fails it."""

    def __init__(self, *, gated: bool = False) -> None:
        self.calls: list[CallRecord] = []
        self.attempts: list[AttemptRecord] = []
        self.feedback: list[FeedbackRecord] = []
        self.batches: list[int] = []
        self.entered = threading.Event()
        self._gate = threading.Event()
        if not gated:
            self._gate.set()
        self.fail_next = 0

    def release(self) -> None:
        self._gate.set()

    def write(self, calls: Sequence[CallRecord], attempts: Sequence[AttemptRecord] = (),
              feedback: Sequence[FeedbackRecord] = ()) -> None:
        self.entered.set()
        assert self._gate.wait(10), "test never released the store"
        if self.fail_next:
            self.fail_next -= 1
            raise OSError("disk on fire")
        self.calls += calls
        self.attempts += attempts
        self.feedback += feedback
        self.batches.append(len(calls) + len(feedback))


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    # Synchronising with a real thread: bounded, returns as soon as the condition holds.
    done = threading.Event()
    for _ in range(int(timeout / 0.001)):
        if predicate():
            return
        done.wait(0.001)
    raise AssertionError("condition not reached")


@pytest.fixture
def writers() -> Iterator[list[LedgerWriter]]:
    made: list[LedgerWriter] = []
    yield made
    for w in made:
        w.close(timeout=10)


def test_records_are_written_in_batches_and_counted(writers: list[LedgerWriter]) -> None:
    store = MemoryStore()
    w = LedgerWriter(store, batch_size=100, flush_interval_s=60)  # type: ignore[arg-type]
    writers.append(w)
    for i in range(250):
        assert w.record_call(call(i), [AttemptRecord(call_id=f"c{i}", index=0, started_at=0)])
    assert w.flush(timeout=10)
    assert [c.call_id for c in store.calls] == [f"c{i}" for i in range(250)]  # in order
    assert len(store.attempts) == 250
    assert all(b <= 100 for b in store.batches)
    assert w.stats == WriterStats(queued=250, written=250, dropped=0, spilled=0, failed=0,
                                  replayed=0, depth=0, blocked=0)


def test_what_arrives_during_a_write_waits_for_the_next_interval(
        writers: list[LedgerWriter]) -> None:
    # a transaction of their own for a few stragglers would cost most of what a whole batch's
    # does: they wait, and whatever comes meanwhile joins them
    store = MemoryStore(gated=True)
    w = LedgerWriter(store, flush_interval_s=0.5)  # type: ignore[arg-type]
    writers.append(w)
    w.record_call(call(0))
    assert store.entered.wait(10)  # c0's batch is being written
    w.record_call(call(1))
    w.record_call(call(2))
    store.release()
    wait_until(lambda: store.batches == [1])
    w.record_call(call(3))  # while c1 and c2 wait
    wait_until(lambda: len(store.calls) == 4)
    assert store.batches == [1, 3]


def test_an_idle_writer_sleeps_until_a_record_comes_and_still_writes_it_unasked(
        writers: list[LedgerWriter]) -> None:
    # no flush(): each record must reach the store by the writer's own timing, also after the
    # thread went to sleep on an empty queue (a record put then must wake it)
    store = MemoryStore()
    w = LedgerWriter(store, flush_interval_s=0.01)  # type: ignore[arg-type]
    writers.append(w)
    for i in range(1, 6):
        w.record_call(call(i))
        wait_until(lambda n=i: len(store.calls) == n)
        wait_until(lambda: w._parked)  # asleep, queue empty, before the next record
    assert store.batches == [1] * 5


def test_recording_does_no_io_even_when_the_store_is_stuck(
        writers: list[LedgerWriter]) -> None:
    store = MemoryStore(gated=True)
    w = LedgerWriter(store, batch_size=1, max_queue=5)  # type: ignore[arg-type]
    writers.append(w)
    w.record_call(call(0))
    assert store.entered.wait(10)
    for i in range(1, 6):
        assert w.record_call(call(i))  # returns at once while the store is blocked
    assert w.stats.depth == 5
    store.release()
    assert w.flush(timeout=10)
    assert len(store.calls) == 6


def test_drop_policy_counts_drops(writers: list[LedgerWriter]) -> None:
    store = MemoryStore(gated=True)
    w = LedgerWriter(store, batch_size=1, max_queue=2, on_full="drop")  # type: ignore[arg-type]
    writers.append(w)
    w.record_call(call(0))
    assert store.entered.wait(10)
    assert w.record_call(call(1))
    assert w.record_call(call(2))
    assert not w.record_call(call(3))
    assert w.stats.dropped == 1
    store.release()
    assert w.flush(timeout=10)
    assert [c.call_id for c in store.calls] == ["c0", "c1", "c2"]


def test_block_policy_waits_for_space(writers: list[LedgerWriter]) -> None:
    store = MemoryStore(gated=True)
    w = LedgerWriter(store, batch_size=1, max_queue=1, on_full="block")  # type: ignore[arg-type]
    writers.append(w)
    w.record_call(call(0))
    assert store.entered.wait(10)
    w.record_call(call(1))
    producer = threading.Thread(target=w.record_call, args=(call(2),))
    producer.start()
    wait_until(lambda: w.stats.blocked == 1)
    assert producer.is_alive()
    store.release()
    producer.join(10)
    assert not producer.is_alive()
    assert w.flush(timeout=10)
    assert [c.call_id for c in store.calls] == ["c0", "c1", "c2"]
    assert w.stats.dropped == 0


def test_spill_policy_spills_redacted_then_replays_on_close(tmp_path: Path) -> None:
    store = MemoryStore(gated=True)
    w = LedgerWriter(store, batch_size=1, max_queue=1, on_full="spill",  # type: ignore[arg-type]
                     spill_dir=tmp_path)
    w.record_call(call(0))
    assert store.entered.wait(10)
    w.record_call(call(1))
    assert not w.record_call(call(2, output_text=f"key {SECRET}"))
    assert w.stats.spilled == 1
    files = list(tmp_path.glob("ledger-spill-*.jsonl"))
    assert len(files) == 1
    raw = files[0].read_text()
    assert '"c2"' in raw
    assert SECRET not in raw
    store.release()
    w.close(timeout=10)
    assert sorted(c.call_id for c in store.calls) == ["c0", "c1", "c2"]
    assert w.stats.replayed == 1
    assert list(tmp_path.iterdir()) == []


def test_spill_files_left_by_a_dead_writer_are_replayed_at_start(tmp_path: Path) -> None:
    old = SpillFile(tmp_path)
    old.append([(call(1), (AttemptRecord(call_id="c1", index=0, started_at=0),)),
                FeedbackRecord(feedback_id="f", call_id="c1", signal="accepted", created_at=0)])
    old.close()
    with old.path.open("a") as fh:
        fh.write(entry_json((call(2), ()))[:20])  # a line torn by a crash
    live = SpillFile(tmp_path)  # another live writer's file: held, so skipped
    live.append([(call(3), ())])
    store = MemoryStore()
    w = LedgerWriter(store, spill_dir=tmp_path, on_full="spill")  # type: ignore[arg-type]
    w.close(timeout=10)
    assert [c.call_id for c in store.calls] == ["c1"]
    assert len(store.attempts) == 1
    assert len(store.feedback) == 1
    assert w.stats.replayed == 2
    assert w.stats.failed == 1  # the torn line
    assert not old.path.exists()
    assert live.path.exists()
    live.close()


def test_a_failed_batch_is_counted_and_the_writer_keeps_going(
        writers: list[LedgerWriter]) -> None:
    store = MemoryStore()
    store.fail_next = 1
    w = LedgerWriter(store, batch_size=10)  # type: ignore[arg-type]
    writers.append(w)
    for i in range(3):
        w.record_call(call(i))
    assert w.flush(timeout=10)
    w.record_call(call(3))
    assert w.flush(timeout=10)
    assert [c.call_id for c in store.calls] == ["c3"]
    assert w.stats.failed == 3
    assert w.stats.written == 1


def test_a_failed_batch_spills_when_a_spill_dir_is_set(tmp_path: Path) -> None:
    store = MemoryStore()
    store.fail_next = 1
    w = LedgerWriter(store, spill_dir=tmp_path)  # type: ignore[arg-type]
    w.record_call(call(0))
    assert w.flush(timeout=10)
    assert w.stats.spilled == 1
    w.close(timeout=10)
    assert [c.call_id for c in store.calls] == ["c0"]


def test_records_are_redacted_before_the_store_sees_them(writers: list[LedgerWriter]) -> None:
    store = MemoryStore()
    w = LedgerWriter(store)  # type: ignore[arg-type]
    writers.append(w)
    w.record_call(call(0, output_text=f"mail jane@example.com with {SECRET}",
                       error_message=f"bad key {SECRET}"),
                  [AttemptRecord(call_id="c0", index=0, started_at=0,
                                 error_message=f"401 for {SECRET}")])
    w.record_feedback("c0", "edited", comment=f"oops {SECRET}")
    assert w.flush(timeout=10)
    dumped = store.calls[0].model_dump_json() + store.attempts[0].model_dump_json()
    dumped += store.feedback[0].model_dump_json()
    assert SECRET not in dumped
    assert "jane@example.com" not in dumped


def test_feedback_is_validated_and_stamped(writers: list[LedgerWriter]) -> None:
    store = MemoryStore()
    clock = ManualClock(wall_start=1_800_000_000.0)
    w = LedgerWriter(store, clock=clock, new_id=lambda: "fb-1")  # type: ignore[arg-type]
    writers.append(w)
    with pytest.raises(UsageError, match="unknown feedback signal 'liked'"):
        w.record_feedback("c1", "liked")
    with pytest.raises(UsageError, match="score"):
        w.record_feedback("c1", "score")
    got = w.record_feedback("c1", "score", value=0.8)
    assert got == FeedbackRecord(feedback_id="fb-1", call_id="c1", signal="score", value=0.8,
                                 created_at=1_800_000_000.0)
    assert w.flush(timeout=10)
    assert store.feedback == [got]


def test_on_commit_reports_after_each_commit(writers: list[LedgerWriter]) -> None:
    seen: list[int] = []
    store = MemoryStore()
    w = LedgerWriter(store, batch_size=2,  # type: ignore[arg-type]
                     on_commit=lambda s: seen.append(s.written))
    writers.append(w)
    for i in range(5):
        w.record_call(call(i))
    assert w.flush(timeout=10)
    assert seen[-1] == 5
    assert seen == sorted(seen)


def test_close_flushes_is_idempotent_and_later_records_are_dropped(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "l.db")
    w = LedgerWriter(store, flush_interval_s=60)
    for i in range(10):
        w.record_call(call(i))
    w.close(timeout=10)
    w.close(timeout=10)
    assert len(store.query_calls(CallFilter(limit=100))) == 10
    assert not w.record_call(call(99))
    assert w.stats.dropped == 1
    store.close()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"on_full": "explode"}, "unknown on_full policy"),
    ({"on_full": "spill"}, "needs a spill_dir"),
    ({"batch_size": 0}, "must be >= 1"),
])
def test_bad_settings_are_config_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LedgerWriter(MemoryStore(), **kwargs)  # type: ignore[arg-type]


def test_deferred_records_are_built_on_the_writer_thread_and_spill_too(tmp_path: Path) -> None:
    store = MemoryStore(gated=True)
    w = LedgerWriter(store, batch_size=1, max_queue=1, on_full="spill",  # type: ignore[arg-type]
                     spill_dir=tmp_path)
    built_on: list[str] = []

    def deferred(i: int, text: str = "") -> Callable[[], tuple[CallRecord, tuple[()]]]:
        def build() -> tuple[CallRecord, tuple[()]]:
            built_on.append(threading.current_thread().name)
            return call(i, output_text=text), ()
        return build

    w.record_deferred(deferred(0))
    assert store.entered.wait(10)
    w.record_deferred(deferred(1))
    assert not w.record_deferred(deferred(2, f"key {SECRET}"))  # queue full: spilled
    raw = next(tmp_path.glob("ledger-spill-*.jsonl")).read_text()
    assert '"c2"' in raw
    assert SECRET not in raw
    store.release()
    w.close(timeout=10)
    assert sorted(c.call_id for c in store.calls) == ["c0", "c1", "c2"]
    assert built_on.count("buttress-ledger-writer") == 2  # c2 was built where it spilled
