"""Open the store a ledger URL names: ``sqlite:///PATH`` or ``postgresql://...``."""

from __future__ import annotations

from pathlib import Path

from buttress.errors import ConfigError
from buttress.ledger.store import LedgerStore


def open_store(url: str, *, base_dir: str | Path = ".") -> LedgerStore:
    """The store for ``url``; a relative SQLite path is relative to ``base_dir``."""
    if url.startswith("sqlite:///"):
        from buttress.ledger.sqlite import SQLiteStore

        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_absolute():
            path = Path(base_dir) / path
        path.parent.mkdir(parents=True, exist_ok=True)
        return SQLiteStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        from buttress.ledger.postgres import PostgresStore

        return PostgresStore(url)
    raise ConfigError("unsupported ledger url; use sqlite:///PATH or postgresql://...",
                      key="ledger.url")
