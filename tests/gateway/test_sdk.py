"""The official openai SDK against the gateway: plain, streamed, tools, parse, models, errors."""

from __future__ import annotations

import json

import openai
import pytest
from openai.types import Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel

from buttress.errors import ProviderUnavailable
from buttress.testing.fake import Reply
from buttress.types import TokenLogprob, ToolCall, TopLogprob, Usage

from .harness import Harness


async def test_plain_completion_validates_and_carries_metadata(harness: Harness) -> None:
    harness.mock.script = iter(["Hello there"])
    harness.mock.__post_init__()
    sdk = harness.sdk()
    raw = await sdk.chat.completions.with_raw_response.create(
        model="gpt", messages=[{"role": "user", "content": "hi"}])
    completion = raw.parse()
    ChatCompletion.model_validate(completion.model_dump())
    assert completion.choices[0].message.content == "Hello there"
    assert completion.model == "gpt"
    assert completion.usage is not None
    assert completion.usage.total_tokens > 0
    call_id = raw.headers["x-buttress-call-id"]
    assert raw.headers["x-buttress-attempts"] == "1"
    assert raw.headers["x-buttress-cache-hit"] == "false"
    assert float(raw.headers["x-buttress-cost-usd"]) > 0
    records = harness.records()
    assert [r.call_id for r in records] == [call_id]
    assert records[0].status == "ok"


async def test_stream_with_usage(harness: Harness) -> None:
    harness.mock.script = iter([Reply(text="streamed words here", chunk_size=4)])
    harness.mock.__post_init__()
    sdk = harness.sdk()
    stream = await sdk.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    for c in chunks:
        ChatCompletionChunk.model_validate(c.model_dump())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "streamed words here"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


async def test_tool_calls_plain_and_streamed(harness: Harness) -> None:
    call = ToolCall(id="call_1", name="lookup", arguments='{"order": 4471}')
    harness.mock.script = iter([Reply(tool_calls=(call,)), Reply(tool_calls=(call,))])
    harness.mock.__post_init__()
    sdk = harness.sdk()
    tools = [{"type": "function", "function": {
        "name": "lookup", "parameters": {"type": "object",
                                         "properties": {"order": {"type": "integer"}}}}}]
    completion = await sdk.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "where is 4471"}], tools=tools,
        tool_choice={"type": "function", "function": {"name": "lookup"}})
    ChatCompletion.model_validate(completion.model_dump())
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    assert choice.message.tool_calls[0].function.name == "lookup"
    assert json.loads(choice.message.tool_calls[0].function.arguments) == {"order": 4471}
    sent = harness.mock.requests[0]
    assert sent.tools[0].name == "lookup"
    assert sent.tool_choice == "lookup"

    stream = await sdk.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "again"}], tools=tools, stream=True)
    chunks = [c async for c in stream]
    deltas = [t for c in chunks for t in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id == "call_1"
    assert deltas[0].function is not None
    assert deltas[0].function.name == "lookup"

    # a follow-up turn with the tool's answer is accepted
    await sdk.chat.completions.create(model="gpt", messages=[
        {"role": "user", "content": "where is 4471"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "lookup", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "shipped"}])
    assert harness.mock.requests[-1].messages[-1].tool_call_id == "call_1"


class Triage(BaseModel):
    category: str
    urgent: bool


async def test_parse_with_pydantic_model(harness: Harness) -> None:
    harness.mock.script = iter(['{"category": "billing", "urgent": true}'])
    harness.mock.__post_init__()
    sdk = harness.sdk()
    completion = await sdk.chat.completions.parse(
        model="gpt", messages=[{"role": "user", "content": "refund!"}], response_format=Triage)
    assert completion.choices[0].message.parsed == Triage(category="billing", urgent=True)
    fmt = harness.mock.requests[0].response_format
    assert fmt is not None
    assert fmt.type == "json_schema"
    assert fmt.name == "Triage"
    assert fmt.json_schema is not None
    assert "category" in fmt.json_schema["properties"]


async def test_logprobs_pass_through(harness: Harness) -> None:
    lp = (TokenLogprob(token="Hi", logprob=-0.1, top=(TopLogprob(token="Hi", logprob=-0.1),)),)
    harness.mock.script = iter([Reply(text="Hi", logprobs=lp)])
    harness.mock.__post_init__()
    completion = await harness.sdk().chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "hi"}], logprobs=True,
        top_logprobs=1)
    ChatCompletion.model_validate(completion.model_dump())
    content = completion.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content is not None
    assert content[0].token == "Hi"
    assert content[0].top_logprobs[0].logprob == pytest.approx(-0.1)
    assert harness.mock.requests[0].logprobs
    assert harness.mock.requests[0].top_logprobs == 1


