"""Durable job records: one ``jobs`` table in the ledger's database (SQLite or PostgreSQL).

Stores are synchronous and thread-safe (one connection, one lock); the queue calls them with
``asyncio.to_thread``. ``params`` holds the call's arguments as JSON, unredacted (it must be able
to run the call again): keep secrets out of ``vars``, as for any prompt.
"""

from __future__ import annotations

import json
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol

from buttress.errors import ConfigError, UsageError
from buttress.ledger.records import CallRecord
from buttress.runtime.result import CallResult
from buttress.types import Value

JobStatus = Literal["pending", "running", "done", "failed"]
JOBS_SCHEMA_VERSION = 1

_DDL = (
    "CREATE TABLE IF NOT EXISTS jobs_schema (version BIGINT PRIMARY KEY)",
    """CREATE TABLE IF NOT EXISTS jobs (
        job_id TEXT PRIMARY KEY, status TEXT NOT NULL, feature TEXT NOT NULL,
        params TEXT NOT NULL, call_id TEXT, error TEXT, owner TEXT,
        created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at)",
)
_COLUMNS = ("job_id", "status", "feature", "params", "call_id", "error", "owner", "created_at",
            "updated_at")


class JobRecord(Value):
    """One submitted call as stored: its arguments and how far it got."""

    job_id: str
    status: JobStatus
    feature: str
    params: dict[str, Any]
    call_id: str | None = None
    error: str | None = None
    owner: str | None = None  # the queue that has it
    created_at: float
    updated_at: float


class Job(Value):
    """What ``AsyncClient.job`` answers: the job's state, and once done the ledger's record of
    its call (``record``) and, if it ran in this process, the ``result`` itself."""

    job_id: str
    status: JobStatus
    feature: str
    call_id: str | None = None
    error: str | None = None
    created_at: float
    updated_at: float
    record: CallRecord | None = None
    result: CallResult | None = None


class JobStore(Protocol):
    def add(self, job: JobRecord) -> None: ...

    def get(self, job_id: str) -> JobRecord | None: ...

    def update(self, job_id: str, status: JobStatus, now: float, *, call_id: str | None = None,
               error: str | None = None) -> None: ...

    def adopt(self, owner: str, now: float) -> list[JobRecord]:
        """Take every pending or running job another queue left (it stopped or died), oldest
        first, marking them pending under ``owner``."""
        ...

    def close(self) -> None: ...


class SqlJobStore(ABC):
    mark = "?"

    def __init__(self, where: str) -> None:
        self._where = where
        self._lock = threading.Lock()
        self._closed = False

    @abstractmethod
    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]: ...

    @abstractmethod
    def _close(self) -> None: ...

    def _init_schema(self) -> None:
        for statement in _DDL:
            self._execute(statement)
        rows = self._execute("SELECT MAX(version) FROM jobs_schema")
        have = rows[0][0] if rows and rows[0][0] is not None else 0
        if have > JOBS_SCHEMA_VERSION:
            raise ConfigError(f"jobs schema version {have} is newer than this buttress knows "
                              f"({JOBS_SCHEMA_VERSION}); upgrade buttress", source=self._where)
        if have < JOBS_SCHEMA_VERSION:
            self._execute(f"INSERT INTO jobs_schema (version) VALUES ({self.mark})",
                          (JOBS_SCHEMA_VERSION,))

    def add(self, job: JobRecord) -> None:
        marks = ", ".join([self.mark] * len(_COLUMNS))
        with self._locked():
            self._execute(f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({marks})",
                          _row(job))

    def get(self, job_id: str) -> JobRecord | None:
        with self._locked():
            rows = self._execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs "
                                 f"WHERE job_id = {self.mark}", (job_id,))
        return _record(rows[0]) if rows else None

    def update(self, job_id: str, status: JobStatus, now: float, *, call_id: str | None = None,
               error: str | None = None) -> None:
        m = self.mark
        with self._locked():
            self._execute(f"UPDATE jobs SET status = {m}, updated_at = {m}, "
                          f"call_id = COALESCE({m}, call_id), error = {m} WHERE job_id = {m}",
                          (status, now, call_id, error, job_id))

    def adopt(self, owner: str, now: float) -> list[JobRecord]:
        m = self.mark
        # One statement, so two processes adopting at once never both take a job
        # (RETURNING: SQLite 3.35+, PostgreSQL).
        with self._locked():
            rows = self._execute(
                f"UPDATE jobs SET owner = {m}, status = 'pending', updated_at = {m} "
                f"WHERE status IN ('pending', 'running') AND (owner IS NULL OR owner <> {m}) "
                f"RETURNING {', '.join(_COLUMNS)}", (owner, now, owner))
        return sorted((_record(r) for r in rows), key=lambda j: (j.created_at, j.job_id))

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._close()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            if self._closed:
                raise UsageError(f"job store {self._where} is closed")
            yield


class SQLiteJobStore(SqlJobStore):
    """Jobs in a SQLite file: the ledger's own, next to its tables."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 5000) -> None:
        import sqlite3

        super().__init__(str(path))
        self._errors = (sqlite3.Error,)
        try:
            self._conn = sqlite3.connect(str(path), isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._init_schema()
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the job store: {exc}", source=str(path)) from exc

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return self._conn.execute(sql, params).fetchall()

    def _close(self) -> None:
        self._conn.close()


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class PostgresJobStore(SqlJobStore):
    """Jobs in PostgreSQL (the ``postgres`` extra), in ``schema`` when given."""

    mark = "%s"

    def __init__(self, dsn: str, *, schema: str | None = None,
                 connect_timeout_s: float = 10.0) -> None:
        super().__init__(f"postgresql schema {schema}" if schema else "postgresql")
        try:
            import psycopg
        except ImportError as exc:
            raise ConfigError("PostgresJobStore needs psycopg; install the extra: "
                              "pip install 'buttress[postgres]'", source="jobs") from exc
        if schema is not None and not _IDENT.fullmatch(schema):
            raise ConfigError(f"invalid schema name {schema!r}", source="jobs", key="schema")
        try:
            self._conn = psycopg.connect(dsn, autocommit=True,
                                         connect_timeout=max(1, int(connect_timeout_s)))
            if schema is not None:
                self._conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                self._conn.execute(f'SET search_path TO "{schema}"')
            self._init_schema()
        except psycopg.Error as exc:
            raise ConfigError(f"cannot open the job store: {exc}", source=self._where) from exc

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        cur = self._conn.execute(sql, params)
        return cur.fetchall() if cur.description else []

    def _close(self) -> None:
        self._conn.close()


def _row(job: JobRecord) -> tuple[Any, ...]:
    return (job.job_id, job.status, job.feature, json.dumps(job.params, sort_keys=True),
            job.call_id, job.error, job.owner, job.created_at, job.updated_at)


def _record(row: Any) -> JobRecord:
    fields = dict(zip(_COLUMNS, row, strict=True))
    fields["params"] = json.loads(fields["params"])
    return JobRecord.model_validate(fields)
