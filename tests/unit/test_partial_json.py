"""Partial objects from partial JSON: consistency with the final document, validation, streams."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, field_validator

from buttress.runtime import Call, Policy, Runtime, Target
from buttress.runtime.partial import Partial, PartialParser
from buttress.testing import FakeProvider, Reply
from buttress.types import CallRequest, Message

scalars = (st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=5), max_leaves=25)
documents = st.lists(values, max_size=6) | st.dictionaries(st.text(max_size=8), values,
                                                           max_size=6)


@st.composite
def json_texts(draw: st.DrawFn) -> str:
    doc = draw(documents)
    indent = draw(st.none() | st.integers(min_value=0, max_value=2))
    return json.dumps(doc, ensure_ascii=draw(st.booleans()), indent=indent)


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same JSON type (so ``1 == True`` does not pass)."""
    return type(a) is type(b) and a == b


def consistent(partial: Any, final: Any) -> bool:
    """Members before the last are complete (equal); the last one may still be growing."""
    if isinstance(partial, dict):
        if not isinstance(final, dict) or not set(partial) <= set(final):
            return False
        keys = list(partial)
        return (all(same(partial[k], final[k]) for k in keys[:-1])
                and (not keys or consistent(partial[keys[-1]], final[keys[-1]])))
    if isinstance(partial, list):
        if not isinstance(final, list) or len(partial) > len(final):
            return False
        return (all(same(p, f) for p, f in zip(partial[:-1], final, strict=False))
                and (not partial or consistent(partial[-1], final[len(partial) - 1])))
    if isinstance(partial, str):
        return isinstance(final, str) and final.startswith(partial)
    return same(partial, final)


def check_stream(text: str, pieces: list[str]) -> None:
    final = json.loads(text)
    parser = PartialParser()
    seen = 0
    for piece in pieces:
        partial = parser.feed(piece)
        if partial is None:
            continue
        seen += 1
        # the value is live: check it now, before the next piece changes it
        assert consistent(partial.value, final), (piece, partial.value, final)
        for name in partial.complete_fields:
            assert same(partial.value[name], final[name])
    last = parser.finish()
    assert last.final
    assert last.ok
    assert same(last.value, final)
    assert seen >= 1


@settings(max_examples=300, deadline=None)
@given(json_texts())
def test_every_prefix_gives_a_value_consistent_with_the_final_one(text: str) -> None:
    check_stream(text, list(text))


@settings(max_examples=300, deadline=None)
@given(json_texts(), st.lists(st.integers(min_value=1, max_value=12), min_size=1))
def test_random_chunk_boundaries_give_consistent_values(text: str, sizes: list[int]) -> None:
    pieces, at = [], 0
    while at < len(text):
        size = sizes[len(pieces) % len(sizes)]
        pieces.append(text[at:at + size])
        at += size
    check_stream(text, pieces)


def test_escapes_and_surrogate_pairs_split_anywhere_stay_prefixes() -> None:
    doc = {"s": 'a\\b"c\u00e9\U0001F600\n\t\u2028' * 3, "t": ["\U0001F680x", "\\"]}
    text = json.dumps(doc, ensure_ascii=True)
    for size in range(1, 14):
        check_stream(text, [text[i:i + size] for i in range(0, len(text), size)])


def test_numbers_and_literals_appear_only_once_complete() -> None:
    parser = PartialParser()
    shown = [copy.deepcopy(p.value) for p in map(parser.feed, '{"n": 123, "b": true}')
             if p is not None]
    assert {"n": 12} not in shown
    assert {"n": 1} not in shown
    assert {"n": 123} in shown
    assert {"n": 123, "b": True} in shown
    assert all(v.get("b", True) is True for v in shown)


def test_keys_appear_only_once_complete_and_strings_grow() -> None:
    parser = PartialParser()
    shown = [copy.deepcopy(p.value) for p in map(parser.feed, '{"name": "Ada"}')
             if p is not None]
    assert shown[0] == {}
    assert {"na": ""} not in shown
    names = [v["name"] for v in shown if "name" in v]
    assert list(dict.fromkeys(names)) == ["", "A", "Ad", "Ada"]


def test_nothing_new_gives_none() -> None:
    parser = PartialParser()
    assert parser.feed('{"a": 1') is not None
    assert parser.feed("23") is None  # still an unfinished number
    partial = parser.feed(" ")
    assert partial is not None
    assert partial.value == {"a": 123}
    assert parser.feed("   ") is None
    assert parser.feed("") is None
    assert parser.feed("}") is not None  # the document closed


