"""Cascades: escalation on invalid or unsure answers, tiers in the ledger, latency budgets."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from buttress.client import AsyncClient
from buttress.config import parse_config
from buttress.errors import DeadlineExceeded
from buttress.ledger.sqlite import SQLiteStore
from buttress.ledger.writer import LedgerWriter
from buttress.runtime import Call, Policy, Runtime, Target
from buttress.runtime.routing import LatencyBook, Routing
from buttress.runtime.structured import OutputContract
from buttress.testing import FakeProvider, ManualClock, Reply
from buttress.types import CallRequest, Message, TokenLogprob

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["spam", "ham"]}},
    "required": ["label"],
    "additionalProperties": False,
}
CONFIG = """
[providers.cheap]
type = "fake"

[providers.strong]
type = "fake"

[models.small]
provider = "cheap"
model = "small-1"

[models.large]
provider = "strong"
model = "large-1"

[features.spam]
models = ["small", "large"]
output = "schemas/label.json"
max_repairs = 1
escalate = { on_invalid = true, min_confidence = 0.7 }
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "label.json").write_text(json.dumps(SCHEMA))
    return tmp_path


async def test_small_model_fails_validation_the_large_one_answers_and_the_ledger_shows_both(
        project: Path) -> None:
    small = FakeProvider(name="cheap", script=['{"label": "maybe"}', '{"label": "spam?"}'])
    large = FakeProvider(name="strong", script=['{"label": "spam"}'])
    store = SQLiteStore(project / "ledger.db")
    writer = LedgerWriter(store)
    async with AsyncClient(parse_config(CONFIG), project_dir=project, ledger=writer,
                           providers={"cheap": small, "strong": large}) as client:
        result = await client.call("spam", messages=[Message.user("WIN A PRIZE")])
        writer.flush()
        found = store.get_call(result.call_id)

    assert result.value == {"label": "spam"}
    assert result.tier == 1
    assert found is not None
    record, attempts = found
    assert record.status == "ok"
    assert record.tier == 1
    assert record.output_value == {"label": "spam"}
    assert record.validation is not None
    assert record.validation.outcome == "passed"
    assert [(a.kind, a.provider, a.status, a.error_kind) for a in attempts] == [
        ("primary", "cheap", "error", "validation"),
        ("repair", "cheap", "error", "validation"),
        ("fallback", "strong", "ok", None)]
    store.close()


async def test_a_miss_is_recorded_with_its_reasons(project: Path) -> None:
    bad = FakeProvider(name="cheap", script=['{"label": "maybe"}'])
    store = SQLiteStore(project / "ledger.db")
    writer = LedgerWriter(store)
    config = parse_config(CONFIG.replace('["small", "large"]', '["small"]'))
    async with AsyncClient(config, project_dir=project, ledger=writer,
                           providers={"cheap": bad}) as client:
        result = await client.call("spam", messages=[Message.user("hello")])
        writer.flush()
        found = store.get_call(result.call_id)

    assert found is not None
    record, attempts = found
    assert record.status == "miss"
    assert record.validation is not None
    assert record.validation.outcome == "failed"
    assert any("'maybe' is not one of ['spam', 'ham']" in r for r in record.validation.reasons)
    assert record.output_text == '{"label": "maybe"}'
    assert [a.kind for a in attempts] == ["primary", "repair"]
    store.close()


def unsure(label: str, logprob: float) -> Reply:
    parts = ('{"label": "', label, '"}')
    return Reply(text="".join(parts), logprobs=tuple(
        TokenLogprob(token=p, logprob=logprob if p == label else 0.0) for p in parts))


