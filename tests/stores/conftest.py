"""Store fixtures: every contract test runs on SQLite (a temp file) and PostgreSQL (a fresh schema
in db ``test`` on 127.0.0.1:5432, dropped afterwards)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from buttress.ledger.migrations import MIGRATIONS, Migration
from buttress.ledger.postgres import PostgresStore
from buttress.ledger.sql import SqlStore
from buttress.ledger.sqlite import SQLiteStore

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"

Opener = Callable[..., SqlStore]


def _postgres_reachable() -> bool:
    import psycopg

    try:
        psycopg.connect(PG_DSN, connect_timeout=2).close()
    except psycopg.Error:
        return False
    return True


def require_postgres() -> None:
    if _postgres_reachable():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is unreachable at {PG_DSN} and CI=true")
    pytest.skip(f"PostgreSQL is unreachable at {PG_DSN}")


class Backend:
    """Opens stores on one database location, and runs raw SQL against it."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.path = tmp_path / "ledger.db"
        self.schema = f"buttress_test_{uuid.uuid4().hex[:12]}"
        self.opened: list[SqlStore] = []

    def open(self, migrations: tuple[Migration, ...] = MIGRATIONS) -> SqlStore:
        store: SqlStore
        if self.kind == "sqlite":
            store = SQLiteStore(self.path, migrations=migrations)
        else:
            store = PostgresStore(PG_DSN, schema=self.schema, migrations=migrations)
        self.opened.append(store)
        return store

    def execute(self, sql: str) -> list[Any]:
        if self.kind == "sqlite":
            import sqlite3

            conn = sqlite3.connect(self.path)
            try:
                rows = conn.execute(sql).fetchall()
                conn.commit()
            finally:
                conn.close()
            return rows
        import psycopg

        with psycopg.connect(PG_DSN, autocommit=True) as pg:
            pg.execute(f'SET search_path TO "{self.schema}"')
            cur = pg.execute(sql)
            return cur.fetchall() if cur.description else []

    def cleanup(self) -> None:
        for store in self.opened:
            store.close()
        if self.kind == "postgres":
            import psycopg

            with psycopg.connect(PG_DSN, autocommit=True) as pg:
                pg.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "postgres":
        require_postgres()
    b = Backend(request.param, tmp_path)
    yield b
    b.cleanup()


@pytest.fixture
def store(backend: Backend) -> SqlStore:
    return backend.open()
