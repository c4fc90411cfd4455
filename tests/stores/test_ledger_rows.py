"""The writer's two ways to rows store the very same values: the hook's, straight from the
runtime's outcome, and the records', redacted then flattened; on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from buttress.ledger import AttemptRecord, CallRecord, FeedbackRecord
from buttress.ledger.hook import LedgerHook
from buttress.ledger.redaction import Redactor
from buttress.ledger.rows import CallRows, attempt_row, call_row, call_rows
from buttress.ledger.sqlite import SQLiteStore
from buttress.ledger.writer import LedgerWriter
from buttress.runtime.hooks import Outcome

from .conftest import Backend
from .ledger_outcomes import OPENAI_KEY, UPSTREAM_KEY, WALL, outcomes, redactor

OUTCOMES = list(outcomes())
TABLES = {"calls": "call_id", "call_tags": "call_id, tag", "attempts": "attempt_id",
          "feedback": "feedback_id"}


class FixedWall:
    def now(self) -> float:
        return 0.0

    def wall(self) -> float:
        return WALL

    async def sleep(self, seconds: float) -> None:
        return None


def typed(rows: Sequence[Sequence[Any]]) -> list[list[tuple[str, Any]]]:
    """Rows with each value's type, so that 1 and 1.0 (or 1 and True) differ."""
    return [[(type(v).__name__, v) for v in row] for row in rows]


def redacted(hook: LedgerHook, red: Redactor,
             outcome: Outcome) -> tuple[CallRecord, tuple[AttemptRecord, ...]]:
    call, tries = hook.records(outcome, WALL)
    clean = red.call(call)
    return clean, red.attempts(tries, clean.feature)


def dump(backend: Backend) -> dict[str, list[list[tuple[str, Any]]]]:
    return {t: typed(backend.execute(f"SELECT * FROM {t} ORDER BY {key}"))
            for t, key in TABLES.items()}


@pytest.mark.parametrize("boolean", [bool, int])
@pytest.mark.parametrize(("name", "outcome", "direct"), OUTCOMES,
                         ids=[name for name, _, _ in OUTCOMES])
def test_rows_from_the_outcome_equal_rows_of_its_redacted_records(
        name: str, outcome: Outcome, direct: bool,
        boolean: Callable[[bool], Any]) -> None:
    hook, red = LedgerHook(None, clock=FixedWall()), redactor()  # type: ignore[arg-type]
    rows = hook.rows(outcome, red, boolean)
    assert (rows is not None) == direct, "the usual calls skip the records, odd ones do not"
    if rows is not None:
        expected = call_rows(*redacted(hook, red, outcome), boolean)
        assert [typed([rows[0]]), rows[1], typed(rows[2])] == \
            [typed([expected[0]]), expected[1], typed(expected[2])]


async def test_the_writer_stores_what_the_records_would(backend: Backend,
                                                        tmp_path: Path) -> None:
    writer = LedgerWriter(backend.open(), redactor=redactor(), batch_size=7)
    hook = LedgerHook(writer, clock=FixedWall())
    for _, outcome, _ in OUTCOMES:
        await hook.after(outcome)
    writer.close(timeout=30)
    assert writer.stats.written == len(OUTCOMES)

    (tmp_path / "records").mkdir()
    other = Backend(backend.kind, tmp_path / "records")
    try:
        store, red = other.open(), redactor()
        for _, outcome, _ in OUTCOMES:
            call, tries = redacted(hook, red, outcome)
            store.write([call], tries)
        assert dump(backend) == dump(other)
    finally:
        other.cleanup()


async def test_no_secret_is_stored_and_names_keep_personal_data(backend: Backend) -> None:
    writer = LedgerWriter(backend.open(), redactor=redactor(), batch_size=5)
    hook = LedgerHook(writer, clock=FixedWall())
    for _, outcome, _ in OUTCOMES:
        await hook.after(outcome)
    writer.close(timeout=30)
    stored = [value for rows in dump(backend).values() for row in rows for _, value in row
              if isinstance(value, str)]
    assert [v for v in stored if OPENAI_KEY in v or UPSTREAM_KEY in v] == []
    assert "u-[REDACTED:secret]" in stored
    assert "jane@example.com" in stored  # a user id
    assert "415-555-2671" in stored  # a tag