async def test_an_unsure_tier_escalates_and_the_last_tier_is_kept_whatever_its_confidence(
        project: Path) -> None:
    config = parse_config(CONFIG + 'confidence = { method = "logprobs" }\n')
    small = FakeProvider(name="cheap", script=[unsure("ham", math.log(0.4))])
    large = FakeProvider(name="strong", script=[unsure("spam", math.log(0.6))])
    async with AsyncClient(config, project_dir=project,
                           providers={"cheap": small, "strong": large}) as client:
        result = await client.call("spam", messages=[Message.user("hello")])

    assert result.value == {"label": "spam"}
    assert result.confidence == pytest.approx(0.6)  # under 0.7, but nothing is left to ask
    assert result.tier == 1
    assert [(a.provider, a.error_kind) for a in result.attempts] == [
        ("cheap", "low_confidence"), ("strong", None)]


def cascade(clock: ManualClock, *, budget: float | None, small_latency: float | None = None,
            ) -> Call:
    return Call(request=CallRequest(model="", messages=(Message.user("x"),)),
                targets=(Target(provider="cheap", model="small-1",
                                expected_latency_s=small_latency),
                         Target(provider="strong", model="large-1")),
                policy=Policy(max_retries=0), call_id="c", trace_id="c",
                output=OutputContract.of(SCHEMA), routing=Routing(latency_budget_s=budget))


async def test_a_tier_that_cannot_fit_the_latency_budget_is_skipped() -> None:
    clock = ManualClock()
    small = FakeProvider(name="cheap", clock=clock, script=['{"label": "ham"}'])
    large = FakeProvider(name="strong", clock=clock, script=['{"label": "spam"}'])
    runtime = Runtime({"cheap": small, "strong": large}, clock=clock)

    result = await runtime.complete(cascade(clock, budget=2.0, small_latency=5.0))

    assert result.value == {"label": "spam"}
    assert result.tier == 1
    assert small.requests == []
    skipped = result.attempts[0]
    assert (skipped.kind, skipped.status, skipped.provider) == ("primary", "skipped", "cheap")
    assert skipped.error is not None
    assert "expected latency 5.000s does not fit" in skipped.error


async def test_observed_latency_is_the_expectation_when_none_is_configured() -> None:
    clock = ManualClock()
    small = FakeProvider(name="cheap", clock=clock,
                         script=[Reply(text='{"label": "ham"}', delay_s=3.0)])
    large = FakeProvider(name="strong", clock=clock, script=['{"label": "spam"}'])
    runtime = Runtime({"cheap": small, "strong": large}, clock=clock)

    first = await runtime.complete(cascade(clock, budget=10.0))
    second = await runtime.complete(cascade(clock, budget=2.0))

    assert first.tier == 0
    assert runtime.latency.expected("cheap", "small-1") == pytest.approx(3.0)
    assert second.tier == 1
    assert second.attempts[0].status == "skipped"


async def test_when_no_tier_fits_the_call_exceeds_its_deadline() -> None:
    clock = ManualClock()
    runtime = Runtime({"cheap": FakeProvider(name="cheap"), "strong": FakeProvider(
        name="strong")}, clock=clock)
    call = cascade(clock, budget=1.0, small_latency=5.0)
    call = call.model_copy(update={"targets": (call.targets[0], call.targets[0])})

    with pytest.raises(DeadlineExceeded):
        await runtime.complete(call)


def test_latency_book_is_an_exponential_average() -> None:
    book = LatencyBook(alpha=0.5)
    assert book.expected("p", "m") is None
    book.observe("p", "m", 1.0)
    book.observe("p", "m", 3.0)
    assert book.expected("p", "m") == pytest.approx(2.0)


async def test_without_on_invalid_a_tier_does_not_escalate(project: Path) -> None:
    config = parse_config(CONFIG.replace("on_invalid = true", "on_invalid = false"))
    small = FakeProvider(name="cheap", script=['{"label": "maybe"}'])
    large = FakeProvider(name="strong", script=['{"label": "spam"}'])
    async with AsyncClient(config, project_dir=project,
                           providers={"cheap": small, "strong": large}) as client:
        result = await client.call("spam", messages=[Message.user("hello")])

    assert result.miss is not None
    assert large.requests == []