async def test_model_listing(harness: Harness) -> None:
    models = [m async for m in harness.sdk().models.list()]
    for m in models:
        Model.model_validate(m.model_dump())
    ids = {m.id: m.owned_by for m in models}
    assert ids == {"gpt": "mock", "backup": "backup", "greet": "buttress-feature"}


async def test_feature_routing_appends_messages_after_prompt(harness: Harness) -> None:
    harness.mock.script = iter(["hello Ada"])
    harness.mock.__post_init__()
    raw = await harness.sdk().chat.completions.with_raw_response.create(
        model="greet", messages=[{"role": "user", "content": "I am Ada"}],
        extra_headers={"x-buttress-tags": "a, b", "x-buttress-user": "u1",
                       "x-buttress-session": "s1"})
    assert raw.parse().choices[0].message.content == "hello Ada"
    sent = harness.mock.requests[0]
    assert [m.role for m in sent.messages] == ["system", "user"]
    assert sent.messages[0].content.startswith("You greet people")
    assert sent.messages[1].content == "I am Ada"
    record = harness.records()[0]
    assert record.feature == "greet"
    assert record.tags == ("a", "b")
    assert record.user_id == "u1"
    assert record.session_id == "s1"


async def test_a_key_pasted_into_names_never_reaches_the_ledger(harness: Harness) -> None:
    # the usual slip: an API key where a user id, a tag or the model name belongs
    key = "sk-proj-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2"
    names = {"x-buttress-user": key, "x-buttress-session": f"s-{key}",
             "x-buttress-tags": f"team, {key}"}
    await harness.sdk().chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "hi"}], extra_headers=names)
    with pytest.raises(openai.NotFoundError):
        await harness.sdk().chat.completions.create(
            model=key, messages=[{"role": "user", "content": "hi"}], extra_headers=names)
    records = harness.records()
    assert sorted(r.status for r in records) == ["error", "ok"]
    assert all(key not in r.model_dump_json() for r in records)
    assert {(r.user_id, r.session_id, r.tags) for r in records} == {
        ("[REDACTED:secret]", "s-[REDACTED:secret]", ("team", "[REDACTED:secret]"))}
    assert [r.model_requested for r in records if r.status == "error"] == ["[REDACTED:secret]"]


async def test_fallback_shows_in_headers(harness: Harness) -> None:
    harness.mock.script = iter([ProviderUnavailable("down")] * 5)
    harness.mock.__post_init__()
    harness.backup.script = iter(["from backup"])
    harness.backup.__post_init__()
    raw = await harness.sdk().chat.completions.with_raw_response.create(
        model="greet", messages=[{"role": "user", "content": "hi"}])
    assert raw.parse().choices[0].message.content == "from backup"
    assert int(raw.headers["x-buttress-attempts"]) >= 2


async def test_error_mapping(harness: Harness) -> None:
    sdk = harness.sdk()
    with pytest.raises(openai.NotFoundError) as not_found:
        await sdk.chat.completions.create(model="nope",
                                          messages=[{"role": "user", "content": "x"}])
    assert not_found.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        await sdk.chat.completions.create(model="gpt", messages=[])
    assert bad.value.param == "messages"
    harness.mock.script = iter([ProviderUnavailable("down")] * 10)
    harness.mock.__post_init__()
    with pytest.raises(openai.APIStatusError) as upstream:
        await sdk.chat.completions.create(model="gpt",
                                          messages=[{"role": "user", "content": "x"}])
    assert upstream.value.status_code == 502
    records = harness.records()
    kinds = sorted(r.error_kind or "" for r in records)
    assert "model_not_found" in kinds
    assert "all_attempts_failed" in kinds
    assert all(r.status == "error" for r in records)


async def test_failure_mid_stream_is_an_sse_error(harness: Harness) -> None:
    harness.mock.script = iter([Reply(text="partial answer that breaks", chunk_size=4,
                                      stream_error=ProviderUnavailable("reset"),
                                      fail_after_chunks=2, usage=Usage())])
    harness.mock.__post_init__()
    stream = await harness.sdk().chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "hi"}], stream=True)
    got: list[ChatCompletionChunk] = []

    async def drain() -> None:
        async for chunk in stream:
            got.append(chunk)

    with pytest.raises(openai.APIError, match="stream failed"):
        await drain()
    assert "".join(c.choices[0].delta.content or "" for c in got) == "partial "
    assert harness.records()[0].error_kind == "stream_interrupted"
