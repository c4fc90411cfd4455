"""The OpenAI-compatible adapter against hand-built payloads shaped as OpenAI documents them."""

from __future__ import annotations

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
from buttress.providers.base import StreamAssembler, assemble_stream
from buttress.providers.openai_compat import OpenAICompatProvider, plain_text
from buttress.types import CallRequest, Message, ResponseFormat, StreamChunk, Tool, ToolCall

KEY = "sk-test-SECRET-123"
WEATHER = Tool(name="get_weather", description="Weather for a city",
               parameters={"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]})


def provider(wire: Wire, **kw: Any) -> OpenAICompatProvider:
    return OpenAICompatProvider("openai", base_url="https://api.test/v1/", api_key=KEY,
                                http=wire.client, headers={"X-Team": "t1"}, **kw)


def request(**kw: Any) -> CallRequest:
    base: dict[str, Any] = {"model": "gpt-4.1",
                            "messages": (Message.system("Be brief."), Message.user("Hi"))}
    return CallRequest(**{**base, **kw})


def completion_body(message: dict[str, Any], finish: Any = "stop", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1741569952,
        "model": "gpt-4.1-2025-04-14",
        "choices": [{"index": 0, "message": {"role": "assistant", "refusal": None,
                                             "annotations": [], **message},
                     "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": 1117, "completion_tokens": 46, "total_tokens": 1163,
                  "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 32, "audio_tokens": 0,
                                                "accepted_prediction_tokens": 0,
                                                "rejected_prediction_tokens": 0}},
        "service_tier": "default",
        "system_fingerprint": "fp_50cad350e4",
        **extra,
    }


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190,
            "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_44709d6fcb",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **extra}


USAGE_CHUNK = {"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190,
               "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_44709d6fcb",
               "choices": [],
               "usage": {"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
                         "prompt_tokens_details": {"cached_tokens": 1920},
                         "completion_tokens_details": {"reasoning_tokens": 128}}}


async def test_plain_completion_maps_request_and_response(wire: Wire) -> None:
    wire.reply(httpx.Response(200, json=completion_body({"content": "Hello!"})))
    out = await provider(wire).complete(request(temperature=0.2, max_tokens=50, stop=("\n",),
                                                seed=7, extra={"user": "u-1"}))

    sent = wire.request
    assert str(sent.url) == "https://api.test/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["x-team"] == "t1"
    assert wire.body == {
        "model": "gpt-4.1",
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Hi"}],
        "temperature": 0.2, "max_tokens": 50, "stop": ["\n"], "seed": 7, "user": "u-1",
    }
    assert out.text == "Hello!"
    assert out.finish_reason == "stop"
    assert out.model == "gpt-4.1-2025-04-14"
    assert out.system_fingerprint == "fp_50cad350e4"
    assert out.response_id == "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (1117, 46)
    assert (out.usage.cached_tokens, out.usage.reasoning_tokens) == (1024, 32)


async def test_no_key_sends_no_authorization(wire: Wire) -> None:
    wire.reply(httpx.Response(200, json=completion_body({"content": "ok"})))
    local = OpenAICompatProvider("ollama", base_url="http://localhost:11434/v1", api_key=None,
                                 http=wire.client, max_tokens_field="max_completion_tokens")
    await local.complete(request(max_tokens=5))
    assert "authorization" not in wire.request.headers
    assert wire.body["max_completion_tokens"] == 5


async def test_tools_and_tool_messages_round_trip(wire: Wire) -> None:
    wire.reply(httpx.Response(200, json=completion_body(
        {"content": None, "tool_calls": [{"id": "call_abc123", "type": "function",
                                          "function": {"name": "get_weather",
                                                       "arguments": "{\n\"city\": \"Oslo\"\n}"}}]},
        finish="tool_calls")))
    history = (Message.user("Weather in Oslo?"),
               Message.assistant(tool_calls=(ToolCall(id="call_1", name="get_weather",
                                                      arguments='{"city":"Bergen"}'),)),
               Message.tool("call_1", "rain"))
    out = await provider(wire).complete(request(messages=history, tools=(WEATHER,),
                                                tool_choice="get_weather"))

    body = wire.body
    assert body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": WEATHER.parameters}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["messages"][1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city":"Bergen"}'}}]}
    assert body["messages"][2] == {"role": "tool", "content": "rain", "tool_call_id": "call_1"}
    assert out.finish_reason == "tool_calls"
    assert out.text is None
    assert out.tool_calls == (ToolCall(id="call_abc123", name="get_weather",
                                       arguments="{\n\"city\": \"Oslo\"\n}"),)


