"""Confidence from token logprobs and from self-consistency samples."""

from __future__ import annotations

import math
from typing import Any

import pytest

from buttress.runtime import Call, Policy, Runtime, Target
from buttress.runtime.confidence import (
    ConfidenceSpec,
    agreement,
    classification_field,
    label_span,
    logprob_confidence,
)
from buttress.runtime.structured import OutputContract
from buttress.testing import FakeProvider, ManualClock, Reply
from buttress.types import CallRequest, Message, TokenLogprob, TopLogprob

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"reason": {"type": "string"},
                   "category": {"type": "string", "enum": ["billing", "technical"]}},
    "required": ["reason", "category"],
}
REQUEST = CallRequest(model="", messages=(Message.user("classify"),), temperature=0)


def tokens(*pairs: tuple[str, float]) -> tuple[TokenLogprob, ...]:
    return tuple(TokenLogprob(token=t, logprob=lp,
                              top=(TopLogprob(token=t, logprob=lp),)) for t, lp in pairs)


ANSWER = tokens(('{"', -0.01), ("reason", -0.02), ('":', 0.0), (' "', 0.0), ("money", -0.3),
                ('",', 0.0), (' "', 0.0), ("category", 0.0), ('":', 0.0), (' "', -0.01),
                ("bill", -0.2), ("ing", -0.05), ('"}', -0.01))
TEXT = "".join(t.token for t in ANSWER)


def make_call(spec: ConfidenceSpec, contract: bool = True) -> Call:
    return Call(request=REQUEST, targets=(Target(provider="a", model="m"),),
                policy=Policy(max_retries=0), call_id="c", trace_id="c",
                output=OutputContract.of(SCHEMA) if contract else None, confidence=spec)


def test_the_label_field_defaults_to_the_first_enum_or_boolean() -> None:
    assert classification_field(SCHEMA) == "category"
    assert classification_field({"properties": {"x": {"type": "string"}}}) is None


def test_label_span_finds_string_and_literal_values_and_plain_text() -> None:
    s, e = label_span(TEXT, "category") or (0, 0)
    assert TEXT[s:e] == "billing"
    raw = '{"ok": true, "n": 3}'
    s, e = label_span(raw, "ok") or (0, 0)
    assert raw[s:e] == "true"
    s, e = label_span("  yes \n", None) or (0, 0)
    assert "  yes \n"[s:e] == "yes"
    assert label_span('{"other": 1}', "category") is None


def test_logprob_confidence_is_the_probability_of_the_value_tokens() -> None:
    span = label_span(TEXT, "category")
    assert span is not None
    # "bill" and "ing" spell the value; the quotes around it do not count
    assert logprob_confidence(TEXT, ANSWER, span) == pytest.approx(math.exp(-0.25))
    # tokens that do not spell the text cannot be aligned
    assert logprob_confidence("something else", ANSWER, (0, 4)) is None


async def test_logprobs_confidence_is_requested_and_computed() -> None:
    fake = FakeProvider(name="a", script=[Reply(text=TEXT, logprobs=ANSWER)])
    runtime = Runtime({"a": fake}, clock=ManualClock())

    result = await runtime.complete(make_call(ConfidenceSpec(method="logprobs",
                                                             top_logprobs=3)))

    assert result.confidence == pytest.approx(math.exp(-0.25))
    assert result.value == {"reason": "money", "category": "billing"}
    assert fake.requests[0].logprobs is True
    assert fake.requests[0].top_logprobs == 3


async def test_a_short_text_label_without_a_contract() -> None:
    label = tokens((" Yes", -0.4), ("\n", -0.01))
    fake = FakeProvider(name="a", script=[Reply(text=" Yes\n", logprobs=label)])
    runtime = Runtime({"a": fake}, clock=ManualClock())

    result = await runtime.complete(make_call(ConfidenceSpec(method="logprobs"),
                                              contract=False))

    assert result.value == "Yes"
    assert result.confidence == pytest.approx(math.exp(-0.4))


async def test_no_logprobs_from_the_provider_means_unknown_confidence() -> None:
    fake = FakeProvider(name="a", script=[TEXT])
    runtime = Runtime({"a": fake}, clock=ManualClock())

    result = await runtime.complete(make_call(ConfidenceSpec(method="logprobs")))

    assert result.confidence is None
    assert result.value is not None


def test_agreement_is_the_majority_share() -> None:
    assert agreement(["a", "b", "a", None]) == ("a", 0.5)
    assert agreement([None, None]) == (None, 0.0)


async def test_self_consistency_returns_the_majority_and_its_agreement() -> None:
    def answer(category: str, reason: str = "r") -> str:
        return f'{{"reason": "{reason}", "category": "{category}"}}'

    fake = FakeProvider(name="a", script=[answer("technical", "first"), answer("billing", "b1"),
                                          answer("billing", "b2"), "not json",
                                          answer("billing", "b3")])
    runtime = Runtime({"a": fake}, clock=ManualClock())

    result = await runtime.complete(make_call(ConfidenceSpec(method="self_consistency",
                                                             samples=5, temperature=0.9)))

    assert result.confidence == pytest.approx(3 / 5)  # the unparseable sample agrees with none
    assert result.value == {"reason": "b1", "category": "billing"}
    assert [a.kind for a in result.attempts] == ["primary"] + ["sample"] * 4
    assert [a.status for a in result.attempts].count("error") == 1
    assert result.attempts[-1].kind == "sample"
    assert len({a.index for a in result.attempts}) == 5
    assert fake.requests[0].temperature == 0
    assert {r.temperature for r in fake.requests[1:]} == {0.9}
