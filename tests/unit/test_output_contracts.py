"""Output contracts: validation inside the attempt, repairs, fallback, typed misses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, field_validator

from buttress.client import AsyncClient
from buttress.config import parse_config
from buttress.errors import (
    AllAttemptsFailed,
    ConfigError,
    OutputValidationError,
    ProviderUnavailable,
    UsageError,
)
from buttress.runtime import Call, Policy, Runtime, Target
from buttress.runtime.structured import OutputContract
from buttress.testing import FakeProvider, ManualClock, Reply
from buttress.types import CallRequest, Message

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "technical", "other"]},
        "urgency": {"type": "string", "enum": ["low", "high"]},
        "refund_eligible": {"type": "boolean"},
    },
    "required": ["category", "urgency", "refund_eligible"],
    "additionalProperties": False,
}
GOOD = '{"category": "billing", "urgency": "high", "refund_eligible": true}'
BAD_ENUM = '{"category": "money", "urgency": "high", "refund_eligible": true}'
REQUEST = CallRequest(model="", messages=(Message.system("Triage."), Message.user("refund?")))


class Ticket(BaseModel):
    category: str
    urgency: str

    @field_validator("urgency")
    @classmethod
    def _lowercase(cls, v: str) -> str:
        if v != v.lower():
            raise ValueError("urgency must be lowercase")
        return v


def make_call(*providers: str, contract: OutputContract | None = None, **kw: Any) -> Call:
    return Call(request=REQUEST, targets=tuple(Target(provider=p, model=f"{p}-m")
                                               for p in providers),
                policy=Policy(max_retries=0), call_id="c1", trace_id="c1",
                output=contract or OutputContract.of(SCHEMA, name="triage"), **kw)


async def test_every_attempt_is_priced_as_it_ends_and_the_call_costs_their_sum() -> None:
    # The rejected answer used tokens too: it is priced, and counts in the call's cost.
    priced: list[tuple[str, str, int]] = []

    def price(provider: str, model: str, usage: Any) -> float:
        priced.append((provider, model, usage.total_tokens))
        return usage.total_tokens * 0.001

    fake = FakeProvider(name="a", script=[BAD_ENUM, GOOD])
    runtime = Runtime({"a": fake}, clock=ManualClock(), price=price)
    result = await runtime.complete(make_call("a"))

    first, repair = result.attempts
    assert first.usage.total_tokens > 0
    assert first.cost_usd == pytest.approx(first.usage.total_tokens * 0.001)
    assert repair.cost_usd == pytest.approx(repair.usage.total_tokens * 0.001)
    assert result.cost_usd == pytest.approx(first.cost_usd + repair.cost_usd)
    assert len(priced) == 2  # once per attempt, not again for the call's total


async def test_invalid_answer_is_repaired_with_the_errors_fed_back() -> None:
    fake = FakeProvider(name="a", script=[BAD_ENUM, GOOD])
    runtime = Runtime({"a": fake}, clock=ManualClock())

    result = await runtime.complete(make_call("a"))

    assert result.value == json.loads(GOOD)
    assert result.miss is None
    assert result.validation == "repaired"
    assert [(a.kind, a.status, a.error_kind) for a in result.attempts] == [
        ("primary", "error", "validation"), ("repair", "ok", None)]
    first, repair = fake.requests
    assert first.response_format is not None
    assert first.response_format.json_schema == SCHEMA  # native: the adapter gets the schema
    assert first.response_format.name == "triage"
    assert repair.messages[-2] == Message.assistant(BAD_ENUM)
    feedback = repair.messages[-1].content or ""
    assert repair.messages[-1].role == "user"
    assert "category: 'money' is not one of ['billing', 'technical', 'other']" in feedback
    assert result.attempts[0].usage.completion_tokens > 0  # each step keeps its own usage


async def test_never_valid_falls_back_then_ends_in_a_typed_miss() -> None:
    a = FakeProvider(name="a", script=["not json", "still not json"])
    b = FakeProvider(name="b", script=[BAD_ENUM, '{"category": "billing"}'])
    runtime = Runtime({"a": a, "b": b}, clock=ManualClock())

    result = await runtime.complete(make_call("a", "b"))

    assert result.value is None
    assert not result.ok
    assert result.miss is not None
    assert result.miss.raw == '{"category": "billing"}'
    assert result.validation == "failed"
    reasons = result.miss.reasons
    assert any(r.startswith("a/a-m: (root): not valid JSON") for r in reasons)
    assert "b/b-m: (root): 'urgency' is a required property" in reasons
    assert [(a.kind, a.provider) for a in result.attempts] == [
        ("primary", "a"), ("repair", "a"), ("fallback", "b"), ("repair", "b")]
    assert all(a.error_kind == "validation" for a in result.attempts)
    assert result.provider == "b"


async def test_pydantic_validator_errors_are_fed_back_and_the_value_is_the_model() -> None:
    fake = FakeProvider(name="a", script=['{"category": "billing", "urgency": "HIGH"}',
                                          '{"category": "billing", "urgency": "high"}'])
    runtime = Runtime({"a": fake}, clock=ManualClock())

    result = await runtime.complete(make_call("a", contract=OutputContract.of(Ticket)))

    assert result.value == Ticket(category="billing", urgency="high")
    assert "urgency: Value error, urgency must be lowercase" in (
        fake.requests[1].messages[-1].content or "")
    assert fake.requests[0].response_format is not None
    assert fake.requests[0].response_format.name == "Ticket"


async def test_max_repairs_zero_goes_straight_to_the_next_model() -> None:
    a = FakeProvider(name="a", script=[BAD_ENUM])
    b = FakeProvider(name="b", script=[GOOD])
    runtime = Runtime({"a": a, "b": b}, clock=ManualClock())

    result = await runtime.complete(make_call(
        "a", "b", contract=OutputContract.of(SCHEMA, max_repairs=0)))

    assert result.value == json.loads(GOOD)
    assert result.validation == "passed"
    assert [a.kind for a in result.attempts] == ["primary", "fallback"]
    assert len(a.requests) == 1


async def test_provider_errors_still_raise_with_a_contract() -> None:
    fake = FakeProvider(name="a", script=[ProviderUnavailable("down", status=503)])
    runtime = Runtime({"a": fake}, clock=ManualClock())

    with pytest.raises(AllAttemptsFailed):
        await runtime.complete(make_call("a"))


async def test_instruct_mode_puts_the_schema_in_the_system_message() -> None:
    fake = FakeProvider(name="a", script=["```json\n" + GOOD + "\n```"])
    runtime = Runtime({"a": fake}, clock=ManualClock(), contract_support={"a": "instruct"})

    result = await runtime.complete(make_call("a"))

    assert result.value == json.loads(GOOD)
    sent = fake.requests[0]
    assert sent.response_format is None
    assert [m.role for m in sent.messages] == ["system", "user"]  # folded into the one system
    system = sent.messages[0].content or ""
    assert system.startswith("Triage.")
    assert json.dumps(SCHEMA, sort_keys=True) in system


async def test_provider_capability_is_data_on_the_provider() -> None:
    fake = FakeProvider(name="a", script=[GOOD])
    fake.contract_support = "instruct"
    runtime = Runtime({"a": fake}, clock=ManualClock())

    await runtime.complete(make_call("a"))

    assert fake.requests[0].response_format is None


async def test_a_call_without_a_contract_is_untouched() -> None:
    fake = FakeProvider(name="a", script=["hello"])
    runtime = Runtime({"a": fake}, clock=ManualClock())

    result = await runtime.complete(make_call("a").model_copy(update={"output": None}))

    assert result.text == "hello"
    assert result.value is None
    assert result.validation is None
    assert fake.requests[0].response_format is None


def test_an_invalid_schema_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="not a valid JSON schema"):
        OutputContract.of({"type": "nonsense"})
    with pytest.raises(UsageError, match="pydantic model type or a JSON-schema dict"):
        OutputContract.of(42)  # type: ignore[arg-type]


async def test_stream_with_a_contract_ends_with_a_value_or_a_miss() -> None:
    fake = FakeProvider(name="a", script=[GOOD, BAD_ENUM])
    runtime = Runtime({"a": fake}, clock=ManualClock())

    async with runtime.stream(make_call("a")) as stream:
        text = "".join([c.text async for c in stream])
    assert text == GOOD
    assert stream.result is not None
    assert stream.result.value == json.loads(GOOD)
    assert fake.requests[0].response_format is not None

    async with runtime.stream(make_call("a")) as stream:
        _ = [c async for c in stream]
    assert stream.result is not None
    assert stream.result.value is None
    assert stream.result.miss is not None
    assert stream.result.miss.raw == BAD_ENUM


# -- through the client ------------------------------------------------------------------------

CONFIG = """
[providers.a]
type = "fake"