@pytest.mark.parametrize(("mode", "expected"), [
    ("json_schema", {"type": "json_schema", "json_schema": {
        "name": "answer", "strict": True,
        "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}}),
    ("json_object", {"type": "json_object"}),
    ("json_object_schema", {"type": "json_object", "schema": {
        "type": "object", "properties": {"a": {"type": "integer"}}}}),
])
async def test_response_format_uses_native_structured_output(
        wire: Wire, mode: Any, expected: dict[str, Any]) -> None:
    wire.reply(httpx.Response(200, json=completion_body({"content": '{"a": 1}'})))
    fmt = ResponseFormat(type="json_schema", name="answer",
                         json_schema={"type": "object", "properties": {"a": {"type": "integer"}}})
    out = await provider(wire, structured_output=mode).complete(request(response_format=fmt))
    assert wire.body["response_format"] == expected
    assert out.text == '{"a": 1}'


async def test_logprobs_requested_and_returned(wire: Wire) -> None:
    body = completion_body({"content": "Hello"})
    body["choices"][0]["logprobs"] = {"content": [{
        "token": "Hello", "logprob": -0.31725305, "bytes": [72, 101, 108, 108, 111],
        "top_logprobs": [{"token": "Hello", "logprob": -0.31725305, "bytes": [72]},
                         {"token": "Hi", "logprob": -1.3190403, "bytes": [72]}]}],
        "refusal": None}
    wire.reply(httpx.Response(200, json=body))
    out = await provider(wire).complete(request(logprobs=True, top_logprobs=2))
    assert wire.body["logprobs"] is True
    assert wire.body["top_logprobs"] == 2
    assert out.logprobs is not None
    (tok,) = out.logprobs
    assert (tok.token, tok.logprob) == ("Hello", -0.31725305)
    assert [(t.token, t.logprob) for t in tok.top] == [("Hello", -0.31725305), ("Hi", -1.3190403)]


async def test_refusal_is_a_content_filter_finish(wire: Wire) -> None:
    wire.reply(httpx.Response(200, json=completion_body(
        {"content": None, "refusal": "I can't help with that."})))
    out = await provider(wire).complete(request())
    assert (out.text, out.finish_reason) == ("I can't help with that.", "content_filter")


async def test_streamed_text_with_usage(wire: Wire) -> None:
    wire.reply(sse_response(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({}, finish="stop"),
        USAGE_CHUNK,
        "[DONE]",
    ))
    chunks = [c async for c in provider(wire).stream(request())]

    assert wire.body["stream"] is True
    assert wire.body["stream_options"] == {"include_usage": True}
    assert [c.text for c in chunks] == ["", "Hel", "lo", "", ""]
    out = await assemble_stream(iter(chunks))
    assert out.text == "Hello"
    assert out.finish_reason == "stop"
    assert out.model == "gpt-4o-mini-2024-07-18"
    assert out.system_fingerprint == "fp_44709d6fcb"
    assert out.usage.prompt_tokens == 2006
    assert (out.usage.cached_tokens, out.usage.reasoning_tokens) == (1920, 128)


async def test_include_usage_is_a_capability_flag(wire: Wire) -> None:
    wire.reply(sse_response(chunk({"content": "x"}, finish="stop"), "[DONE]"))
    chunks = [c async for c in provider(wire, include_usage=False).stream(request())]
    assert "stream_options" not in wire.body
    assert chunks[0].finish_reason == "stop"


async def test_streamed_tool_call_fragments(wire: Wire) -> None:
    wire.reply(sse_response(
        chunk({"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA", "type": "function",
             "function": {"name": "get_weather", "arguments": ""}}], "refusal": None}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"ci"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "ty\": \"Oslo\"}"}}]}),
        chunk({}, finish="tool_calls"),
        "[DONE]",
    ))
    chunks = [c async for c in provider(wire).stream(request(tools=(WEATHER,)))]
    assert chunks[0].tool_calls[0].name == "get_weather"
    assert [c.tool_calls[0].arguments for c in chunks[1:3]] == ['{"ci', 'ty": "Oslo"}']
    out = await assemble_stream(iter(chunks))
    assert out.finish_reason == "tool_calls"
    assert out.tool_calls == (ToolCall(id="call_DdmO9pD3xa9XTPNJ32zg2hcA", name="get_weather",
                                       arguments='{"city": "Oslo"}'),)


