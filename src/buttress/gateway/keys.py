"""Virtual API keys: created, listed and revoked in the ledger database, stored hashed.

A key reads ``sk-bt-<key_id>_<secret>``. The ``key_id`` part is a lookup prefix (it is also the
id the ledger records as ``api_key_id`` and the target of the key's budgets); only the SHA-256 of
the whole key is stored, so the database never holds a usable secret. The secret is shown once,
when the key is created.

``KeyRing`` is the gateway's in-memory view: requests are checked against it without I/O, and it
reloads from the store when the table changes (another process ran ``buttress keys``).
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.costs.budgets import Budget
from buttress.errors import ConfigError, UsageError

PREFIX = "sk-bt-"


@dataclass(frozen=True, slots=True)
class VirtualKey:
    """One key's record. Empty ``models``/``features`` allow every model/feature."""

    key_id: str
    name: str
    secret_hash: str
    models: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    rpm: int | None = None
    tpm: int | None = None
    budget_daily_usd: float | None = None
    budget_monthly_usd: float | None = None
    created_at: float = 0.0
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows_model(self, alias: str) -> bool:
        return not self.models or alias in self.models

    def allows_feature(self, feature: str) -> bool:
        return not self.features or feature in self.features

    def budgets(self) -> list[Budget]:
        out = []
        if self.budget_daily_usd is not None:
            out.append(Budget(scope="key", target=self.key_id, period="daily",
                              limit_usd=self.budget_daily_usd))
        if self.budget_monthly_usd is not None:
            out.append(Budget(scope="key", target=self.key_id, period="monthly",
                              limit_usd=self.budget_monthly_usd))
        return out


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> tuple[str, str]:
    """A fresh ``(key_id, secret)``."""
    key_id = secrets.token_hex(6)
    return key_id, f"{PREFIX}{key_id}_{secrets.token_hex(24)}"


def key_id_of(secret: str) -> str | None:
    """The lookup prefix of a presented key, or None if it is not shaped like one."""
    if not secret.startswith(PREFIX):
        return None
    key_id, sep, _ = secret[len(PREFIX):].partition("_")
    return key_id if sep and key_id else None


_COLUMNS = ("key_id", "name", "secret_hash", "models", "features", "rpm", "tpm",
            "budget_daily_usd", "budget_monthly_usd", "created_at", "revoked_at")


