"""Forward-only, numbered schema migrations shared by the SQLite and PostgreSQL stores.

The DDL uses only types both databases accept (TEXT, BIGINT, DOUBLE PRECISION, BOOLEAN); JSON is
stored as TEXT so both stores write and read it the same way. A migration, once released, never
changes: a new schema is a new numbered migration. ``schema_version`` records what was applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from buttress.errors import ConfigError


class Cursor(Protocol):
    """The slice of a DB-API cursor migrations need (sqlite3 and psycopg both fit)."""

    def execute(self, sql: Any, params: Any = ..., /) -> Any: ...
    def fetchone(self) -> Any: ...


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


_M1 = Migration(1, "calls, attempts, feedback and tags", (
    """CREATE TABLE calls (
        call_id TEXT PRIMARY KEY,
        schema_version BIGINT NOT NULL,
        trace_id TEXT, parent_id TEXT,
        feature TEXT NOT NULL, prompt_name TEXT, prompt_version TEXT, environment TEXT,
        tags TEXT NOT NULL, user_id TEXT, session_id TEXT, api_key_id TEXT,
        provider TEXT NOT NULL, model_requested TEXT NOT NULL, model_served TEXT,
        system_fingerprint TEXT,
        request TEXT, output_text TEXT, output_value TEXT, finish_reason TEXT,
        validation_outcome TEXT, validation_reasons TEXT,
        status TEXT NOT NULL, error_kind TEXT, error_message TEXT,
        latency_ms DOUBLE PRECISION NOT NULL, ttft_ms DOUBLE PRECISION,
        prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL,
        cached_tokens BIGINT NOT NULL, reasoning_tokens BIGINT NOT NULL,
        cost_usd DOUBLE PRECISION, cost_saved_usd DOUBLE PRECISION NOT NULL,
        cache_hit BOOLEAN NOT NULL, tier BIGINT, confidence DOUBLE PRECISION,
        created_at DOUBLE PRECISION NOT NULL, attempts BIGINT NOT NULL
    )""",
    "CREATE INDEX calls_created ON calls (created_at)",
    "CREATE INDEX calls_feature_created ON calls (feature, created_at)",
    "CREATE INDEX calls_trace ON calls (trace_id)",
    """CREATE TABLE call_tags (
        call_id TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (call_id, tag)
    )""",
    "CREATE INDEX call_tags_tag ON call_tags (tag)",
    """CREATE TABLE attempts (
        attempt_id TEXT PRIMARY KEY,
        call_id TEXT NOT NULL, idx BIGINT NOT NULL, kind TEXT NOT NULL,
        provider TEXT NOT NULL, model_requested TEXT NOT NULL, model_served TEXT,
        status TEXT NOT NULL, error_kind TEXT, error_message TEXT,
        latency_ms DOUBLE PRECISION NOT NULL, ttft_ms DOUBLE PRECISION,
        prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL,
        cached_tokens BIGINT NOT NULL, reasoning_tokens BIGINT NOT NULL,
        cost_usd DOUBLE PRECISION, started_at DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX attempts_call ON attempts (call_id, idx)",
    """CREATE TABLE feedback (
        feedback_id TEXT PRIMARY KEY,
        call_id TEXT NOT NULL, signal TEXT NOT NULL, value DOUBLE PRECISION, comment TEXT,
        created_at DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX feedback_call ON feedback (call_id, created_at)",
))

_M2 = Migration(2, "the git commit of the prompt version on each call", (
    "ALTER TABLE calls ADD COLUMN prompt_commit TEXT",
))

_M3 = Migration(3, "virtual API keys for the gateway, stored hashed", (
    """CREATE TABLE virtual_keys (
        key_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        models TEXT NOT NULL, features TEXT NOT NULL,
        rpm BIGINT, tpm BIGINT,
        budget_daily_usd DOUBLE PRECISION, budget_monthly_usd DOUBLE PRECISION,
        created_at DOUBLE PRECISION NOT NULL, revoked_at DOUBLE PRECISION
    )""",
))

MIGRATIONS: tuple[Migration, ...] = (_M1, _M2, _M3)
LATEST_VERSION = MIGRATIONS[-1].version


def current_version(cur: Cursor) -> int:
    cur.execute("SELECT MAX(version) FROM schema_version")
    row = cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(cur: Cursor, *, where: str, now: float, mark: str = "?",
            migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Apply the migrations the database lacks, inside the caller's transaction.

    ``mark`` is the driver's parameter placeholder (``?`` for sqlite3, ``%s`` for psycopg).
    Returns the versions applied. Raises ``ConfigError`` naming ``where`` when the database was
    written by a newer buttress than this one, since guessing at an unknown schema loses data.
    """
    _check_numbering(migrations)
    cur.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                "version BIGINT PRIMARY KEY, description TEXT NOT NULL, "
                "applied_at DOUBLE PRECISION NOT NULL)")
    have = current_version(cur)
    latest = migrations[-1].version if migrations else 0
    if have > latest:
        raise ConfigError(
            f"ledger schema version {have} is newer than this buttress knows ({latest}); "
            "upgrade buttress to open it", source=where)
    applied = []
    for migration in migrations:
        if migration.version <= have:
            continue
        for statement in migration.statements:
            cur.execute(statement)
        cur.execute("INSERT INTO schema_version (version, description, applied_at) "
                    f"VALUES ({mark}, {mark}, {mark})",
                    (migration.version, migration.description, now))
        applied.append(migration.version)
    return applied


def _check_numbering(migrations: Sequence[Migration]) -> None:
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise ValueError(f"migrations must be numbered 1..n without gaps; "
                             f"got {migration.version} at position {expected}")
