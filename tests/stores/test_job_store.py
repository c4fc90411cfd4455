"""The job store contract, on SQLite and PostgreSQL (a fresh schema, dropped afterwards)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from buttress.errors import UsageError
from buttress.jobs.store import JobRecord, PostgresJobStore, SQLiteJobStore, SqlJobStore
from stores.conftest import PG_DSN, require_postgres


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    schema = f"buttress_jobs_{uuid.uuid4().hex[:12]}"
    opened: list[SqlJobStore] = []

    def open_store() -> SqlJobStore:
        store: SqlJobStore = (SQLiteJobStore(tmp_path / "ledger.db")
                              if request.param == "sqlite"
                              else PostgresJobStore(PG_DSN, schema=schema))
        opened.append(store)
        return store

    if request.param == "postgres":
        require_postgres()
    yield open_store
    for store in opened:
        store.close()
    if request.param == "postgres":
        import psycopg

        with psycopg.connect(PG_DSN, autocommit=True) as pg:
            pg.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def job(job_id: str, owner: str = "q1", at: float = 1.0) -> JobRecord:
    return JobRecord(job_id=job_id, status="pending", feature="f",
                     params={"vars": {"x": [1, "é"]}, "tags": ["t"]}, owner=owner,
                     created_at=at, updated_at=at)


def test_jobs_round_trip_and_move_through_their_states(opener) -> None:  # type: ignore[no-untyped-def]
    store = opener()
    store.add(job("j1"))
    assert store.get("j1") == job("j1")
    assert store.get("nope") is None
    store.update("j1", "running", 2.0, call_id="c1")
    store.update("j1", "done", 3.0)
    got = store.get("j1")
    assert got is not None
    assert (got.status, got.call_id, got.updated_at) == ("done", "c1", 3.0)
    store.update("j1", "failed", 4.0, error="boom")
    assert store.get("j1").error == "boom"  # type: ignore[union-attr]


def test_a_new_queue_adopts_what_another_left_unfinished(opener) -> None:  # type: ignore[no-untyped-def]
    store = opener()
    store.add(job("a", at=2.0))
    store.add(job("b", at=1.0))
    store.add(job("c", at=3.0))
    store.update("b", "running", 5.0)
    store.update("c", "done", 5.0)
    reopened = opener()  # survives reopening
    adopted = reopened.adopt("q2", 6.0)
    assert [j.job_id for j in adopted] == ["b", "a"]
    assert {j.status for j in adopted} == {"pending"}
    assert {j.owner for j in adopted} == {"q2"}
    assert reopened.adopt("q2", 7.0) == []  # its own jobs are already queued


def test_a_closed_store_refuses_use(opener) -> None:  # type: ignore[no-untyped-def]
    store = opener()
    store.close()
    store.close()
    with pytest.raises(UsageError, match="closed"):
        store.get("x")
