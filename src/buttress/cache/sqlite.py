"""A file-backed backend: one SQLite table, shared by processes on one machine.

SQLite calls run in a worker thread (``asyncio.to_thread``) so a busy database never stalls the
event loop; one connection, serialised by a lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from buttress.cache.backend import CacheBackendError
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError, UsageError

T = TypeVar("T")

_SCHEMA = ("CREATE TABLE IF NOT EXISTS cache_entries ("
           "key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL NOT NULL)")


class SQLiteBackend:
    def __init__(self, path: str | Path, *, namespace: str = "", clock: Clock = SYSTEM_CLOCK,
                 busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path)
        self.namespace = namespace
        self.clock = clock  # wall time: expiry must survive a restart
        self._lock = threading.Lock()
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            conn = getattr(self, "_conn", None)
            if conn is not None:
                conn.close()
            raise ConfigError(f"cannot open cache database: {exc}", source=str(path)) from exc

    async def get(self, key: str) -> bytes | None:
        return await _off_loop(self._get, self.namespace + key)

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        await _off_loop(self._run, "INSERT OR REPLACE INTO cache_entries "
                                "(key, value, expires_at) VALUES (?, ?, ?)",
                                (self.namespace + key, value, self.clock.wall() + ttl_s))

    async def delete(self, key: str) -> None:
        await _off_loop(self._run, "DELETE FROM cache_entries WHERE key = ?",
                                (self.namespace + key,))

    async def scan(self, prefix: str) -> list[tuple[str, bytes]]:
        return await _off_loop(self._scan, self.namespace + prefix)

    async def clear(self) -> None:
        await _off_loop(self._run, "DELETE FROM cache_entries WHERE "
                                "substr(key, 1, ?) = ?", (len(self.namespace), self.namespace))

    async def aclose(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def _get(self, key: str) -> bytes | None:
        with self._locked():
            row = self._conn.execute("SELECT value, expires_at FROM cache_entries WHERE key = ?",
                                     (key,)).fetchone()
        if row is None or row[1] <= self.clock.wall():
            return None
        return bytes(row[0])

    def _scan(self, prefix: str) -> list[tuple[str, bytes]]:
        cut = len(self.namespace)
        with self._locked():
            rows = self._conn.execute(
                "SELECT key, value FROM cache_entries WHERE substr(key, 1, ?) = ? "
                "AND expires_at > ?", (len(prefix), prefix, self.clock.wall())).fetchall()
        return [(k[cut:], bytes(v)) for k, v in rows]

    def _run(self, sql: str, params: tuple[object, ...]) -> None:
        with self._locked():
            self._conn.execute(sql, params)

    def _locked(self) -> _Locked:
        return _Locked(self)


async def _off_loop(fn: Callable[..., T], *args: Any) -> T:
    try:
        return await asyncio.to_thread(fn, *args)
    except sqlite3.Error as exc:
        raise CacheBackendError(f"sqlite cache: {exc}") from exc


class _Locked:
    def __init__(self, backend: SQLiteBackend) -> None:
        self._backend = backend

    def __enter__(self) -> None:
        self._backend._lock.acquire()
        if self._backend._closed:
            self._backend._lock.release()
            raise UsageError(f"cache database {self._backend.path} is closed")

    def __exit__(self, *exc: object) -> None:
        self._backend._lock.release()