class Person(BaseModel):
    name: str
    age: int = Field(ge=0)
    tags: list[str]

    @field_validator("name")
    @classmethod
    def capitalised(cls, value: str) -> str:
        if not value[:1].isupper():
            raise ValueError("name must be capitalised")
        return value


def feed_all(parser: PartialParser, text: str) -> list[Partial]:
    out = []
    for ch in text:
        partial = parser.feed(ch)
        if partial is not None:
            out.append(Partial(copy.deepcopy(partial.value), partial.complete_fields,
                               dict(partial.errors)))
    return out


def test_fields_are_validated_once_complete_against_the_model() -> None:
    parser = PartialParser(Person)
    partials = feed_all(parser, '{"name": "ada", "age": -3, "tags": ["x", 2]}')
    # while "name" streams in, it is not judged
    assert all("name" not in p.errors for p in partials if "name" not in p.complete_fields)
    after_name = next(p for p in partials if "name" in p.complete_fields)
    assert "capitalised" in after_name.errors["name"]
    assert "age" not in after_name.errors
    assert "greater than or equal to 0" in partials[-1].errors["age"]
    assert "tags" in partials[-1].errors
    final = parser.finish()
    assert final.final
    assert not final.ok
    assert "age" in final.errors["$"]
    assert "name" in final.errors["$"]


def test_a_valid_document_passes_field_and_final_validation() -> None:
    parser = PartialParser(Person)
    partials = feed_all(parser, '{"name": "Ada", "age": 36, "tags": ["math"]}')
    assert all(p.ok for p in partials)
    assert partials[-1].complete_fields == {"name", "age", "tags"}
    final = parser.finish()
    assert final.ok
    assert final.value == {"name": "Ada", "age": 36, "tags": ["math"]}
    assert Person.model_validate(final.value).age == 36


def test_fields_are_validated_against_a_json_schema() -> None:
    schema = {"type": "object", "required": ["n", "kind"],
              "properties": {"n": {"type": "integer", "maximum": 5},
                             "kind": {"$ref": "#/$defs/kind"}},
              "$defs": {"kind": {"enum": ["a", "b"]}}}
    parser = PartialParser(schema)
    partials = feed_all(parser, '{"n": 9, "kind": "c"}')
    assert "maximum" in partials[-1].errors["n"] or "9" in partials[-1].errors["n"]
    assert "kind" in partials[-1].errors
    assert not parser.finish().ok
    ok = PartialParser(schema)
    assert all(p.ok for p in feed_all(ok, '{"n": 2, "kind": "b"}'))
    assert ok.finish().ok


def test_malformed_json_stops_partials_and_the_final_names_the_problem() -> None:
    parser = PartialParser()
    assert parser.feed('{"a": [1, 2') is not None
    assert parser.feed("}") is None  # a mismatched bracket: no more partials
    assert parser.feed(', "b": 3}') is None
    final = parser.finish()
    assert final.final
    assert final.value is None
    assert "invalid JSON" in final.errors["$"]
    for bad in ['{"a": tru}', '{"a" 1}', "[1,,2]", '{"a": 1} x', '{"a": "\\x"}', "[1 2]"]:
        p = PartialParser()
        for ch in bad:
            p.feed(ch)
        assert "$" in p.finish().errors, bad


def test_an_unfinished_document_is_a_final_error_not_a_crash() -> None:
    parser = PartialParser()
    assert parser.feed('{"a": "unterminated') is not None
    final = parser.finish()
    assert final.value is None
    assert "invalid JSON" in final.errors["$"]


async def test_call_stream_partials_through_the_runtime() -> None:
    answer = json.dumps({"name": "Ada", "age": 36, "tags": ["math", "engines"]})
    provider = FakeProvider(name="fake", script=[Reply(text=answer, chunk_size=3)])
    runtime = Runtime({"fake": provider})
    call = Call(request=CallRequest(model="", messages=(Message.user("who?"),)),
                targets=(Target(provider="fake", model="m"),), policy=Policy(),
                call_id="c", trace_id="t")
    seen: list[Partial] = []
    async with runtime.stream(call) as stream:
        async for partial in stream.partials(Person):
            seen.append(Partial(copy.deepcopy(partial.value), partial.complete_fields,
                                dict(partial.errors), partial.final))
    assert len(seen) > 5
    assert [p.final for p in seen].count(True) == 1
    assert seen[-1].final
    assert seen[-1].ok
    assert seen[-1].value == json.loads(answer)
    names = [p.value.get("name") for p in seen if not p.final and "name" in p.value]
    assert names[0] != "Ada"
    assert names[-1] == "Ada"
    assert stream.result is not None
    assert stream.result.text == answer