[providers.b]
type = "fake"

[models.small]
provider = "a"
model = "small-1"

[models.big]
provider = "b"
model = "big-1"

[features.triage]
prompt = "triage"
models = ["small", "big"]

[features.free]
models = ["small"]
"""

PROMPT = """---
params: {max_tokens: 40}
output: schemas/triage.json
---
[system]
Triage the ticket.
[user]
{{ ticket }}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "triage.md").write_text(PROMPT)
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "triage.json").write_text(json.dumps(SCHEMA))
    return tmp_path


async def test_the_client_takes_the_contract_from_the_prompt(project: Path) -> None:
    a = FakeProvider(name="a", script=[GOOD])
    async with AsyncClient(parse_config(CONFIG), project_dir=project,
                           providers={"a": a}) as client:
        result = await client.call("triage", {"ticket": "refund please"})
        call = client.prepare("triage", {"ticket": "x"})
        again = client.prepare("triage", {"ticket": "y"})

    assert result.value == json.loads(GOOD)
    assert a.requests[0].response_format is not None
    assert a.requests[0].response_format.json_schema == SCHEMA
    assert call.output is again.output  # resolved once per prompt version


async def test_per_call_output_and_raise_on_miss(project: Path) -> None:
    a = FakeProvider(name="a", script=['{"category": "billing", "urgency": "HIGH"}'])
    async with AsyncClient(parse_config(CONFIG), project_dir=project,
                           providers={"a": a}) as client:
        result = await client.call("free", messages=[Message.user("hi")], output=Ticket)
        assert result.miss is not None
        with pytest.raises(OutputValidationError, match="urgency must be lowercase") as info:
            await client.call("free", messages=[Message.user("hi")], output=Ticket,
                              raise_on_miss=True)
        assert info.value.raw == '{"category": "billing", "urgency": "HIGH"}'
        direct = await client.complete("small", [Message.user("hi")], output=SCHEMA)
        assert direct.miss is not None  # the same answer fails the schema: no refund_eligible


