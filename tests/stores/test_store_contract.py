"""The one contract every ledger store passes; parametrised over SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from buttress.errors import ConfigError, UsageError
from buttress.ledger import AttemptRecord, CallFilter, CallRecord, FeedbackRecord, Validation
from buttress.ledger.migrations import LATEST_VERSION, MIGRATIONS, Migration
from buttress.ledger.store import LedgerStore

from .conftest import Backend

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
DAY = 86_400.0


def call(call_id: str, **kw: Any) -> CallRecord:
    base: dict[str, Any] = {"call_id": call_id, "feature": "triage", "provider": "openai",
                            "model_requested": "gpt-4o-mini", "created_at": T0}
    return CallRecord(**{**base, **kw})


def full_call() -> CallRecord:
    return CallRecord(
        call_id="c-full", trace_id="t-1", parent_id="p-0", feature="summarise",
        prompt_name="summary", prompt_version="abc123@deadbeef", environment="production",
        tags=("team:notes", "beta"), user_id="u-1", session_id="s-1", api_key_id="vk-1",
        provider="anthropic", model_requested="claude-x", model_served="claude-x-2024",
        system_fingerprint="fp_1",
        request={"model": "claude-x", "messages": [{"role": "user", "content": "héllo ✓"}],
                 "temperature": 0.2},
        output_text='{"a": [1, 2]}', output_value={"a": [1, 2], "b": None, "c": "ü"},
        finish_reason="stop", validation=Validation(outcome="repaired", reasons=("x", "y")),
        status="miss", error_kind="validation", error_message="bad shape",
        latency_ms=123.5, ttft_ms=45.25, prompt_tokens=100, completion_tokens=20,
        cached_tokens=50, reasoning_tokens=7, cost_usd=0.00123, cost_saved_usd=0.5,
        cache_hit=True, tier=2, confidence=0.875, created_at=T0 + 0.123456, attempts=2,
    )


def attempt(call_id: str, index: int, **kw: Any) -> AttemptRecord:
    return AttemptRecord(call_id=call_id, index=index, started_at=T0 + index, **kw)


def test_stores_satisfy_the_protocol(store: LedgerStore) -> None:
    assert isinstance(store, LedgerStore)


def test_round_trip_keeps_every_field(store: LedgerStore) -> None:
    c = full_call()
    attempts = [
        attempt("c-full", 1, kind="fallback", provider="anthropic", model_requested="claude-x",
                model_served="claude-x-2024", status="ok", latency_ms=80.0, ttft_ms=30.0,
                prompt_tokens=100, completion_tokens=20, cached_tokens=50, reasoning_tokens=7,
                cost_usd=0.001),
        attempt("c-full", 0, kind="primary", provider="openai", model_requested="gpt",
                status="error", error_kind="timeout", error_message="took too long"),
    ]
    store.write([c], attempts)
    assert store.query_calls() == [c]
    got = store.get_call("c-full")
    assert got is not None
    assert got[0] == c
    assert [a.index for a in got[1]] == [0, 1]
    assert got[1] == sorted(attempts, key=lambda a: a.index)


def test_output_values_of_every_json_type_round_trip(store: LedgerStore) -> None:
    values: list[Any] = [None, 0, 1.5, "text", [1, "two"], {"k": {"n": [True, False]}}, True]
    store.write([call(f"v{i}", output_value=v, created_at=T0 + i)
                 for i, v in enumerate(values)])
    got = {c.call_id: c.output_value for c in store.query_calls()}
    assert got == {f"v{i}": v for i, v in enumerate(values)}


def test_unknown_call_is_none(store: LedgerStore) -> None:
    assert store.get_call("nope") is None
    assert store.feedback_for("nope") == []


def test_writes_are_idempotent_on_ids(store: LedgerStore) -> None:
    batch = ([call("c1", tags=("a",), cost_usd=1.0)], [attempt("c1", 0), attempt("c1", 1)],
             [FeedbackRecord(feedback_id="f1", call_id="c1", signal="accepted",
                             created_at=T0)])
    store.write(*batch)
    store.write(*batch)
    assert len(store.query_calls()) == 1
    got = store.get_call("c1")
    assert got is not None
    assert len(got[1]) == 2
    assert len(store.feedback_for("c1")) == 1
    assert store.spend() == pytest.approx(1.0)
    assert [r.calls for r in store.aggregate("tag")] == [1]


def test_query_filters(store: LedgerStore) -> None:
    store.write([
        call("a", created_at=T0, feature="triage", status="ok", tags=("x",)),
        call("b", created_at=T0 + 1, feature="triage", status="error", model_served="gpt-4o"),
        call("c", created_at=T0 + 2, feature="refund", provider="anthropic",
             model_requested="claude", prompt_version="v2", tags=("x", "y")),
        call("d", created_at=T0 + 3, feature="refund", status="miss", trace_id="tr",
             api_key_id="k1", prompt_name="refund"),
    ])

    def ids(**kw: Any) -> list[str]:
        return [c.call_id for c in store.query_calls(CallFilter(**kw))]

    assert ids() == ["d", "c", "b", "a"]  # newest first
    assert ids(feature="triage") == ["b", "a"]
    assert ids(status="error") == ["b"]
    assert ids(model="gpt-4o") == ["b"]  # matches the served model
    assert ids(model="claude") == ["c"]  # and the requested one
    assert ids(provider="anthropic") == ["c"]
    assert ids(prompt_version="v2") == ["c"]
    assert ids(prompt_name="refund") == ["d"]
    assert ids(tag="x") == ["c", "a"]
    assert ids(tag="y", feature="refund") == ["c"]
    assert ids(trace_id="tr") == ["d"]
    assert ids(api_key_id="k1") == ["d"]
    assert ids(since=T0 + 1, until=T0 + 3) == ["c", "b"]  # since inclusive, until exclusive
    assert ids(limit=2) == ["d", "c"]
    assert ids(limit=2, offset=2) == ["b", "a"]
    assert ids(feature="nothing") == []


def test_feedback_is_stored_after_the_fact_oldest_first(store: LedgerStore) -> None:
    store.write([call("c1")])
    store.write([], [], [FeedbackRecord(feedback_id="f2", call_id="c1", signal="score",
                                        value=0.5, comment="ok-ish", created_at=T0 + 20)])
    store.write([], [], [FeedbackRecord(feedback_id="f1", call_id="c1", signal="edited",
                                        comment="fixed a typo", created_at=T0 + 10)])
    got = store.feedback_for("c1")
    assert [(f.feedback_id, f.signal, f.value, f.comment) for f in got] == [
        ("f1", "edited", None, "fixed a typo"), ("f2", "score", 0.5, "ok-ish")]


def _agg(store: LedgerStore, by: Any, **kw: Any) -> dict[str | None, tuple[Any, ...]]:
    return {r.key: (r.calls, r.errors, r.misses, r.cache_hits, r.prompt_tokens,
                    r.completion_tokens, round(r.cost_usd, 9))
            for r in store.aggregate(by, **kw)}


def _aggregate_fixture(store: LedgerStore) -> None:
    store.write([
        call("a", feature="triage", provider="openai", model_requested="m1", api_key_id="k1",
             tags=("t1",), prompt_tokens=10, completion_tokens=1, cost_usd=0.25,
             created_at=T0),
        call("b", feature="triage", provider="openai", model_requested="m1",
             model_served="m1-served", status="error", tags=("t1", "t2"), prompt_tokens=5,
             cost_usd=None, created_at=T0 + DAY),
        call("c", feature="refund", provider="local", model_requested="m2", api_key_id="k1",
             status="miss", cache_hit=True, completion_tokens=3, cost_usd=1.0,
             created_at=T0 + DAY + 5),
    ])


def test_aggregates_by_every_dimension(store: LedgerStore) -> None:
    _aggregate_fixture(store)
    assert _agg(store, "feature") == {"triage": (2, 1, 0, 0, 15, 1, 0.25),
                                      "refund": (1, 0, 1, 1, 0, 3, 1.0)}
    assert _agg(store, "model") == {"m1": (1, 0, 0, 0, 10, 1, 0.25),
                                    "m1-served": (1, 1, 0, 0, 5, 0, 0.0),
                                    "m2": (1, 0, 1, 1, 0, 3, 1.0)}
    assert _agg(store, "provider") == {"openai": (2, 1, 0, 0, 15, 1, 0.25),
                                       "local": (1, 0, 1, 1, 0, 3, 1.0)}
    assert _agg(store, "key") == {"k1": (2, 0, 1, 1, 10, 4, 1.25),
                                  None: (1, 1, 0, 0, 5, 0, 0.0)}
    assert _agg(store, "tag") == {"t1": (2, 1, 0, 0, 15, 1, 0.25),
                                  "t2": (1, 1, 0, 0, 5, 0, 0.0)}
    assert _agg(store, "day") == {"2023-11-14": (1, 0, 0, 0, 10, 1, 0.25),
                                  "2023-11-15": (2, 1, 1, 1, 5, 3, 1.0)}
    assert _agg(store, "feature", since=T0 + DAY) == {"triage": (1, 1, 0, 0, 5, 0, 0.0),
                                                      "refund": (1, 0, 1, 1, 0, 3, 1.0)}
    assert _agg(store, "feature", until=T0 + 1) == {"triage": (1, 0, 0, 0, 10, 1, 0.25)}
    assert [r.key for r in store.aggregate("feature")] == ["refund", "triage"]  # cost first


def test_aggregate_rejects_unknown_dimension(store: LedgerStore) -> None:
    with pytest.raises(UsageError, match="cannot aggregate by 'colour'"):
        store.aggregate("colour")  # type: ignore[arg-type]


def test_spend_by_scope_and_window(store: LedgerStore) -> None:
    assert store.spend() == 0.0
    _aggregate_fixture(store)
    assert store.spend() == pytest.approx(1.25)
    assert store.spend(feature="triage") == pytest.approx(0.25)
    assert store.spend(key="k1") == pytest.approx(1.25)
    assert store.spend(tag="t2") == 0.0
    assert store.spend(tag="t1") == pytest.approx(0.25)
    assert store.spend(T0 + 1, T0 + 2 * DAY) == pytest.approx(1.0)
    assert store.spend(feature="refund", key="k1", since=T0 + DAY) == pytest.approx(1.0)


def test_concurrent_writers_lose_nothing(store: LedgerStore) -> None:
    def work(t: int) -> None:
        for i in range(20):
            store.write([call(f"{t}-{i}", created_at=T0 + i)], [attempt(f"{t}-{i}", 0)])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(store.query_calls(CallFilter(limit=1000))) == 80


def test_close_is_idempotent_and_use_after_close_is_a_usage_error(store: LedgerStore) -> None:
    store.close()
    store.close()
    with pytest.raises(UsageError, match="closed"):
        store.query_calls()


def test_reopening_keeps_data_and_applies_no_migration_twice(backend: Backend) -> None:
    backend.open().write([call("c1")])
    again = backend.open()
    assert [c.call_id for c in again.query_calls()] == ["c1"]
    assert sorted(backend.execute("SELECT version FROM schema_version")) == \
        [(m.version,) for m in MIGRATIONS]


def test_opening_an_older_database_applies_the_missing_migrations(backend: Backend) -> None:
    backend.open().write([call("c1")])
    n = LATEST_VERSION + 1
    later = Migration(n, "add a note column", ("ALTER TABLE calls ADD COLUMN note TEXT",))
    newer = backend.open(migrations=(*MIGRATIONS, later))
    assert [c.call_id for c in newer.query_calls()] == ["c1"]
    assert sorted(backend.execute("SELECT version FROM schema_version")) == \
        [(m.version,) for m in MIGRATIONS] + [(n,)]
    assert backend.execute("SELECT note FROM calls") == [(None,)]


def test_a_version_1_ledger_moves_forward_to_the_latest_schema(backend: Backend) -> None:
    backend.open(migrations=MIGRATIONS[:1]).close()
    store = backend.open()
    store.write([call("c1", prompt_commit="abc1234")])
    assert sorted(backend.execute("SELECT version FROM schema_version")) == \
        [(m.version,) for m in MIGRATIONS]
    assert backend.execute("SELECT prompt_commit FROM calls") == [("abc1234",)]


def test_opening_a_newer_database_is_a_clear_error(backend: Backend) -> None:
    backend.open().close()
    backend.execute("INSERT INTO schema_version (version, description, applied_at) "
                    "VALUES (99, 'from the future', 0)")
    with pytest.raises(ConfigError,
                       match=rf"schema version 99 is newer than .* knows \({LATEST_VERSION}\)"):
        backend.open()
