"""Opening a store on something that is not a ledger gives a clear, typed error."""

from __future__ import annotations

from pathlib import Path

import pytest

from buttress.errors import ConfigError
from buttress.ledger.postgres import PostgresStore
from buttress.ledger.sqlite import SQLiteStore


def test_a_file_that_is_not_a_database_is_a_config_error_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "notes.db"
    bad.write_bytes(b"this is not sqlite at all, just some text" * 100)
    with pytest.raises(ConfigError, match=r"notes\.db: cannot open ledger database"):
        SQLiteStore(bad)


def test_an_unreachable_postgres_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot connect to the ledger database"):
        PostgresStore("postgresql://postgres@127.0.0.1:1/test", connect_timeout_s=2)


def test_a_bad_schema_name_is_refused_before_connecting() -> None:
    with pytest.raises(ConfigError, match="invalid schema name"):
        PostgresStore("postgresql://postgres@127.0.0.1:1/test", schema='x"; DROP TABLE calls')
