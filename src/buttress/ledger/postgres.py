"""The ledger store for scale: PostgreSQL through psycopg 3 (the ``postgres`` extra).

``schema`` puts the ledger's tables in their own PostgreSQL schema (created if missing), so
several ledgers, or test runs, can share one database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError
from buttress.ledger.migrations import MIGRATIONS, Migration, migrate
from buttress.ledger.sql import SqlStore

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# Any constant works; it only has to be the same for every buttress process.
_MIGRATION_LOCK = 0x6275747472657373  # "buttress"


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise ConfigError("PostgresStore needs psycopg; install the extra: "
                          "pip install 'buttress[postgres]'", source="ledger") from exc
    return psycopg


class PostgresStore(SqlStore):
    mark = "%s"

    def __init__(self, dsn: str, *, schema: str | None = None, clock: Clock = SYSTEM_CLOCK,
                 migrations: tuple[Migration, ...] = MIGRATIONS,
                 connect_timeout_s: float = 10.0) -> None:
        where = f"postgresql schema {schema}" if schema else "postgresql"
        super().__init__(where)
        psycopg = _import_psycopg()
        if schema is not None and not _IDENT.fullmatch(schema):
            raise ConfigError(f"invalid schema name {schema!r}", source="ledger", key="schema")
        self.schema = schema
        try:
            self._conn = psycopg.connect(dsn, autocommit=True,
                                         connect_timeout=max(1, int(connect_timeout_s)))
        except psycopg.Error as exc:
            # The message may echo the DSN's host and user but psycopg never echoes a password.
            raise ConfigError(f"cannot connect to the ledger database: {exc}",
                              source=where) from exc
        try:
            with self._conn.cursor() as cur:
                if schema is not None:
                    cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                    cur.execute(f'SET search_path TO "{schema}"')
            with self._transaction() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                migrate(cur, where=where, now=clock.wall(), mark="%s", migrations=migrations)
        except BaseException:
            self._conn.close()
            raise

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._conn.transaction(), self._conn.cursor() as cur:
            yield cur

    def _transaction(self) -> AbstractContextManager[Any]:
        return self._tx()

    def _cursor(self) -> AbstractContextManager[Any]:
        return self._conn.cursor()  # type: ignore[no-any-return]

    def _day_expr(self) -> str:
        return "to_char(to_timestamp(c.created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"

    def _close_connection(self) -> None:
        self._conn.close()

    def drop_schema(self) -> None:
        """Drop this store's schema and everything in it (for tests and teardown)."""
        if self.schema is None:
            raise ConfigError("drop_schema needs a store opened with a schema", source="ledger")
        with self._locked(), self._conn.cursor() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