class KeyStore:
    """Keys in the ``virtual_keys`` table (ledger migration 3) over one DB-API connection."""

    def __init__(self, conn: Any, *, mark: str, clock: Clock = SYSTEM_CLOCK) -> None:
        self._conn = conn
        self._mark = mark
        self._clock = clock
        self._lock = threading.Lock()

    def create(self, name: str, *, models: Sequence[str] = (), features: Sequence[str] = (),
               rpm: int | None = None, tpm: int | None = None,
               budget_daily_usd: float | None = None,
               budget_monthly_usd: float | None = None) -> tuple[VirtualKey, str]:
        """Store a new key; returns it with its secret (the only time the secret exists)."""
        if not name.strip():
            raise UsageError("a key needs a non-empty name")
        for label, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and value < 1:
                raise UsageError(f"{label} must be at least 1, got {value}")
        key_id, secret = new_secret()
        key = VirtualKey(key_id=key_id, name=name, secret_hash=hash_secret(secret),
                         models=tuple(models), features=tuple(features), rpm=rpm, tpm=tpm,
                         budget_daily_usd=budget_daily_usd,
                         budget_monthly_usd=budget_monthly_usd, created_at=self._clock.wall())
        key.budgets()  # validates the limits before anything is stored
        marks = ", ".join([self._mark] * len(_COLUMNS))
        row = (key.key_id, key.name, key.secret_hash, json.dumps(list(key.models)),
               json.dumps(list(key.features)), rpm, tpm, budget_daily_usd, budget_monthly_usd,
               key.created_at, None)
        self._execute(f"INSERT INTO virtual_keys ({', '.join(_COLUMNS)}) VALUES ({marks})", row)
        return key, secret

    def list(self, *, include_revoked: bool = True) -> builtins.list[VirtualKey]:
        rows = self._fetch(f"SELECT {', '.join(_COLUMNS)} FROM virtual_keys "
                           "ORDER BY created_at, key_id")
        keys = [_key(r) for r in rows]
        return keys if include_revoked else [k for k in keys if k.active]

    def revoke(self, id_or_name: str) -> VirtualKey:
        """Revoke the key with this id or (unique, active) name."""
        matches = [k for k in self.list() if k.key_id == id_or_name] or \
                  [k for k in self.list() if k.name == id_or_name and k.active]
        if not matches:
            raise UsageError(f"no key with id or active name {id_or_name!r}")
        if len(matches) > 1:
            raise UsageError(f"{len(matches)} active keys are named {id_or_name!r}; "
                             "revoke by id (buttress keys list)")
        key = matches[0]
        if not key.active:
            return key
        m = self._mark
        self._execute(f"UPDATE virtual_keys SET revoked_at = {m} WHERE key_id = {m}",
                      (self._clock.wall(), key.key_id))
        return self.get(key.key_id) or key

    def get(self, key_id: str) -> VirtualKey | None:
        rows = self._fetch(f"SELECT {', '.join(_COLUMNS)} FROM virtual_keys WHERE key_id = "
                           f"{self._mark}", (key_id,))
        return _key(rows[0]) if rows else None

    def fingerprint(self) -> tuple[Any, ...]:
        """Changes whenever a key is created or revoked: a cheap 'reload needed?' check."""
        rows = self._fetch("SELECT COUNT(*), MAX(created_at), MAX(revoked_at), "
                           "COUNT(revoked_at) FROM virtual_keys")
        return tuple(rows[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _execute(self, sql: str, params: Sequence[Any]) -> None:
        with self._lock:
            cur = self._conn.cursor()
            try:
                cur.execute(sql, params)
            finally:
                cur.close()

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> builtins.list[Any]:
        with self._lock:
            cur = self._conn.cursor()
            try:
                cur.execute(sql, params)
                return list(cur.fetchall())
            finally:
                cur.close()


def _key(row: Sequence[Any]) -> VirtualKey:
    (key_id, name, secret_hash, models, features, rpm, tpm, daily, monthly, created,
     revoked) = row
    return VirtualKey(key_id=key_id, name=name, secret_hash=secret_hash,
                      models=tuple(json.loads(models)), features=tuple(json.loads(features)),
                      rpm=rpm, tpm=tpm, budget_daily_usd=daily, budget_monthly_usd=monthly,
                      created_at=created, revoked_at=revoked)


def open_key_store(url: str, *, base_dir: str | Path = ".", schema: str | None = None,
                   clock: Clock = SYSTEM_CLOCK) -> KeyStore:
    """The key store in the ledger database ``url`` names (migrated to the latest schema)."""
    from buttress.ledger.open import open_store

    if url.startswith("sqlite:///"):
        open_store(url, base_dir=base_dir).close()  # applies the migrations
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_absolute():
            path = Path(base_dir) / path
        try:
            conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 5000")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"cannot open the key store: {exc}", source=str(path)) from exc
        return KeyStore(conn, mark="?", clock=clock)
    if url.startswith(("postgresql://", "postgres://")):
        from buttress.ledger.postgres import PostgresStore, _import_psycopg

        PostgresStore(url, schema=schema).close()  # applies the migrations
        psycopg = _import_psycopg()
        try:
            conn = psycopg.connect(url, autocommit=True)
        except psycopg.Error as exc:
            raise ConfigError(f"cannot connect to the key store: {exc}",
                              source="postgresql") from exc
        if schema is not None:  # validated by PostgresStore above
            conn.execute(f'SET search_path TO "{schema}"')
        return KeyStore(conn, mark="%s", clock=clock)
    raise ConfigError("unsupported ledger url; use sqlite:///PATH or postgresql://...",
                      key="ledger.url")


class KeyRing:
    """The keys in memory, checked per request without I/O; only active ones verify."""

    def __init__(self, keys: Iterable[VirtualKey] = ()) -> None:
        self._keys: dict[str, VirtualKey] = {}
        self._any = False
        #: ``Authorization`` headers that verified since the keys last changed, and their
        #: keys: a key's later requests are one lookup, not a hash. Only a key's usual header
        #: (``Bearer <secret>``, exactly) gets in, so it holds one entry a key at most: other
        #: spellings that verify (case, spaces) are verified each time, and cannot grow it.
        self.verified: dict[bytes, VirtualKey] = {}
        self.replace(keys)

    def replace(self, keys: Iterable[VirtualKey]) -> None:
        """Every key record, revoked ones included (they keep the gateway closed)."""
        keys = list(keys)
        self._any = bool(keys)
        self._keys = {k.key_id: k for k in keys if k.active}
        self.verified = {}  # a revoked key's header must verify again, and fail

    @property
    def empty(self) -> bool:
        """No key was ever created: revoking the last key must not open the gateway."""
        return not self._any

    def keys(self) -> list[VirtualKey]:
        return list(self._keys.values())

    def verify(self, secret: str) -> VirtualKey | None:
        """The active key this secret belongs to, or None."""
        key_id = key_id_of(secret)
        key = self._keys.get(key_id) if key_id is not None else None
        if key is None:
            return None
        # constant time: a wrong secret for a known id must not leak how much of it matched
        return key if hmac.compare_digest(hash_secret(secret), key.secret_hash) else None