class FlakyStore(SQLiteStore):
    """Fails its first ``write_rows``, as a full disk would."""

    failed = False

    def write_rows(self, calls: Sequence[CallRows],
                   feedback: Sequence[FeedbackRecord] = ()) -> None:
        if not self.failed:
            self.failed = True
            raise sqlite3.OperationalError("database or disk is full")
        super().write_rows(calls, feedback)


async def test_calls_written_as_rows_spill_as_redacted_records(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "ledger.db")
    writer = LedgerWriter(store, redactor=redactor(), batch_size=len(OUTCOMES),
                          flush_interval_s=60, spill_dir=tmp_path / "spill")
    hook = LedgerHook(writer, clock=FixedWall())
    for _, outcome, _ in OUTCOMES:
        await hook.after(outcome)
    assert writer.flush(timeout=30)
    assert writer.stats.spilled == len(OUTCOMES)
    (spilled,) = (tmp_path / "spill").iterdir()
    text = spilled.read_text()
    assert UPSTREAM_KEY not in text
    assert OPENAI_KEY not in text
    writer.close(timeout=30)  # replays the spill file
    assert writer.stats.replayed == len(OUTCOMES)

    straight = SQLiteStore(tmp_path / "straight.db")
    red = redactor()
    for _, outcome, _ in OUTCOMES:
        call, tries = redacted(hook, red, outcome)
        straight.write([call], tries)
    for table, key in TABLES.items():
        select = f"SELECT * FROM {table} ORDER BY {key}"
        assert typed(store._conn.execute(select).fetchall()) == \
            typed(straight._conn.execute(select).fetchall())
    store.close()
    straight.close()


def test_sqlite_stores_nan_and_int_as_it_would_none_and_bool(tmp_path: Path) -> None:
    # SQLiteStore binds None as NaN and cache_hit as an int, which sqlite3 binds faster; what
    # it stores must be what plain rows store, storage class included.
    hook, red = LedgerHook(None, clock=FixedWall()), redactor()  # type: ignore[arg-type]
    entries = [redacted(hook, red, outcome) for _, outcome, _ in OUTCOMES]
    calls = [c for c, _ in entries]
    attempts = [a for _, tries in entries for a in tries]
    feedback = [FeedbackRecord(feedback_id="f1", call_id=calls[0].call_id, signal="accepted",
                               created_at=WALL),
                FeedbackRecord(feedback_id="f2", call_id=calls[0].call_id, signal="score",
                               value=0.0, comment="fine", created_at=WALL)]
    fast = SQLiteStore(tmp_path / "fast.db")
    fast.write(calls, attempts, feedback)
    plain = SQLiteStore(tmp_path / "plain.db")
    with plain._transaction() as cur:
        cur.executemany(plain._insert_call, [call_row(c) for c in calls])
        cur.executemany(plain._insert_attempt, [attempt_row(a) for a in attempts])
        cur.executemany(plain._insert_feedback,
                        [(f.feedback_id, f.call_id, f.signal, f.value, f.comment, f.created_at)
                         for f in feedback])
    assert any(c.cache_hit for c in calls)
    assert any(not c.cache_hit for c in calls)
    for table, key in TABLES.items():
        if table == "call_tags":
            continue
        columns = [r[1] for r in fast._conn.execute(f"PRAGMA table_info({table})")]
        select = (f"SELECT {', '.join(f'{c}, typeof({c})' for c in columns)} FROM {table} "
                  f"ORDER BY {key}")
        assert typed(fast._conn.execute(select).fetchall()) == \
            typed(plain._conn.execute(select).fetchall())
    fast.close()
    plain.close()
