"""The built-in scorers, each on outputs whose verdict is known, and the registry."""

from __future__ import annotations

from typing import Any

import pytest

from buttress.errors import ConfigError
from buttress.evals.dataset import Case, ScorerSpec
from buttress.evals.scorers import Score, default_registry
from buttress.evals.stats import mcnemar, wilson


async def score(name: str, output: str, expected: Any = None, **params: Any) -> Score:
    scorer = default_registry().build(ScorerSpec(name=name, params=params))
    return await scorer.score(output, Case(id="c", expected=expected))


async def test_exact_and_normalized() -> None:
    assert (await score("exact", " Paris\n", "Paris")).passed
    assert not (await score("exact", "paris", "Paris")).passed
    assert (await score("exact", '{"a": 1}', {"a": 1})).passed
    assert (await score("exact", '{"city": "Paris", "n": 2}', {"city": "Paris"},
                        field="city")).passed
    assert (await score("normalized", "  the  Eiffel tower!", "The Eiffel Tower")).passed
    assert not (await score("normalized", "Eiffel", "The Eiffel Tower")).passed


async def test_json_schema_and_required_fields() -> None:
    schema = {"type": "object", "required": ["category"],
              "properties": {"category": {"enum": ["bug", "refund"]},
                             "urgency": {"type": "integer", "minimum": 1}}}
    assert (await score("json_schema", '{"category": "bug", "urgency": 2}', schema=schema)).passed
    bad = await score("json_schema", '{"category": "spam", "urgency": 0}', schema=schema)
    assert not bad.passed
    assert "spam" in bad.detail
    assert not (await score("json_schema", "not json", schema=schema)).passed
    fenced = '```json\n{"category": "refund"}\n```'
    assert (await score("json_schema", fenced, schema=schema)).passed
    partial = await score("required_fields", '{"a": 1, "b": null}', fields=["a", "b", "c"])
    assert partial.value == pytest.approx(1 / 3)
    assert not partial.passed


async def test_fields_with_tolerances() -> None:
    expected = {"amount": 10.0, "currency": "EUR", "late": True}
    s = await score("fields", '{"amount": 10.4, "currency": "eur", "late": false}', expected,
                    tolerances={"amount": 0.5}, case_sensitive=False)
    assert s.value == pytest.approx(2 / 3)  # amount within 0.5, currency case-folded, late wrong
    assert "late" in s.detail
    exact = await score("fields", '{"amount": 10.4, "currency": "EUR", "late": true}', expected)
    assert exact.value == pytest.approx(2 / 3)


async def test_regex_contains_length_numeric() -> None:
    assert (await score("regex", "Order #A-123 shipped", pattern=r"#A-\d+")).passed
    assert not (await score("regex", "Order A-123", pattern=r"^A", full=True)).passed
    assert (await score("contains", "Refund issued to card", ["refund", "card"])).passed
    assert not (await score("contains", "Refund issued", ["refund", "card"])).passed
    assert (await score("contains", "Refund issued", texts=["card", "refund"], mode="any")).passed
    assert not (await score("not_contains", "as an AI model", texts=["as an ai"])).passed
    assert (await score("not_contains", "fine", texts=["as an ai"])).passed
    assert (await score("length", "one two three", min=2, max=3, unit="words")).passed
    assert not (await score("length", "x" * 11, max=10)).passed
    assert (await score("numeric", "about 41.5 dollars", 42, tolerance=0.5)).passed
    assert not (await score("numeric", "about 40 dollars", 42, tolerance=0.01,
                            relative=True)).passed
    assert (await score("numeric", '{"total": 99}', {"total": 100}, field="total",
                        tolerance=0.01, relative=True)).passed


async def test_label_records_predicted_and_expected() -> None:
    s = await score("label", '{"category": "Bug"}', {"category": "bug"}, field="category")
    assert s.passed
    assert (s.label, s.expected_label) == ("bug", "bug")
    s = await score("label", "{}", {"category": "bug"}, field="category")
    assert s.label == "<missing>"
    s = await score("label", "spam", "bug", labels=["bug", "refund"])
    assert s.label == "<invalid>"


def test_registry_errors_name_the_scorer_and_parameter() -> None:
    registry = default_registry()
    with pytest.raises(ConfigError, match="unknown scorer 'nope'"):
        registry.build(ScorerSpec(name="nope"))
    with pytest.raises(ConfigError, match="scorer 'length'") as info:
        registry.build(ScorerSpec(name="length", params={"mx": 3}))
    assert info.value.key == "params.mx"
    with pytest.raises(ConfigError, match="give either `feature`"):
        registry.build(ScorerSpec(name="judge", params={"rubric": "r"}))


def test_stats_by_hand() -> None:
    # exact McNemar: 1 vs 6 discordant pairs -> 2 * (C(7,0) + C(7,1)) / 2**7 = 16/128
    assert mcnemar(1, 6) == 16 / 128
    assert mcnemar(0, 0) == 1.0
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)
