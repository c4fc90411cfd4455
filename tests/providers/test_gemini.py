"""The Gemini adapter against hand-built payloads shaped as the Gemini API documents them."""

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
from buttress.providers.base import assemble_stream
from buttress.providers.gemini import GeminiProvider, openapi_schema
from buttress.types import CallRequest, Message, ResponseFormat, Tool, ToolCall

KEY = "AIza-test-SECRET"
BASE = "https://gemini.test/v1beta/models/gemini-2.5-flash"
WEATHER = Tool(name="get_weather", description="Weather for a city",
               parameters={"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"], "additionalProperties": False})


def provider(wire: Wire, **kw: Any) -> GeminiProvider:
    return GeminiProvider("gemini", base_url="https://gemini.test", api_key=KEY,
                          http=wire.client, **kw)


def request(**kw: Any) -> CallRequest:
    base: dict[str, Any] = {"model": "gemini-2.5-flash",
                            "messages": (Message.system("Be brief."), Message.user("Hi"))}
    return CallRequest(**{**base, **kw})


def response(parts: list[dict[str, Any]], finish: str | None = "STOP",
             **usage: int) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return {"candidates": [candidate],
            "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 10,
                              "totalTokenCount": 14, **usage},
            "modelVersion": "gemini-2.5-flash-001", "responseId": "mP9yaK7fNJ2z1dkPgL2d0Ag"}


async def test_plain_generate_content(wire: Wire) -> None:
    wire.reply(httpx.Response(200, json=response(
        [{"text": "Thinking about it...", "thought": True}, {"text": "Hello "}, {"text": "there"}],
        cachedContentTokenCount=2, thoughtsTokenCount=7)))
    out = await provider(wire).complete(request(
        temperature=0.1, top_p=0.9, max_tokens=64, stop=("END",), seed=5,
        extra={"generationConfig": {"thinkingConfig": {"thinkingBudget": 0}},
               "safetySettings": []}))

    sent = wire.request
    assert str(sent.url) == f"{BASE}:generateContent"
    assert sent.headers["x-goog-api-key"] == KEY
    assert KEY not in str(sent.url)
    assert wire.body == {
        "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"temperature": 0.1, "topP": 0.9, "maxOutputTokens": 64,
                             "stopSequences": ["END"], "seed": 5,
                             "thinkingConfig": {"thinkingBudget": 0}},
        "safetySettings": [],
    }
    assert out.text == "Hello there"
    assert out.finish_reason == "stop"
    assert out.model == "gemini-2.5-flash-001"
    assert out.response_id == "mP9yaK7fNJ2z1dkPgL2d0Ag"
    assert out.usage.prompt_tokens == 4
    assert out.usage.completion_tokens == 17
    assert (out.usage.cached_tokens, out.usage.reasoning_tokens) == (2, 7)


async def test_model_prefix_is_accepted(wire: Wire) -> None:
    wire.reply(httpx.Response(200, json=response([{"text": "x"}])))
    await provider(wire).complete(request(model="models/gemini-2.5-flash"))
    assert str(wire.request.url) == f"{BASE}:generateContent"


async def test_function_calls_and_responses(wire: Wire) -> None:
    wire.reply(httpx.Response(200, json=response(
        [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}])))
    history = (Message.user("Weather?"),
               Message.assistant(tool_calls=(
                   ToolCall(id="c1", name="get_weather", arguments='{"city": "Bergen"}'),
                   ToolCall(id="c2", name="get_weather", arguments='{"city": "Oslo"}'))),
               Message.tool("c1", '{"sky": "rain"}'), Message.tool("c2", "sunny"))
    out = await provider(wire).complete(request(messages=history, tools=(WEATHER,),
                                                tool_choice="get_weather"))

    body = wire.body
    assert body["tools"] == [{"functionDeclarations": [{
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}]}]
    assert body["toolConfig"] == {"functionCallingConfig": {
        "mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    assert body["contents"][1:] == [
        {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Bergen"}}},
            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"sky": "rain"}}},
            {"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}}]},
    ]
    assert out.finish_reason == "tool_calls"
    assert out.text is None
    assert out.tool_calls == (ToolCall(id="call_0", name="get_weather",
                                       arguments='{"city": "Oslo"}'),)


async def test_tool_result_for_an_unknown_call_is_a_bad_request(wire: Wire) -> None:
    with pytest.raises(BadRequest, match="'nope'"):
        await provider(wire).complete(request(messages=(Message.tool("nope", "x"),)))
    assert wire.requests == []


