"""The gateway's request parser: every field it reads, alone and together, and each way it
refuses one (naming the parameter)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from buttress.gateway.wire import WireError, parse_chat_request
from buttress.types import ResponseFormat, Tool

USER = [{"role": "user", "content": "hi"}]


def parse(**fields: Any) -> Any:
    return parse_chat_request(orjson.dumps({"model": "m", "messages": USER, **fields}))


def test_a_bare_body_sets_no_parameters() -> None:
    req = parse()
    assert (req.model, req.stream, req.include_usage, req.user, req.vars, req.params) == \
        ("m", False, False, None, None, {})
    assert [(m.role, m.content) for m in req.messages] == [("user", "hi")]


@pytest.mark.parametrize(("fields", "params"), [
    ({"temperature": 1}, {"temperature": 1.0}),
    ({"top_p": 0.5}, {"top_p": 0.5}),
    ({"max_tokens": 7}, {"max_tokens": 7}),
    ({"max_completion_tokens": 9, "max_tokens": 7}, {"max_tokens": 9}),
    ({"seed": 3}, {"seed": 3}),
    ({"stop": "END"}, {"stop": ("END",)}),
    ({"stop": ["a", "b"]}, {"stop": ("a", "b")}),
    ({"stop": []}, {}),
    ({"n": 1}, {}),
    ({"logprobs": True, "top_logprobs": 2}, {"logprobs": True, "top_logprobs": 2}),
    ({"logprobs": False}, {}),
    ({"tool_choice": "auto"}, {"tool_choice": "auto"}),
    ({"metadata": {"a": "b"}, "store": None}, {"extra": {"metadata": {"a": "b"}}}),
])
def test_each_option_reaches_the_runtime_parameters(fields: dict[str, Any],
                                                     params: dict[str, Any]) -> None:
    assert parse(**fields).params == params
    # the same with the fields every request may carry beside them
    req = parse(**fields, stream=True, stream_options={"include_usage": True}, user="u")
    assert (req.params, req.stream, req.include_usage, req.user) == (params, True, True, "u")


def test_tools_and_response_format_are_typed() -> None:
    params = parse(tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
                   response_format={"type": "json_object"}).params
    assert isinstance(params["tools"][0], Tool)
    assert params["tools"][0].name == "f"
    assert isinstance(params["response_format"], ResponseFormat)


@pytest.mark.parametrize(("fields", "param"), [
    ({"bogus": 1}, "bogus"),
    ({"temperature": 3}, "temperature"),
    ({"temperature": True}, "temperature"),
    ({"top_p": "x"}, "top_p"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_completion_tokens": 1.5}, "max_completion_tokens"),
    ({"seed": "7"}, "seed"),
    ({"stop": ["a"] * 5}, "stop"),
    ({"n": 2}, "n"),
    ({"top_logprobs": 21}, "top_logprobs"),
    ({"logprobs": "yes"}, "logprobs"),
    ({"functions": []}, "functions"),
    ({"function_call": "auto"}, "function_call"),
    ({"stream": "yes"}, "stream"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"stream": True, "stream_options": []}, "stream_options"),
    ({"stream": True, "stream_options": {"include_usage": 1}}, "stream_options.include_usage"),
    ({"user": 5}, "user"),
    ({"vars": []}, "vars"),
])
def test_a_bad_field_is_refused_by_name(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(WireError) as refused:
        parse(**fields)
    assert refused.value.param == param


def test_the_first_unknown_field_is_named() -> None:
    body = b'{"model": "m", "zeta": 1, "messages": [], "alpha": 2}'
    with pytest.raises(WireError) as refused:
        parse_chat_request(body)
    assert refused.value.param == "zeta"
    assert "unrecognized request argument supplied: zeta" in refused.value.message