async def test_streamed_logprobs(wire: Wire) -> None:
    first = chunk({"content": "Hi"})
    first["choices"][0]["logprobs"] = {"content": [
        {"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []}]}
    wire.reply(sse_response(first, chunk({}, finish="stop"), "[DONE]"))
    chunks = [c async for c in provider(wire).stream(request(logprobs=True))]
    assert [(t.token, t.logprob) for t in chunks[0].logprobs] == [("Hi", -0.1)]


# -- errors --------------------------------------------------------------------------------------


async def test_rate_limit_honours_retry_after_ms(wire: Wire) -> None:
    wire.reply(httpx.Response(429, headers={"retry-after-ms": "1500", "retry-after": "2"},
                              json={"error": {"message": "Rate limit reached for gpt-4.1",
                                              "type": "requests", "code": "rate_limit_exceeded"}}))
    with pytest.raises(RateLimited) as info:
        await provider(wire).complete(request())
    assert info.value.retry_after == 1.5
    assert info.value.retryable
    assert info.value.status == 429
    assert "Rate limit reached" in str(info.value)


async def test_rate_limit_honours_retry_after_seconds_when_streaming(wire: Wire) -> None:
    wire.reply(httpx.Response(429, headers={"retry-after": "7"},
                              json={"error": {"message": "slow down"}}))
    with pytest.raises(RateLimited) as info:
        [c async for c in provider(wire).stream(request())]
    assert info.value.retry_after == 7.0


@pytest.mark.parametrize(("status", "error"), [
    (401, AuthenticationError), (403, AuthenticationError), (400, BadRequest),
    (404, BadRequest), (500, ProviderUnavailable), (503, ProviderUnavailable),
    (504, ProviderTimeout),
])
async def test_status_classification(wire: Wire, status: int, error: type[Exception]) -> None:
    wire.reply(httpx.Response(status, json={"error": {"message": "nope", "type": "x"}}))
    with pytest.raises(error):
        await provider(wire).complete(request())


async def test_error_never_contains_the_key(wire: Wire) -> None:
    wire.reply(httpx.Response(401, json={"error": {
        "message": f"Incorrect API key provided: {KEY}.", "type": "invalid_request_error"}}))
    with pytest.raises(AuthenticationError) as info:
        await provider(wire).complete(request())
    assert KEY not in str(info.value)
    assert KEY not in repr(info.value.args)
    assert KEY not in repr(provider(wire))


async def test_connect_error_is_unavailable_and_timeout_is_timeout(wire: Wire) -> None:
    wire.reply(httpx.ConnectError("connection refused"), httpx.ReadTimeout("read timed out"))
    with pytest.raises(ProviderUnavailable):
        await provider(wire).complete(request())
    with pytest.raises(ProviderTimeout):
        await provider(wire).complete(request())


@pytest.mark.parametrize("body", [
    b"<html>502 Bad Gateway</html>",
    b'{"id": "x", "object": "chat.completion"}',
    b'{"choices": []}',
    b'{"choices": [{"index": 0, "finish_reason": "stop"}]}',
    b'{"choices": [{"message": {"content": 42}, "finish_reason": "stop"}]}',
    b'[1, 2]',
])
async def test_malformed_bodies_are_typed(wire: Wire, body: bytes) -> None:
    wire.reply(httpx.Response(200, content=body))
    with pytest.raises(MalformedResponse):
        await provider(wire).complete(request())


async def test_unknown_finish_reason_is_malformed_naming_it(wire: Wire) -> None:
    wire.reply(httpx.Response(200, json=completion_body({"content": "x"}, finish="abort")))
    with pytest.raises(MalformedResponse, match="'abort'"):
        await provider(wire).complete(request())


async def test_extra_finish_reasons_are_data(wire: Wire) -> None:
    wire.reply(httpx.Response(200, json=completion_body({"content": "x"}, finish="abort")))
    out = await provider(wire, finish_reasons={"abort": "error"}).complete(request())
    assert out.finish_reason == "error"


async def test_error_object_in_a_200_body_is_classified(wire: Wire) -> None:
    wire.reply(httpx.Response(200, json={"error": {"message": "busy", "code": 503}}))
    with pytest.raises(ProviderUnavailable, match="busy"):
        await provider(wire).complete(request())


async def test_in_stream_error_event_is_typed(wire: Wire) -> None:
    wire.reply(sse_response(chunk({"content": "Hel"}),
                            {"error": {"message": "Rate limit exceeded", "type": "requests",
                                       "code": "rate_limit_exceeded"}}))
    chunks: list[Any] = []
    with pytest.raises(RateLimited, match="Rate limit exceeded"):
        await drain(provider(wire).stream(request()), chunks)
    assert [c.text for c in chunks] == ["Hel"]


async def test_openrouter_mid_stream_error_is_typed(wire: Wire) -> None:
    wire.reply(sse_response({**chunk({"content": ""}, finish="error"),
                             "error": {"code": "server_error",
                                       "message": "Provider disconnected"}}))
    with pytest.raises(ProviderUnavailable, match="Provider disconnected"):
        [c async for c in provider(wire).stream(request())]


async def test_truncated_stream_is_malformed(wire: Wire) -> None:
    wire.reply(sse_response(chunk({"content": "Hel"})))
    with pytest.raises(MalformedResponse, match="truncated"):
        [c async for c in provider(wire).stream(request())]


async def test_unknown_finish_reason_in_stream(wire: Wire) -> None:
    wire.reply(sse_response(chunk({}, finish="weird"), "[DONE]"))
    with pytest.raises(MalformedResponse, match="'weird'"):
        [c async for c in provider(wire).stream(request())]


@pytest.mark.parametrize(("event", "named"), [
    ({**chunk({"content": 7})}, "delta.content"),
    ({**chunk({"content": "a"}), "model": 5}, "model"),
    ({**chunk({"content": "a"}), "id": ["x"]}, "id"),
    ({**chunk({"content": "a"}), "system_fingerprint": {}}, "system_fingerprint"),
])
async def test_stream_fields_of_the_wrong_type_are_malformed_naming_them(
        wire: Wire, event: dict[str, Any], named: str) -> None:
    wire.reply(sse_response(event, "[DONE]"))
    with pytest.raises(MalformedResponse, match=f"{named} is a .*, not a string"):
        [c async for c in provider(wire).stream(request())]


async def test_garbage_stream_event_is_malformed(wire: Wire) -> None:
    wire.reply(sse_response("{not json", "[DONE]"))
    with pytest.raises(MalformedResponse, match="not JSON"):
        [c async for c in provider(wire).stream(request())]


async def test_connection_reset_mid_stream_is_unavailable(wire: Wire) -> None:
    wire.reply(broken_sse_response(chunk({"content": "Hel"})))
    seen: list[Any] = []
    with pytest.raises(ProviderUnavailable, match="ReadError"):
        await drain(provider(wire).stream(request()), seen)
    assert [c.text for c in seen] == ["Hel"]


async def test_error_status_on_stream_is_classified(wire: Wire) -> None:
    wire.reply(httpx.Response(503, json={"error": {"message": "overloaded"}}))
    with pytest.raises(ProviderUnavailable, match="overloaded"):
        [c async for c in provider(wire).stream(request())]


async def test_consumer_may_stop_early(wire: Wire) -> None:
    wire.reply(sse_response(chunk({"content": "a"}), chunk({"content": "b"}),
                            chunk({}, finish="stop"), "[DONE]"))
    stream = provider(wire).stream(request())
    async for first in stream:
        assert first.text == "a"
        break
    await stream.aclose()  # type: ignore[attr-defined]


# -- batches: what a relay reads ---------------------------------------------------------------


async def read_batches(stream: Any) -> list[list[Any]]:
    batches = []
    while batch := await stream.batch():
        batches.append(batch)
    return batches


async def test_batches_carry_a_text_only_event_as_its_text(wire: Wire) -> None:
    events = (chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}),
              chunk({"content": "lo"}), chunk({}, finish="stop"), USAGE_CHUNK, "[DONE]")
    wire.reply(sse_response(*events), sse_response(*events))
    stream = provider(wire).stream(request())
    items = [item for batch in await read_batches(stream) for item in batch]
    assert await stream.batch() == []  # over, and stays over
    assert items[1:3] == ["Hel", "lo"]
    assert [type(i) for i in items] == [StreamChunk, str, str, StreamChunk, StreamChunk]
    assert items[0].text == ""  # the role event is not text alone: empty text never is
    assert items[3].finish_reason == "stop"
    assert items[4].usage.prompt_tokens == 2006
    # the same completion as the chunks of the same stream add up to
    assembler = StreamAssembler()
    assembler.extend(items)
    chunks = [c async for c in provider(wire).stream(request())]
    assert assembler.completion() == await assemble_stream(iter(chunks))
    assert [c.text for c in chunks] == ["", "Hel", "lo", "", ""]


TEXT_ALONE = [
    chunk({"content": "hi"}),
    chunk({"role": "assistant", "content": "hi"}),
    chunk({"content": "hi", "refusal": None}),
    {"choices": [{"index": 0, "delta": {"content": "hi"}}]},  # no envelope, no finish field
    {**chunk({"content": "hi"}), "usage": None},
]
NOT_TEXT_ALONE = [
    chunk({"content": ""}),
    chunk({"content": None}),
    chunk({"content": 7}),
    chunk({"content": "hi"}, finish="stop"),
    chunk({"content": "hi", "tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}),
    {**chunk({"content": "hi"}), "usage": USAGE_CHUNK["usage"]},
    {**chunk({"content": "hi"}), "error": {"message": "boom"}},
    {**chunk({"content": "hi"}), "choices": []},
    {**chunk({"content": "hi"}), "choices": [chunk({"content": "a"})["choices"][0]] * 2},
    {**chunk({"content": "hi"}), "choices": [{"index": 0, "delta": "hi"}]},
    {**chunk({"content": "hi"}), "choices": ["hi"]},
    [chunk({"content": "hi"})],
]


@pytest.mark.parametrize("event", TEXT_ALONE)
def test_an_event_taken_as_text_alone_is_exactly_that_chunk(event: dict[str, Any]) -> None:
    # plain_text must never drop what chunk_from would read: the chunk it stands for has its
    # text and nothing else (the envelope's id, model and fingerprint come from the stream's
    # first and last events)
    text = plain_text(event)
    assert text == "hi"
    full = OpenAICompatProvider("p", base_url=None, api_key=None, http=httpx.AsyncClient()
                                ).chunk_from(event, b"", model="m")
    envelope = {"model", "response_id", "system_fingerprint"}
    assert full.model_dump(exclude=envelope) == StreamChunk(text=text).model_dump(
        exclude=envelope)


@pytest.mark.parametrize("event", NOT_TEXT_ALONE)
def test_anything_more_than_text_is_a_chunk(event: Any) -> None:
    assert plain_text(event) is None


async def test_a_failure_in_a_batch_comes_after_the_events_before_it(wire: Wire) -> None:
    error = {"error": {"message": f"quota for {KEY} exceeded", "type": "requests",
                       "code": "rate_limit_exceeded"}}
    wire.reply(sse_response(chunk({"content": "Hel"}), chunk({"content": "lo"}), error),
               sse_response(chunk({"content": "Hel"})))
    stream = provider(wire).stream(request())
    assert await stream.batch() == ["Hel", "lo"]
    with pytest.raises(RateLimited) as raised:
        await stream.batch()
    assert KEY not in str(raised.value)
    assert await stream.batch() == []
    truncated = provider(wire).stream(request())
    assert await truncated.batch() == ["Hel"]
    with pytest.raises(MalformedResponse, match="truncated"):
        await truncated.batch()


async def test_a_stream_closed_before_reading_sends_nothing(wire: Wire) -> None:
    stream = provider(wire).stream(request())
    await stream.aclose()
    assert await stream.batch() == []
    assert wire.requests == []


async def test_batches_after_chunks_lose_nothing_read_together(wire: Wire) -> None:
    # the runtime reads a stream's head chunk by chunk (until the first token), then batches:
    # events that arrived with the first token must come in the first batch
    wire.reply(sse_response(chunk({"content": "a"}), chunk({"content": "b"}),
                            chunk({"content": "c"}), "[DONE]"))
    stream = provider(wire).stream(request())
    first = await anext(stream)
    assert first.text == "a"
    rest = await stream.batch()  # as read for chunks: StreamChunks
    assert [c.text if isinstance(c, StreamChunk) else c for c in rest] == ["b", "c"]
    assert await stream.batch() == []