async def test_response_schema_is_converted_to_the_openapi_subset(wire: Wire) -> None:
    wire.reply(httpx.Response(200, json=response([{"text": '{"label": "spam"}'}])))
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "title": "Verdict",
        "type": "object", "additionalProperties": False,
        "properties": {"label": {"$ref": "#/$defs/Label"},
                       "note": {"type": ["string", "null"]},
                       "score": {"anyOf": [{"type": "number"}, {"type": "null"}]}},
        "required": ["label"],
        "$defs": {"Label": {"type": "string", "enum": ["spam", "ham"], "title": "Label"}},
    }
    fmt = ResponseFormat(type="json_schema", name="verdict", json_schema=schema)
    out = await provider(wire).complete(request(response_format=fmt))

    config = wire.body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"] == {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": ["spam", "ham"]},
                       "note": {"type": "string", "nullable": True},
                       "score": {"type": "number", "nullable": True}},
        "required": ["label"],
    }
    assert json.loads(out.text or "") == {"label": "spam"}


async def test_json_schema_dialect_sends_schemas_untouched(wire: Wire) -> None:
    wire.reply(httpx.Response(200, json=response([{"text": "{}"}])))
    schema = {"type": "object", "additionalProperties": False, "properties": {}}
    fmt = ResponseFormat(type="json_schema", json_schema=schema)
    await provider(wire, schema_dialect="json_schema").complete(
        request(response_format=fmt, tools=(WEATHER,)))
    assert wire.body["generationConfig"]["responseJsonSchema"] == schema
    assert "responseSchema" not in wire.body["generationConfig"]
    assert wire.body["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"] == \
        WEATHER.parameters


def test_recursive_schema_is_a_bad_request() -> None:
    schema = {"type": "object", "properties": {"child": {"$ref": "#"}}}
    with pytest.raises(BadRequest, match="recursion"):
        openapi_schema(schema)


async def test_json_object_format(wire: Wire) -> None:
    wire.reply(httpx.Response(200, json=response([{"text": "{}"}])))
    await provider(wire).complete(request(response_format=ResponseFormat(type="json_object")))
    assert wire.body["generationConfig"] == {"responseMimeType": "application/json"}


async def test_logprobs(wire: Wire) -> None:
    body = response([{"text": "Hi"}])
    body["candidates"][0]["logprobsResult"] = {
        "topCandidates": [{"candidates": [
            {"token": "Hi", "tokenId": 10, "logProbability": -0.2},
            {"token": "Hello", "tokenId": 11, "logProbability": -1.9}]}],
        "chosenCandidates": [{"token": "Hi", "tokenId": 10, "logProbability": -0.2}]}
    wire.reply(httpx.Response(200, json=body))
    out = await provider(wire).complete(request(logprobs=True, top_logprobs=2))
    assert wire.body["generationConfig"] == {"responseLogprobs": True, "logprobs": 2}
    assert out.logprobs is not None
    (tok,) = out.logprobs
    assert (tok.token, tok.logprob) == ("Hi", -0.2)
    assert [t.token for t in tok.top] == ["Hi", "Hello"]


async def test_blocked_prompt_is_a_content_filter_finish(wire: Wire) -> None:
    wire.reply(httpx.Response(200, json={
        "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
        "modelVersion": "gemini-2.5-flash"}))
    out = await provider(wire).complete(request())
    assert (out.text, out.finish_reason) == ("", "content_filter")
    assert out.usage.prompt_tokens == 8


async def test_safety_finish(wire: Wire) -> None:
    wire.reply(httpx.Response(200, json={"candidates": [{"finishReason": "SAFETY", "index": 0}]}))
    out = await provider(wire).complete(request())
    assert out.finish_reason == "content_filter"


async def test_streamed_text_with_usage(wire: Wire) -> None:
    first = response([{"text": "Hel"}], finish=None)
    last = response([{"text": "lo"}], cachedContentTokenCount=3, thoughtsTokenCount=5)
    wire.reply(sse_response(first, last))
    chunks = await drain(provider(wire).stream(request()))

    assert str(wire.request.url) == f"{BASE}:streamGenerateContent?alt=sse"
    assert "stream" not in wire.body
    assert [c.text for c in chunks] == ["Hel", "lo"]
    out = await assemble_stream(iter(chunks))
    assert out.text == "Hello"
    assert out.finish_reason == "stop"
    assert out.model == "gemini-2.5-flash-001"
    assert (out.usage.completion_tokens, out.usage.cached_tokens,
            out.usage.reasoning_tokens) == (15, 3, 5)


async def test_streamed_function_calls_get_distinct_indexes(wire: Wire) -> None:
    wire.reply(sse_response(
        response([{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}],
                 finish=None),
        response([{"functionCall": {"id": "fc-2", "name": "get_weather",
                                    "args": {"city": "Bergen"}}}], finish="STOP"),
    ))
    out = await assemble_stream(provider(wire).stream(request(tools=(WEATHER,))))
    assert out.finish_reason == "tool_calls"
    assert out.tool_calls == (
        ToolCall(id="call_0", name="get_weather", arguments='{"city": "Oslo"}'),
        ToolCall(id="fc-2", name="get_weather", arguments='{"city": "Bergen"}'))


# -- errors --------------------------------------------------------------------------------------


