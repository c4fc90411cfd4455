"""The Anthropic adapter against hand-built payloads shaped as the Messages API documents them."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from provider_wire import Wire, broken_sse_response, drain, sse_response

from buttress.errors import (
    AuthenticationError,
    BadRequest,
    MalformedResponse,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from buttress.providers.anthropic import AnthropicProvider
from buttress.providers.base import assemble_stream
from buttress.types import CallRequest, Message, ResponseFormat, Tool, ToolCall

KEY = "sk-ant-test-SECRET"
WEATHER = Tool(name="get_weather", description="Weather for a city",
               parameters={"type": "object", "properties": {"city": {"type": "string"}}})
SCHEMA = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}


def provider(wire: Wire, **kw: Any) -> AnthropicProvider:
    return AnthropicProvider("anthropic", base_url="https://anthropic.test", api_key=KEY,
                             http=wire.client, **kw)


def request(**kw: Any) -> CallRequest:
    base: dict[str, Any] = {"model": "claude-sonnet-4-5",
                            "messages": (Message.system("Be brief."), Message.user("Hi"))}
    return CallRequest(**{**base, **kw})


def message(content: list[dict[str, Any]], stop: Any = "end_turn") -> dict[str, Any]:
    return {"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
            "content": content, "model": "claude-sonnet-4-5-20250929", "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 6,
                      "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2000}}


def ev(kind: str, **data: Any) -> tuple[str, dict[str, Any]]:
    return kind, {"type": kind, **data}


MESSAGE_START = ev("message_start", message={
    "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant",
    "content": [], "model": "claude-opus-4-6", "stop_reason": None, "stop_sequence": None,
    "usage": {"input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 1000,
              "cache_creation_input_tokens": 0}})


def text_delta(text: str, index: int = 0) -> tuple[str, dict[str, Any]]:
    return ev("content_block_delta", index=index, delta={"type": "text_delta", "text": text})


def json_delta(part: str, index: int) -> tuple[str, dict[str, Any]]:
    return ev("content_block_delta", index=index,
              delta={"type": "input_json_delta", "partial_json": part})


def message_delta(stop: str) -> tuple[str, dict[str, Any]]:
    return ev("message_delta", delta={"stop_reason": stop, "stop_sequence": None},
              usage={"output_tokens": 15})


async def test_plain_message_maps_request_and_response(wire: Wire) -> None:
    wire.reply(httpx.Response(200, json=message([{"type": "text", "text": "Hello!"}])))
    out = await provider(wire).complete(request(temperature=0.5, stop=("END",), seed=3,
                                                extra={"metadata": {"user_id": "u1"}}))

    sent = wire.request
    assert str(sent.url) == "https://anthropic.test/v1/messages"
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    assert wire.body == {"model": "claude-sonnet-4-5", "max_tokens": 1024,
                         "system": "Be brief.", "messages": [{"role": "user", "content": "Hi"}],
                         "temperature": 0.5, "stop_sequences": ["END"],
                         "metadata": {"user_id": "u1"}}
    assert out.text == "Hello!"
    assert out.finish_reason == "stop"
    assert out.model == "claude-sonnet-4-5-20250929"
    assert out.response_id == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert out.usage.prompt_tokens == 12 + 100 + 2000
    assert (out.usage.completion_tokens, out.usage.cached_tokens) == (6, 2000)


async def test_tools_tool_use_and_tool_results(wire: Wire) -> None:
    wire.reply(httpx.Response(200, json=message([
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
         "input": {"city": "Oslo"}}], stop="tool_use")))
    history = (Message.user("Weather in Oslo and Bergen?"),
               Message.assistant("Checking.", tool_calls=(
                   ToolCall(id="toolu_1", name="get_weather", arguments='{"city":"Oslo"}'),
                   ToolCall(id="toolu_2", name="get_weather", arguments='{"city":"Bergen"}'))),
               Message.tool("toolu_1", "rain"), Message.tool("toolu_2", "sun"))
    out = await provider(wire).complete(request(messages=history, tools=(WEATHER,),
                                                tool_choice="required", max_tokens=200))

    body = wire.body
    assert body["max_tokens"] == 200
    assert body["tools"] == [{"name": "get_weather", "description": "Weather for a city",
                              "input_schema": WEATHER.parameters}]
    assert body["tool_choice"] == {"type": "any"}
    assert body["messages"][1:] == [
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_weather",
             "input": {"city": "Bergen"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "sun"}]},
    ]
    assert out.finish_reason == "tool_calls"
    assert out.text == "Let me check."
    assert out.tool_calls == (ToolCall(id="toolu_01A09q90qw90lq917835lq9", name="get_weather",
                                       arguments='{"city": "Oslo"}'),)


async def test_bad_tool_arguments_in_history_are_a_bad_request(wire: Wire) -> None:
    history = (Message.assistant(tool_calls=(ToolCall(id="t1", name="f", arguments="{oops"),)),)
    with pytest.raises(BadRequest, match="'t1'"):
        await provider(wire).complete(request(messages=history))
    assert wire.requests == []


async def test_response_format_is_a_forced_tool_returned_as_text(wire: Wire) -> None:
    wire.reply(httpx.Response(200, json=message([
        {"type": "tool_use", "id": "toolu_9", "name": "verdict", "input": {"label": "spam"}}],
        stop="tool_use")))
    fmt = ResponseFormat(type="json_schema", name="verdict", json_schema=SCHEMA)
    out = await provider(wire).complete(request(response_format=fmt))

    assert wire.body["tools"] == [{"name": "verdict", "description": "Reply with the answer as "
                                   "input to this tool.", "input_schema": SCHEMA}]
    assert wire.body["tool_choice"] == {"type": "tool", "name": "verdict"}
    assert json.loads(out.text or "") == {"label": "spam"}
    assert out.tool_calls == ()
    assert out.finish_reason == "stop"


async def test_json_object_format_forces_an_open_object_tool(wire: Wire) -> None:
    wire.reply(httpx.Response(200, json=message([
        {"type": "tool_use", "id": "toolu_9", "name": "output", "input": {"a": 1}}],
        stop="tool_use")))
    out = await provider(wire).complete(request(response_format=ResponseFormat(type="json_object")))
    assert wire.body["tools"][0]["input_schema"] == {"type": "object"}
    assert json.loads(out.text or "") == {"a": 1}


async def test_streamed_text(wire: Wire) -> None:
    wire.reply(sse_response(
        MESSAGE_START,
        ev("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        ev("ping"),
        text_delta("Hello"), text_delta("!"),
        ev("content_block_stop", index=0),
        message_delta("end_turn"),
        ev("message_stop"),
    ))
    chunks = await drain(provider(wire).stream(request()))
    assert wire.body["stream"] is True
    assert [c.text for c in chunks if c.text] == ["Hello", "!"]
    out = await assemble_stream(iter(chunks))
    assert out.text == "Hello!"
    assert out.finish_reason == "stop"
    assert out.model == "claude-opus-4-6"
    assert out.response_id == "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"
    assert out.usage.prompt_tokens == 1025
    assert (out.usage.completion_tokens, out.usage.cached_tokens) == (15, 1000)


async def test_streamed_tool_use_fragments(wire: Wire) -> None:
    wire.reply(sse_response(
        MESSAGE_START,
        ev("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        text_delta("Okay."),
        ev("content_block_stop", index=0),
        ev("content_block_start", index=1, content_block={
            "type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather",
            "input": {}}),
        json_delta("", 1), json_delta('{"city":', 1), json_delta(' "Oslo"}', 1),
        ev("content_block_stop", index=1),
        message_delta("tool_use"),
        ev("message_stop"),
    ))
    chunks = await drain(provider(wire).stream(request(tools=(WEATHER,))))
    fragments = [d.arguments for c in chunks for d in c.tool_calls]
    assert fragments == ["", "", '{"city":', ' "Oslo"}']
    out = await assemble_stream(iter(chunks))
    assert out.finish_reason == "tool_calls"
    assert out.text == "Okay."
    assert out.tool_calls == (ToolCall(id="toolu_01T1x1fJ34qAmk2tNTrN7Up6", name="get_weather",
                                       arguments='{"city": "Oslo"}'),)


async def test_streamed_structured_output_arrives_as_text(wire: Wire) -> None:
    wire.reply(sse_response(
        MESSAGE_START,
        ev("content_block_start", index=0, content_block={
            "type": "tool_use", "id": "toolu_9", "name": "verdict", "input": {}}),
        json_delta('{"label"', 0), json_delta(': "spam"}', 0),
        ev("content_block_stop", index=0),
        message_delta("tool_use"),
        ev("message_stop"),
    ))
    fmt = ResponseFormat(type="json_schema", name="verdict", json_schema=SCHEMA)
    out = await assemble_stream(provider(wire).stream(request(response_format=fmt)))
    assert out.text == '{"label": "spam"}'
    assert out.tool_calls == ()
    assert out.finish_reason == "stop"


# -- errors --------------------------------------------------------------------------------------


def error_body(kind: str, text: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": text},
            "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}


async def test_rate_limit_with_retry_after(wire: Wire) -> None:
    wire.reply(httpx.Response(429, headers={"retry-after": "12"},
                              json=error_body("rate_limit_error", "Number of requests exceeded")))
    with pytest.raises(RateLimited, match="Number of requests exceeded") as info:
        await provider(wire).complete(request())
    assert info.value.retry_after == 12.0


@pytest.mark.parametrize(("status", "kind", "error"), [
    (529, "overloaded_error", ProviderUnavailable),
    (500, "api_error", ProviderUnavailable),
    (401, "authentication_error", AuthenticationError),
    (403, "permission_error", AuthenticationError),
    (400, "invalid_request_error", BadRequest),
    (413, "request_too_large", BadRequest),
])
async def test_status_classification(wire: Wire, status: int, kind: str,
                                     error: type[Exception]) -> None:
    wire.reply(httpx.Response(status, json=error_body(kind, "nope")))
    with pytest.raises(error):
        await provider(wire).complete(request())


async def test_key_never_in_errors(wire: Wire) -> None:
    wire.reply(httpx.Response(401, json=error_body("authentication_error", f"bad key {KEY}")))
    with pytest.raises(AuthenticationError) as info:
        await provider(wire).complete(request())
    assert KEY not in str(info.value)
    assert KEY not in repr(provider(wire))


async def test_transport_errors(wire: Wire) -> None:
    wire.reply(httpx.ConnectError("refused"), httpx.ConnectTimeout("timed out"))
    with pytest.raises(ProviderUnavailable):
        await provider(wire).complete(request())
    with pytest.raises(ProviderTimeout):
        await provider(wire).complete(request())


@pytest.mark.parametrize("body", [
    b"not json at all",
    b'{"id": "msg_1", "type": "message", "stop_reason": "end_turn"}',
    b'{"content": [{"type": "text"}], "stop_reason": "end_turn"}',
    b'{"content": [{"type": "text", "text": "x"}]}',
    b'"just a string"',
])
async def test_malformed_bodies_are_typed(wire: Wire, body: bytes) -> None:
    wire.reply(httpx.Response(200, content=body))
    with pytest.raises(MalformedResponse):
        await provider(wire).complete(request())


async def test_unknown_stop_reason_is_malformed_naming_it(wire: Wire) -> None:
    wire.reply(httpx.Response(200, json=message([{"type": "text", "text": "x"}], stop="nap")))
    with pytest.raises(MalformedResponse, match="'nap'"):
        await provider(wire).complete(request())


async def test_error_event_mid_stream_is_typed(wire: Wire) -> None:
    wire.reply(sse_response(MESSAGE_START, text_delta("Hel"),
                            ev("error", error={"type": "overloaded_error",
                                               "message": "Overloaded"})))
    seen: list[Any] = []
    with pytest.raises(ProviderUnavailable, match="Overloaded"):
        await drain(provider(wire).stream(request()), seen)
    assert "Hel" in [c.text for c in seen]


async def test_truncated_stream_is_malformed(wire: Wire) -> None:
    wire.reply(sse_response(MESSAGE_START, text_delta("Hel"), message_delta("end_turn")))
    with pytest.raises(MalformedResponse, match="truncated"):
        await drain(provider(wire).stream(request()))


async def test_message_stop_without_stop_reason_is_malformed(wire: Wire) -> None:
    wire.reply(sse_response(MESSAGE_START, text_delta("Hel"), ev("message_stop")))
    with pytest.raises(MalformedResponse, match="stop_reason"):
        await drain(provider(wire).stream(request()))


async def test_unknown_stop_reason_in_stream(wire: Wire) -> None:
    wire.reply(sse_response(MESSAGE_START, message_delta("nap"), ev("message_stop")))
    with pytest.raises(MalformedResponse, match="'nap'"):
        await drain(provider(wire).stream(request()))


async def test_unreadable_stream_event_is_malformed(wire: Wire) -> None:
    wire.reply(sse_response(MESSAGE_START, ev("content_block_delta", index=0, delta={})))
    with pytest.raises(MalformedResponse, match="missing field 'type'"):
        await drain(provider(wire).stream(request()))


async def test_connection_reset_mid_stream(wire: Wire) -> None:
    wire.reply(broken_sse_response(MESSAGE_START, text_delta("Hel")))
    seen: list[Any] = []
    with pytest.raises(ProviderUnavailable, match="ReadError"):
        await drain(provider(wire).stream(request()), seen)
    assert [c.text for c in seen if c.text] == ["Hel"]


async def test_overloaded_status_on_stream(wire: Wire) -> None:
    wire.reply(httpx.Response(529, json=error_body("overloaded_error", "Overloaded")))
    with pytest.raises(ProviderUnavailable, match="Overloaded") as info:
        await drain(provider(wire).stream(request()))
    assert info.value.status == 529
