"""Ledger records built the fast ways equal those built the general ways."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.ledger import AttemptRecord, CallRecord, request_payload
from buttress.ledger.redaction import Redactor
from buttress.types import CallRequest, Message, ResponseFormat, Tool, ToolCall

texts = st.text(st.characters(codec="utf-8"), max_size=12)
optional_floats = st.none() | st.floats(allow_nan=True, allow_infinity=True) | st.integers(-3, 3)
messages = st.builds(
    Message, role=st.sampled_from(["system", "user", "assistant", "tool"]),
    content=st.none() | texts,
    tool_calls=st.just(()) | st.tuples(st.builds(ToolCall, id=texts, name=texts)),
    tool_call_id=st.none() | texts, name=st.none() | texts)
plain_messages = st.builds(Message, role=st.sampled_from(["system", "user", "assistant"]),
                           content=st.none() | texts)
requests = st.builds(
    CallRequest, model=texts,
    messages=st.lists(plain_messages | messages, max_size=3).map(tuple),
    temperature=optional_floats, top_p=optional_floats,
    max_tokens=st.none() | st.integers(0, 10**6), stop=st.lists(texts, max_size=2).map(tuple),
    seed=st.none() | st.integers(-(2**40), 2**40), tools=st.just(()) | st.just((Tool(name="f"),)),
    tool_choice=st.none() | texts,
    response_format=st.none() | st.just(ResponseFormat(type="json_object")),
    logprobs=st.booleans(), top_logprobs=st.none() | st.integers(0, 5),
    extra=st.just({}) | st.dictionaries(texts, st.integers(), max_size=2))


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(requests)
def test_request_payload_is_model_dump_to_the_key_order(request: CallRequest) -> None:
    fast = request_payload(request)
    dumped = request.model_dump(mode="json", exclude_defaults=True)
    # JSON text compares key order too, and NaN equal to NaN
    assert json.dumps(fast) == json.dumps(dumped)


def test_the_usual_request_takes_the_fast_way() -> None:
    request = CallRequest(model="m", messages=(Message.user("hi"), Message.assistant("yo")),
                          temperature=0.5, max_tokens=64, stop=("x",))
    payload = request_payload(request)
    assert payload == {"model": "m", "messages": [{"role": "user", "content": "hi"},
                                                  {"role": "assistant", "content": "yo"}],
                       "temperature": 0.5, "max_tokens": 64, "stop": ["x"]}


def full_fields() -> dict[str, Any]:
    return {**{n: f.default for n, f in CallRecord.model_fields.items()
               if not f.is_required() and f.default_factory is None},
            "call_id": "c", "created_at": 1.0, "request": {"model": "m"}, "tags": ("a",)}


def test_a_complete_dict_becomes_the_record_s_own() -> None:
    fields = full_fields()
    record = CallRecord.trusted(fields)
    assert record == CallRecord.model_validate(fields)
    assert record.model_fields_set == set(CallRecord.model_fields)
    assert record.__dict__ is fields
    # a record copied with changes keeps its own set of fields
    copy = record.model_copy(update={"output_text": "x"})
    assert copy.output_text == "x"
    assert record.output_text is None


def test_a_partial_dict_is_copied_over_the_defaults() -> None:
    fields: dict[str, Any] = {"call_id": "c", "index": 0, "started_at": 1.0}
    record = AttemptRecord.trusted(fields)
    assert record.__dict__ is not fields
    assert record.model_fields_set == set(fields)
    assert record.kind == "primary"


def test_attempts_without_errors_are_kept_as_they_are() -> None:
    redactor = Redactor()
    clean = (AttemptRecord(call_id="c", index=0, started_at=0),
             AttemptRecord(call_id="c", index=1, started_at=0))
    assert redactor.attempts(clean) is clean
    key = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2"
    failed = (*clean, AttemptRecord(call_id="c", index=2, started_at=0, error_message="timed out"),
              AttemptRecord(call_id="c", index=3, started_at=0, error_message=f"bad key {key}"))
    assert [a.error_message for a in redactor.attempts(failed)] == \
        [None, None, "timed out", "bad key [REDACTED:secret]"]