async def test_rate_limit_reads_retry_info_from_the_body(wire: Wire) -> None:
    wire.reply(httpx.Response(429, json={"error": {
        "code": 429, "message": "Resource has been exhausted (e.g. check quota).",
        "status": "RESOURCE_EXHAUSTED",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]}}))
    with pytest.raises(RateLimited, match="exhausted") as info:
        await provider(wire).complete(request())
    assert info.value.retry_after == 37.0


async def test_retry_after_header_wins(wire: Wire) -> None:
    wire.reply(httpx.Response(429, headers={"retry-after": "3"}, json={"error": {
        "code": 429, "message": "slow", "status": "RESOURCE_EXHAUSTED",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]}}))
    with pytest.raises(RateLimited) as info:
        await provider(wire).complete(request())
    assert info.value.retry_after == 3.0


async def test_invalid_key_400_is_an_authentication_error(wire: Wire) -> None:
    wire.reply(httpx.Response(400, json={"error": {
        "code": 400, "message": "API key not valid. Please pass a valid API key.",
        "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                     "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}}))
    with pytest.raises(AuthenticationError, match="API key not valid"):
        await provider(wire).complete(request())


@pytest.mark.parametrize(("status", "error"), [
    (400, BadRequest), (403, AuthenticationError), (404, BadRequest),
    (500, ProviderUnavailable), (503, ProviderUnavailable), (504, ProviderTimeout),
])
async def test_status_classification(wire: Wire, status: int, error: type[Exception]) -> None:
    wire.reply(httpx.Response(status, json=[{"error": {"code": status, "message": "nope",
                                                       "status": "X"}}]))
    with pytest.raises(error, match="nope"):
        await provider(wire).complete(request())


async def test_transport_errors(wire: Wire) -> None:
    wire.reply(httpx.RemoteProtocolError("peer closed"), httpx.PoolTimeout("pool"))
    with pytest.raises(ProviderUnavailable):
        await provider(wire).complete(request())
    with pytest.raises(ProviderTimeout):
        await provider(wire).complete(request())


async def test_key_never_in_errors(wire: Wire) -> None:
    wire.reply(httpx.Response(403, json={"error": {"code": 403, "message": f"key {KEY} denied"}}))
    with pytest.raises(AuthenticationError) as info:
        await provider(wire).complete(request())
    assert KEY not in str(info.value)
    assert KEY not in repr(provider(wire))


@pytest.mark.parametrize("body", [
    b"<html>oops</html>",
    b"{}",
    b'{"candidates": []}',
    b'{"candidates": [{"content": {"parts": [{"text": "x"}]}}]}',
    b'{"candidates": [{"content": {"parts": [{"functionCall": {"args": {}}}]},'
    b' "finishReason": "STOP"}]}',
    b'{"candidates": [{"content": {"parts": [{"text": 5}]}, "finishReason": "STOP"}]}',
    b'{"candidates": "nope"}',
])
async def test_malformed_bodies_are_typed(wire: Wire, body: bytes) -> None:
    wire.reply(httpx.Response(200, content=body))
    with pytest.raises(MalformedResponse):
        await provider(wire).complete(request())


async def test_unknown_finish_reason_is_malformed_naming_it(wire: Wire) -> None:
    wire.reply(httpx.Response(200, json=response([{"text": "x"}], finish="NAPPING")))
    with pytest.raises(MalformedResponse, match="'NAPPING'"):
        await provider(wire).complete(request())


async def test_in_stream_error_is_typed(wire: Wire) -> None:
    wire.reply(sse_response(response([{"text": "Hel"}], finish=None),
                            {"error": {"code": 503, "message": "The model is overloaded.",
                                       "status": "UNAVAILABLE"}}))
    with pytest.raises(ProviderUnavailable, match="overloaded"):
        await drain(provider(wire).stream(request()))


async def test_truncated_stream_is_malformed(wire: Wire) -> None:
    wire.reply(sse_response(response([{"text": "Hel"}], finish=None)))
    with pytest.raises(MalformedResponse, match="truncated"):
        await drain(provider(wire).stream(request()))


async def test_unknown_finish_reason_in_stream(wire: Wire) -> None:
    wire.reply(sse_response(response([{"text": "x"}], finish="NAPPING")))
    with pytest.raises(MalformedResponse, match="'NAPPING'"):
        await drain(provider(wire).stream(request()))


async def test_connection_reset_mid_stream(wire: Wire) -> None:
    wire.reply(broken_sse_response(response([{"text": "Hel"}], finish=None)))
    seen: list[Any] = []
    with pytest.raises(ProviderUnavailable, match="ReadError"):
        await drain(provider(wire).stream(request()), seen)
    assert [c.text for c in seen] == ["Hel"]


async def test_error_status_on_stream(wire: Wire) -> None:
    wire.reply(httpx.Response(429, headers={"retry-after": "1"},
                              json={"error": {"code": 429, "message": "quota"}}))
    with pytest.raises(RateLimited) as info:
        await drain(provider(wire).stream(request()))
    assert info.value.retry_after == 1.0
