"""The SQL every ledger store shares; SQLite and PostgreSQL supply a connection and a dialect.

One connection per store, serialised by a lock: the writer thread batches writes, so a second
connection would buy little and cost a second set of migrations checks and locks.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from buttress.errors import UsageError
from buttress.ledger.records import AttemptRecord, CallRecord, FeedbackRecord
from buttress.ledger.rows import (
    ATTEMPT_COLUMNS,
    CALL_COLUMNS,
    CALL_INSERT_COLUMNS,
    FEEDBACK_COLUMNS,
    CallRows,
    attempt_from_row,
    attempt_row,
    call_from_row,
    call_row,
    feedback_from_row,
    feedback_row,
    tag_rows,
)
from buttress.ledger.store import AGGREGATE_BY, AggregateBy, AggregateRow, CallFilter


def _insert(table: str, columns: Sequence[str], key: str, mark: str) -> str:
    marks = ", ".join([mark] * len(columns))
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
            f"ON CONFLICT ({key}) DO NOTHING")


class SqlStore(ABC):
    """Implements ``LedgerStore`` over a DB-API connection; subclasses open and configure it."""

    mark = "?"  # the driver's parameter placeholder

    def __init__(self, where: str) -> None:
        self._where = where
        self._lock = threading.Lock()
        self._closed = False
        m = self.mark
        self._insert_call = _insert("calls", CALL_INSERT_COLUMNS, "call_id", m)
        self._insert_tag = _insert("call_tags", ("call_id", "tag"), "call_id, tag", m)
        self._insert_attempt = _insert("attempts", ATTEMPT_COLUMNS, "attempt_id", m)
        self._insert_feedback = _insert("feedback", FEEDBACK_COLUMNS, "feedback_id", m)

    # -- what a dialect supplies ------------------------------------------------------------

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Any]:
        """A cursor inside a write transaction: committed on exit, rolled back on error."""

    @abstractmethod
    def _cursor(self) -> AbstractContextManager[Any]:
        """A cursor for reads."""

    @abstractmethod
    def _day_expr(self) -> str:
        """SQL for the UTC calendar day (``YYYY-MM-DD``) of ``c.created_at``."""

    @abstractmethod
    def _close_connection(self) -> None: ...

    #: the type a boolean column's value is bound as (PostgreSQL's columns are booleans)
    boolean: Callable[[bool], Any] = bool

    def _bindable(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """``rows`` as the driver binds them fastest, to the same stored values."""
        return rows

    # -- LedgerStore ------------------------------------------------------------------------

    def write(self, calls: Sequence[CallRecord], attempts: Sequence[AttemptRecord] = (),
              feedback: Sequence[FeedbackRecord] = ()) -> None:
        boolean = self.boolean
        self._insert_rows([call_row(c, boolean) for c in calls], tag_rows(calls),
                          [attempt_row(a) for a in attempts], feedback)

    def write_rows(self, calls: Sequence[CallRows],
                   feedback: Sequence[FeedbackRecord] = ()) -> None:
        """``write`` for calls already turned into rows (``rows.call_rows`` with this store's
        ``boolean``): the ledger writer builds them, for most calls straight from the runtime's
        outcome, without records."""
        self._insert_rows([c for c, _, _ in calls], [t for _, tags, _ in calls for t in tags],
                          [a for _, _, tries in calls for a in tries], feedback)

    def _insert_rows(self, call_rows: list[tuple[Any, ...]], tags: list[tuple[str, str]],
                     attempt_rows: list[tuple[Any, ...]],
                     feedback: Sequence[FeedbackRecord]) -> None:
        bindable = self._bindable
        call_rows, attempt_rows = bindable(call_rows), bindable(attempt_rows)
        feedback_rows = bindable([feedback_row(f) for f in feedback])
        with self._locked(), self._transaction() as cur:
            if call_rows:
                cur.executemany(self._insert_call, call_rows)
            if tags:
                cur.executemany(self._insert_tag, tags)
            if attempt_rows:
                cur.executemany(self._insert_attempt, attempt_rows)
            if feedback_rows:
                cur.executemany(self._insert_feedback, feedback_rows)

    def query_calls(self, filter: CallFilter | None = None) -> list[CallRecord]:
        f = filter or CallFilter()
        where, params = self._where_clause(
            f.since, f.until, feature=f.feature, key=f.api_key_id, tag=f.tag)
        m = self.mark
        for column, value in (("status", f.status), ("provider", f.provider),
                              ("prompt_name", f.prompt_name),
                              ("prompt_version", f.prompt_version), ("trace_id", f.trace_id)):
            if value is not None:
                where.append(f"c.{column} = {m}")
                params.append(value)
        if f.model is not None:
            where.append(f"(c.model_requested = {m} OR c.model_served = {m})")
            params += [f.model, f.model]
        sql = (f"SELECT {', '.join('c.' + col for col in CALL_COLUMNS)} FROM calls c"
               f"{_and(where)} ORDER BY c.created_at DESC, c.call_id DESC "
               f"LIMIT {int(f.limit)} OFFSET {int(f.offset)}")
        with self._locked(), self._cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
        return [call_from_row(r) for r in rows]

    def get_call(self, call_id: str) -> tuple[CallRecord, list[AttemptRecord]] | None:
        m = self.mark
        with self._locked(), self._cursor() as cur:
            cur.execute(f"SELECT {', '.join(CALL_COLUMNS)} FROM calls WHERE call_id = {m}",
                        (call_id,))
            row = cur.fetchone()
            if row is None:
                return None
            cur.execute(f"SELECT {', '.join(ATTEMPT_COLUMNS)} FROM attempts "
                        f"WHERE call_id = {m} ORDER BY idx, attempt_id", (call_id,))
            attempts = cur.fetchall()
        return call_from_row(row), [attempt_from_row(a) for a in attempts]

    def feedback_for(self, call_id: str) -> list[FeedbackRecord]:
        with self._locked(), self._cursor() as cur:
            cur.execute(f"SELECT {', '.join(FEEDBACK_COLUMNS)} FROM feedback "
                        f"WHERE call_id = {self.mark} ORDER BY created_at, feedback_id",
                        (call_id,))
            rows = cur.fetchall()
        return [feedback_from_row(r) for r in rows]

    def aggregate(self, by: AggregateBy, since: float | None = None,
                  until: float | None = None) -> list[AggregateRow]:
        if by not in AGGREGATE_BY:
            raise UsageError(f"cannot aggregate by {by!r}; choose one of {', '.join(AGGREGATE_BY)}")
        key = {
            "feature": "c.feature",
            "model": "COALESCE(c.model_served, c.model_requested)",
            "provider": "c.provider",
            "key": "c.api_key_id",
            "tag": "t.tag",
            "day": self._day_expr(),
        }[by]
        join = " JOIN call_tags t ON t.call_id = c.call_id" if by == "tag" else ""
        where, params = self._where_clause(since, until)
        sql = (
            f"SELECT {key} AS k, COUNT(*),"
            " SUM(CASE WHEN c.status = 'error' THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN c.status = 'miss' THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN c.cache_hit THEN 1 ELSE 0 END),"
            " SUM(c.prompt_tokens), SUM(c.completion_tokens), SUM(c.cached_tokens),"
            " SUM(c.reasoning_tokens), COALESCE(SUM(c.cost_usd), 0), SUM(c.cost_saved_usd)"
            f" FROM calls c{join}{_and(where)} GROUP BY {key} ORDER BY 10 DESC, 1"
        )
        with self._locked(), self._cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
        return [AggregateRow(
            key=r[0], calls=int(r[1]), errors=int(r[2]), misses=int(r[3]), cache_hits=int(r[4]),
            prompt_tokens=int(r[5]), completion_tokens=int(r[6]), cached_tokens=int(r[7]),
            reasoning_tokens=int(r[8]), cost_usd=float(r[9]), cost_saved_usd=float(r[10]),
        ) for r in rows]

    def spend(self, since: float | None = None, until: float | None = None, *,
              feature: str | None = None, key: str | None = None,
              tag: str | None = None) -> float:
        where, params = self._where_clause(since, until, feature=feature, key=key, tag=tag)
        with self._locked(), self._cursor() as cur:
            cur.execute(f"SELECT COALESCE(SUM(c.cost_usd), 0) FROM calls c{_and(where)}", params)
            row = cur.fetchone()
        return float(row[0])

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._close_connection()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ----------------------------------------------------------------------------

    def _locked(self) -> _Locked:
        return _Locked(self)

    def _where_clause(self, since: float | None, until: float | None, *,
                      feature: str | None = None, key: str | None = None,
                      tag: str | None = None) -> tuple[list[str], list[Any]]:
        m = self.mark
        where: list[str] = []
        params: list[Any] = []
        if since is not None:
            where.append(f"c.created_at >= {m}")
            params.append(since)
        if until is not None:
            where.append(f"c.created_at < {m}")
            params.append(until)
        if feature is not None:
            where.append(f"c.feature = {m}")
            params.append(feature)
        if key is not None:
            where.append(f"c.api_key_id = {m}")
            params.append(key)
        if tag is not None:
            where.append(f"c.call_id IN (SELECT call_id FROM call_tags WHERE tag = {m})")
            params.append(tag)
        return where, params


class _Locked:
    """Holds the store's lock and refuses use after ``close``."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def __enter__(self) -> None:
        self._store._lock.acquire()
        if self._store._closed:
            self._store._lock.release()
            raise UsageError(f"ledger store {self._store._where} is closed")

    def __exit__(self, *exc: object) -> None:
        self._store._lock.release()


def _and(where: list[str]) -> str:
    return f" WHERE {' AND '.join(where)}" if where else ""

