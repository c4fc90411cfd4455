"""The runtime writes the ledger: one call record per call, one attempt record per attempt."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from buttress.client import AsyncClient
from buttress.config import parse_config
from buttress.errors import ButtressError
from buttress.ledger.sqlite import SQLiteStore
from buttress.ledger.store import CallFilter
from buttress.ledger.writer import LedgerWriter
from buttress.types import Message

CONFIG = """
[providers.primary]
type = "fake"

[providers.primary.chaos]
seed = 11
error_rate = 0.3
retry_after_s = 0.002
timeout_hang_s = 5
kinds = { rate_limit = 1, server_error = 1, timeout = 1, reset = 1 }

[providers.fallback]
type = "fake"

[models.p]
provider = "primary"
model = "fake-p"

[models.f]
provider = "fallback"
model = "fake-f"

[features.triage]
models = ["p", "f"]

[features.triage.policy]
deadline_s = 1
attempt_timeout_s = 0.03
max_retries = 2
backoff_base_s = 0.002
backoff_max_s = 0.01
breaker_failures = 1000
"""


async def test_thousand_chaos_calls_leave_exactly_one_record_per_call_and_attempt(
        tmp_path: Path) -> None:
    writer = LedgerWriter(SQLiteStore(tmp_path / "ledger.db"))
    client = AsyncClient(parse_config(CONFIG), ledger=writer, rng=random.Random(5))
    sem = asyncio.Semaphore(100)
    attempts_seen: dict[str, int] = {}

    async def one(i: int) -> None:
        async with sem:
            result = await client.call("triage", messages=[Message.user(f"ticket {i}")],
                                       tags=["chaos"])
            attempts_seen[result.call_id] = len(result.attempts)

    await asyncio.gather(*(one(i) for i in range(1000)))
    await client.aclose()  # flushes the writer

    store = SQLiteStore(tmp_path / "ledger.db")
    calls = store.query_calls(CallFilter(limit=5000))
    assert len(calls) == 1000
    assert {c.call_id for c in calls} == set(attempts_seen)
    assert sum(attempts_seen.values()) > 1000  # chaos forced retries and fallbacks
    kinds = set()
    for call in calls:
        got = store.get_call(call.call_id)
        assert got is not None
        record, attempts = got
        kinds.update(a.kind for a in attempts)
        assert len(attempts) == attempts_seen[call.call_id] == record.attempts
        assert [a.index for a in attempts] == list(range(len(attempts)))
        assert record.status == "ok"
        assert record.feature == "triage"
        assert record.tags == ("chaos",)
        assert record.cost_usd == 0.0  # fake models are priced as local: free, tokens kept
        assert record.prompt_tokens > 0
    # over all 1,000 calls: 0.3^3 = 2.7% exhaust the primary's retries, about 27 (among any
    # 200, none do about once in 240 runs: the chaos draws fall in scheduling order)
    assert {"primary", "retry", "fallback"} <= kinds
    store.close()


async def test_failed_calls_are_recorded_with_their_error(tmp_path: Path) -> None:
    config = parse_config(CONFIG.replace("error_rate = 0.3", "error_rate = 1.0")
                          .replace('models = ["p", "f"]', 'models = ["p"]'))
    writer = LedgerWriter(SQLiteStore(tmp_path / "ledger.db"))
    client = AsyncClient(config, ledger=writer)
    try:
        await client.call("triage", messages=[Message.user("x")])
    except ButtressError as exc:
        error = exc
    await client.aclose()
    store = SQLiteStore(tmp_path / "ledger.db")
    [record] = store.query_calls(CallFilter(status="error"))
    assert record.error_kind == getattr(error, "kind", None)
    assert record.error_message
    _, attempts = store.get_call(record.call_id)  # type: ignore[misc]
    assert len(attempts) == 3
    assert all(a.status == "error" for a in attempts)
    store.close()


async def test_metrics_count_calls_attempts_and_queue(tmp_path: Path) -> None:
    writer = LedgerWriter(SQLiteStore(tmp_path / "ledger.db"))
    client = AsyncClient(parse_config(CONFIG), ledger=writer, rng=random.Random(1))
    for i in range(20):
        await client.call("triage", messages=[Message.user(f"t{i}")])
    text = client.metrics.render().decode()
    await client.aclose()
    assert 'buttress_calls_total{feature="triage",model="fake-' in text
    assert "buttress_attempts_total" in text
    assert "buttress_call_latency_seconds_bucket" in text
    assert "buttress_ledger_queue_depth" in text
    total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith("buttress_calls_total{"))
    assert total == 20
    # the histogram is cumulative, ends at +Inf with every call, and its count matches
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(text)}
    buckets = [s for s in families["buttress_call_latency_seconds"].samples
               if s.name.endswith("_bucket")]
    counts = [s.value for s in buckets]
    assert counts == sorted(counts)
    assert buckets[-1].labels["le"] == "+Inf"
    assert counts[-1] == 20
    tokens = {s.labels["type"]: s.value for s in families["buttress_tokens"].samples
              if s.name == "buttress_tokens_total"}
    assert tokens["prompt"] > 0
    assert tokens["completion"] > 0


def committed_prompt_project(root: Path) -> str:
    """A project whose prompt is committed in git; returns the commit's short hash."""
    import subprocess

    (root / "prompts").mkdir()
    (root / "prompts" / "greet.md").write_text("[user]\nHello {{ name }}\n")
    (root / "buttress.toml").write_text(
        '[providers.f]\ntype = "fake"\n[models.m]\nprovider = "f"\nmodel = "x"\n'
        '[features.greet]\nprompt = "greet"\nmodels = ["m"]\n')
    git = ["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "prompt"], check=True)
    return subprocess.run([*git, "rev-parse", "--short", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


async def test_calls_carry_the_prompt_version_and_its_git_commit(tmp_path: Path) -> None:
    commit = committed_prompt_project(tmp_path)
    async with AsyncClient.from_config(tmp_path / "buttress.toml", env={}) as client:
        result = await client.call("greet", {"name": "Ada"})
    store = SQLiteStore(tmp_path / ".buttress" / "ledger.db")
    got = store.get_call(result.call_id)
    assert got is not None
    assert got[0].prompt_version == result.prompt_version
    assert got[0].prompt_commit is not None
    assert commit.startswith(got[0].prompt_commit) or got[0].prompt_commit.startswith(commit)
    store.close()
