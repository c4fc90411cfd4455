"""The ledger writer: recording costs the call path an append; a thread does the I/O.

``record_call`` and ``record_feedback`` put an entry on a bounded in-memory queue and return; they
never touch the store. A background thread wakes when a batch is ready or every
``flush_interval_s`` while anything is queued, redacts the entries and writes each batch in one
transaction. With nothing queued it sleeps until the next entry comes (an idle process does
not wake for nothing); that entry still waits at most ``flush_interval_s``. What arrives while
a batch is being written waits for the next interval too, unless a whole batch is queued or
someone waits (``flush``, ``close``, a blocked caller). Writing those few at once made several
small transactions an interval, each rewriting the pages of the tables and their indexes and
taking the locks again: at 500 calls a second, strace counted 2.7 ``pwrite`` and 0.47
``fcntl`` calls a record on the writer's thread; now 1.1 and 0.05 (its CPU, about 90 µs a
record there, moved by a few percent).

``flush_interval_s`` is 0.2 s by default. Longer costs less CPU at low rates (each batch pays a
transaction and a pass over the writer's code from cold caches: at 20 calls a second, batches of
4 cost about 160 µs of CPU a record, batches of 20 (1 s) about 70), but at high rates the larger
batches hold the GIL longer: at 500 calls a second, 1 s added about 5 ms to the gateway's p99.

When the queue is full, ``on_full`` decides:

- ``"block"``: the caller waits for space. This CAN stall the caller, event loop included; choose
  it only where losing a record is worse than waiting.
- ``"drop"``: the entry is discarded and counted in ``stats.dropped``.
- ``"spill"``: the entry is redacted and appended to a JSON-lines file in ``spill_dir``, replayed
  into the store when this writer closes or when a writer next starts on that directory.

Crash bound: a batch is durable once its transaction commits (SQLite WAL survives kill -9).
A kill -9 loses only what was still queued plus the batch being written: while the writer keeps
up that is at most ``batch_size`` entries or ``flush_interval_s`` (and one write's) worth of
traffic, whichever is larger; if the store falls behind it grows to at most
``max_queue + batch_size``. Spilled lines are flushed to the OS as they are written and survive
a process crash.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import ValidationError

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError, UsageError
from buttress.ledger.records import (
    FEEDBACK_SIGNALS,
    AttemptRecord,
    CallRecord,
    FeedbackRecord,
)
from buttress.ledger.redaction import Redactor
from buttress.ledger.rows import CallRows, call_rows
from buttress.ledger.spill import (
    CallEntry,
    Entry,
    SpillFile,
    claim,
    pending_files,
    read_entries,
)
from buttress.ledger.sql import SqlStore
from buttress.ledger.store import LedgerStore

log = logging.getLogger("buttress.ledger")

OnFull = Literal["block", "drop", "spill"]
Deferred = Callable[[], CallEntry]
GIL_SLICE_S = 0.0005


class PendingCall(ABC):
    """A call queued by a hook (``record_deferred``), built on the writer thread.

    Calling it builds its records. For a SQL store the writer asks ``rows`` first: the rows
    those records would give once redacted, built straight from what the hook holds. Skipping
    the records saves a quarter of the writer's time for the usual call; ``rows`` returns None
    for a call it cannot build so (one that redaction would change, say), which then goes the
    record way.
    """

    __slots__ = ()

    @abstractmethod
    def __call__(self) -> CallEntry: ...

    def rows(self, redactor: Redactor, boolean: Callable[[bool], Any]) -> CallRows | None:
        """The rows (``rows.call_rows`` of the redacted records, with the store's ``boolean``),
        or None."""
        return None


@dataclass(frozen=True)
class WriterStats:
    """Counts of entries (a call with its attempts, or one feedback)."""

    queued: int  # accepted onto the queue
    written: int  # committed to the store
    dropped: int  # discarded: queue full under "drop", or recorded after close
    spilled: int  # appended to the spill file
    failed: int  # could not be redacted or written, and could not be spilled
    replayed: int  # read back from spill files into the store
    depth: int  # waiting in the queue now
    blocked: int  # callers waiting for space now (on_full="block")


class LedgerWriter:
    def __init__(self, store: LedgerStore, *, max_queue: int = 10_000, batch_size: int = 500,
                 flush_interval_s: float = 0.2, on_full: OnFull = "block",
                 spill_dir: str | Path | None = None, redactor: Redactor | None = None,
                 clock: Clock = SYSTEM_CLOCK, new_id: Callable[[], str] | None = None,
                 on_commit: Callable[[WriterStats], None] | None = None) -> None:
        if on_full not in ("block", "drop", "spill"):
            raise ConfigError(f"unknown on_full policy {on_full!r}; choose block, drop or spill",
                              source="ledger", key="on_full")
        if on_full == "spill" and spill_dir is None:
            raise ConfigError("on_full='spill' needs a spill_dir", source="ledger",
                              key="spill_dir")
        if max_queue < 1 or batch_size < 1 or flush_interval_s <= 0:
            raise ConfigError("max_queue and batch_size must be >= 1 and flush_interval_s > 0",
                              source="ledger")
        self.store = store
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.on_full: OnFull = on_full
        self.redactor = redactor if redactor is not None else Redactor()
        self._clock = clock
        self._new_id = new_id or (lambda: uuid.uuid4().hex)
        self._on_commit = on_commit
        # a SQL store takes rows, which the writer then builds (``PendingCall.rows``)
        self._sql = store if isinstance(store, SqlStore) else None
        self._spill = SpillFile(Path(spill_dir)) if spill_dir is not None else None
        self._spill_lock = threading.Lock()

        self._q: collections.deque[Entry | Deferred] = collections.deque()
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._blocked = 0
        self._parked = False  # the thread waits for an entry (the queue was empty)
        self._closed = False
        self._warned_closed = False
        self._queued = self._processed = 0
        self._flush_to = 0  # flush() waits until this many entries are processed
        self._written = self._dropped = self._spilled = self._failed = self._replayed = 0

        self._thread = threading.Thread(target=self._run, name="buttress-ledger-writer",
                                        daemon=True)
        self._thread.start()

    # -- the call path: O(1), no I/O (except "spill" when the queue is full) -----------------

    def record_call(self, call: CallRecord, attempts: Sequence[AttemptRecord] = ()) -> bool:
        """Queue a call and its attempts. Returns False when the entry was dropped or spilled."""
        return self._put((call, tuple(attempts)))

    def record_deferred(self, build: Callable[[], CallEntry]) -> bool:
        """Queue a call whose records ``build`` makes later, on the writer thread, so building
        them (and everything else but this append) stays off the call path."""
        return self._put(build)

    def record_feedback(self, call_id: str, signal: str, value: float | None = None,
                        comment: str | None = None) -> FeedbackRecord:
        """Queue a downstream signal about a call (any time after it). Raises ``UsageError``
        for an unknown signal or a ``score`` without a value."""
        if signal not in FEEDBACK_SIGNALS:
            raise UsageError(f"unknown feedback signal {signal!r}; "
                             f"choose one of {', '.join(FEEDBACK_SIGNALS)}")
        try:
            record = FeedbackRecord(feedback_id=self._new_id(), call_id=call_id,
                                    signal=signal,
                                    value=value, comment=comment,
                                    created_at=self._clock.wall())
        except ValidationError as exc:
            raise UsageError(f"invalid feedback for call {call_id!r}: "
                             f"{exc.errors()[0]['msg']}") from exc
        self._put(record)
        return record

    def _put(self, entry: Entry | Deferred) -> bool:
        with self._cond:
            if self._closed:
                self._dropped += 1
                warn, self._warned_closed = not self._warned_closed, True
                if warn:
                    log.warning("ledger writer is closed; dropping records recorded after close")
                return False
            if len(self._q) < self.max_queue:
                self._append(entry)
                return True
            if self.on_full == "drop":
                self._dropped += 1
                return False
            if self.on_full == "block":
                return self._wait_and_put(entry)
        self._spill_entries([entry])  # outside the lock: it is file I/O
        return False

    def _wait_and_put(self, entry: Entry | Deferred) -> bool:
        # Called holding self._cond.
        self._blocked += 1
        self._wake.set()
        self._cond.wait_for(lambda: len(self._q) < self.max_queue or self._closed
                            or not self._thread.is_alive())
        self._blocked -= 1
        if self._closed or not self._thread.is_alive():
            self._dropped += 1
            return False
        self._append(entry)
        return True

    def _append(self, entry: Entry | Deferred) -> None:
        # Called holding self._cond.
        self._q.append(entry)
        self._queued += 1
        if len(self._q) == self.batch_size:
            self._wake.set()
        if self._parked:
            self._parked = False
            self._cond.notify_all()  # all: flush() and blocked callers wait on it too

    # -- control ----------------------------------------------------------------------------

    @property
    def stats(self) -> WriterStats:
        with self._cond:
            return self._stats()

    def _stats(self) -> WriterStats:
        return WriterStats(queued=self._queued, written=self._written, dropped=self._dropped,
                           spilled=self._spilled, failed=self._failed, replayed=self._replayed,
                           depth=len(self._q), blocked=self._blocked)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued before this call is written (or failed). Blocking: call
        it from a thread or at shutdown, not on the event loop. Returns False on timeout."""
        with self._cond:
            target = self._queued
            self._flush_to = max(self._flush_to, target)
        self._wake.set()
        with self._cond:
            return self._cond.wait_for(
                lambda: self._processed >= target or not self._thread.is_alive(), timeout)

    def close(self, timeout: float | None = None) -> None:
        """Write everything queued, replay this writer's spill file, and stop. Idempotent.
        Does not close the store, which the writer does not own."""
        with self._cond:
            if self._closed:
                already = True
            else:
                already = False
                self._closed = True
                self._cond.notify_all()
        self._wake.set()
        self._thread.join(timeout)
        if already:
            return
        if self._spill is not None and self._spill.used:
            with self._spill_lock:
                self._spill.close()
                self._replay(self._spill.path, locked=False)

    def __enter__(self) -> LedgerWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        if self._spill is not None:
            for path in pending_files(self._spill.directory, exclude=self._spill.path):
                self._replay(path, locked=True)
        while True:
            with self._cond:
                while not self._q and not self._closed:
                    self._parked = True  # until ``_put`` or ``close`` notifies
                    self._cond.wait()
                self._parked = False
            # the first entry waits for company: at most flush_interval_s, less when a batch
            # fills up or flush() or close() asks
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            while True:
                with self._cond:
                    n = min(self.batch_size, len(self._q))
                    batch = [self._q.popleft() for _ in range(n)]
                    if n and self._blocked:
                        self._cond.notify_all()
                    closing = self._closed
                if not batch:
                    break
                self._write(batch)
                # what arrived during the write waits for the next interval, unless a full
                # batch is queued or someone waits (flush, close, a blocked caller): a
                # transaction for a few stragglers costs most of what one for a whole batch
                # does (the tables' and indexes' pages rewritten, the locks taken and released)
                with self._cond:
                    if not (self._closed or self._blocked or len(self._q) >= self.batch_size
                            or self._processed < self._flush_to):
                        break
            if closing:
                with self._cond:
                    if not self._q:
                        self._cond.notify_all()
                        return

    def _write(self, batch: list[Entry | Deferred]) -> None:
        sql, redactor = self._sql, self.redactor
        boolean = sql.boolean if sql is not None else bool
        rows: list[CallRows] = []  # for a SQL store; records for any other
        calls: list[CallRecord] = []
        attempts: list[AttemptRecord] = []
        feedback: list[FeedbackRecord] = []
        clean: list[Entry | PendingCall] = []  # redacted, or its rows were
        bad = 0
        yielded = time.perf_counter()
        for entry in batch:
            # Yield the GIL every ~0.5 ms of record building: an event loop thread waiting for
            # it gets it then, instead of after Python's 5 ms switch interval. (Yielding much
            # more often costs more than it saves: every hand-over is a thread switch, and the
            # two threads usually share one core.)
            now = time.perf_counter()
            if now - yielded > GIL_SLICE_S:
                time.sleep(0)
                yielded = now
            try:
                if sql is not None and isinstance(entry, PendingCall):
                    ready = entry.rows(redactor, boolean)
                    if ready is not None:
                        rows.append(ready)
                        clean.append(entry)
                        continue
                if callable(entry):
                    entry = entry()
                if isinstance(entry, FeedbackRecord):
                    fb = redactor.feedback(entry)
                    feedback.append(fb)
                    clean.append(fb)
                else:
                    call = redactor.call(entry[0])
                    tries = redactor.attempts(entry[1], call.feature)
                    if sql is not None:
                        rows.append(call_rows(call, tries, boolean))
                    else:
                        calls.append(call)
                        attempts.extend(tries)
                    clean.append((call, tries))
            except Exception:
                # Never let one odd record (or a custom detector's bug) sink its batch.
                log.exception("ledger: could not redact a record; it is not stored")
                bad += 1
        written = spilled = failed = 0
        try:
            if sql is not None:
                sql.write_rows(rows, feedback)
            else:
                self.store.write(calls, attempts, feedback)
            written = len(clean)
        except Exception as exc:
            log.error("ledger: writing %d records failed: %s: %s", len(clean),
                      type(exc).__name__, exc)
            if self._spill is not None and self._spill_entries(clean, count=False):
                spilled = len(clean)
            else:
                failed = len(clean)
        with self._cond:
            self._written += written
            self._spilled += spilled
            self._failed += failed + bad
            self._processed += len(batch)
            stats = self._stats()
            self._cond.notify_all()
        if written and self._on_commit is not None:
            try:
                self._on_commit(stats)
            except Exception:
                log.exception("ledger: on_commit callback failed")

    def _spill_entries(self, entries: list[Entry | PendingCall] | list[Entry | Deferred], *,
                       count: bool = True) -> bool:
        assert self._spill is not None
        try:
            # from the call path: not yet redacted (nor built); from _write: clean already,
            # but for calls written as rows, whose records are built and redacted now
            clean = [self._redact(e) if count or isinstance(e, PendingCall) else cast(Entry, e)
                     for e in entries]
            with self._spill_lock:
                self._spill.append(clean)
        except Exception:
            log.exception("ledger: spilling %d records failed", len(entries))
            with self._cond:
                self._failed += len(entries) if count else 0
            return False
        if count:
            with self._cond:
                self._spilled += len(entries)
        return True

    def _redact(self, entry: Entry | Deferred) -> Entry:
        if callable(entry):
            entry = entry()
        if isinstance(entry, FeedbackRecord):
            return self.redactor.feedback(entry)
        call = self.redactor.call(entry[0])
        return call, self.redactor.attempts(entry[1], call.feature)

    def _replay(self, path: Path, *, locked: bool) -> None:
        """Write a spill file's entries to the store, then delete it. ``locked``: take the
        file's lock first, skipping it when another live writer holds it."""
        with claim(path) if locked else _always() as ours:
            if not ours:
                return
            try:
                entries, bad = read_entries(path)
                for start in range(0, len(entries), self.batch_size):
                    chunk = entries[start:start + self.batch_size]
                    self.store.write(
                        [e[0] for e in chunk if not isinstance(e, FeedbackRecord)],
                        [a for e in chunk if not isinstance(e, FeedbackRecord) for a in e[1]],
                        [e for e in chunk if isinstance(e, FeedbackRecord)])
                path.unlink(missing_ok=True)
            except Exception as exc:
                log.error("ledger: replaying spill file %s failed (kept for the next start): "
                          "%s: %s", path, type(exc).__name__, exc)
                return
            if bad:
                log.warning("ledger: %d unreadable line(s) skipped in spill file %s", bad, path)
            with self._cond:
                self._replayed += len(entries)
                self._failed += bad


class _always:
    def __enter__(self) -> bool:
        return True

    def __exit__(self, *exc: object) -> None:
        return None