async def test_a_dangling_feature_output_is_a_config_error(project: Path) -> None:
    config = parse_config(CONFIG.replace('models = ["small"]\n',
                                         'models = ["small"]\noutput = "schemas/none.json"\n'))
    async with AsyncClient(config, project_dir=project) as client:
        with pytest.raises(ConfigError, match=r"none\.json"):
            client.prepare("free", messages=[Message.user("hi")])


async def test_a_cache_hit_carries_the_value_and_a_miss_is_never_cached(project: Path) -> None:
    config = parse_config(CONFIG.replace('[features.free]\nmodels = ["small"]',
                                         '[features.free]\nmodels = ["small"]\n'
                                         'cache = { ttl_s = 60 }'))
    a = FakeProvider(name="a", script=[BAD_ENUM, BAD_ENUM, GOOD, BAD_ENUM])
    async with AsyncClient(config, project_dir=project, providers={"a": a}) as client:
        ask = [Message.user("same question")]
        missed = await client.call("free", messages=ask, output=SCHEMA)
        fresh = await client.call("free", messages=ask, output=SCHEMA)
        hit = await client.call("free", messages=ask, output=SCHEMA)

    assert missed.miss is not None
    assert not fresh.cache_hit  # the miss was not stored
    assert fresh.value == json.loads(GOOD)
    assert hit.cache_hit
    assert hit.value == json.loads(GOOD)
    assert len(a.requests) == 3


async def test_stream_partials_default_to_the_call_contract() -> None:
    fake = FakeProvider(name="a", script=[Reply(text=BAD_ENUM, chunk_size=5)])
    runtime = Runtime({"a": fake}, clock=ManualClock())

    async with runtime.stream(make_call("a")) as stream:
        partials = [p async for p in stream.partials()]

    final = partials[-1]
    assert final.final
    assert "'money' is not one of" in final.errors["$"]
    # the field was checked against the contract's schema as soon as it closed
    assert any("category" in p.errors for p in partials if not p.final)
    assert stream.result is not None
    assert stream.result.miss is not None
