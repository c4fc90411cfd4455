"""Streamed calls: fallback before the first token, StreamInterrupted after it."""

from __future__ import annotations

import asyncio

import pytest

from buttress.errors import MalformedResponse, ProviderUnavailable, StreamInterrupted
from buttress.runtime import Call, Outcome, Policy, Runtime, Target
from buttress.testing import FakeProvider, Reply
from buttress.types import CallRequest, Message, StreamChunk

REQUEST = CallRequest(model="", messages=(Message.user("hello"),))


def make_call(*targets: str, **policy: object) -> Call:
    return Call(request=REQUEST, targets=tuple(Target(provider=t, model="m") for t in targets),
                policy=Policy(**policy), call_id="c", trace_id="t")


class Recorder:
    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    async def before(self, call: Call) -> None:
        return None

    async def after(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


async def collect(runtime: Runtime, call: Call) -> tuple[list[StreamChunk], object]:
    chunks: list[StreamChunk] = []
    async with runtime.stream(call) as stream:
        async for chunk in stream:
            chunks.append(chunk)
    return chunks, stream.result


async def test_stream_yields_chunks_and_a_result_with_ttft() -> None:
    recorder = Recorder()
    runtime = Runtime({"a": FakeProvider(name="a", script=["hello streaming world"])},
                      hooks=[recorder])
    chunks, result = await collect(runtime, make_call("a"))
    assert "".join(c.text for c in chunks) == "hello streaming world"
    assert len([c for c in chunks if c.text]) > 1
    assert result is not None
    assert result.text == "hello streaming world"  # type: ignore[attr-defined]
    assert result.ttft_s is not None  # type: ignore[attr-defined]
    assert [o.status for o in recorder.outcomes] == ["ok"]


async def test_failure_before_first_token_falls_back() -> None:
    a = FakeProvider(name="a", script=[ProviderUnavailable("down", status=503)])
    b = FakeProvider(name="b", script=["from b"])
    runtime = Runtime({"a": a, "b": b})
    chunks, result = await collect(runtime, make_call("a", "b", max_retries=0))
    assert "".join(c.text for c in chunks) == "from b"
    assert [(x.kind, x.status) for x in result.attempts] == [  # type: ignore[attr-defined]
        ("primary", "error"), ("fallback", "ok")]


async def test_ttft_timeout_falls_back() -> None:
    a = FakeProvider(name="a", script=[Reply(text="slow", delay_s=5)])
    b = FakeProvider(name="b", script=["fast"])
    runtime = Runtime({"a": a, "b": b})
    chunks, result = await collect(runtime, make_call("a", "b", max_retries=0,
                                                      ttft_timeout_s=0.05))
    assert "".join(c.text for c in chunks) == "fast"
    assert result.attempts[0].error_kind == "timeout"  # type: ignore[attr-defined]


async def test_failure_after_first_token_interrupts_without_fallback() -> None:
    recorder = Recorder()
    a = FakeProvider(name="a", script=[Reply(text="partial answer that breaks", chunk_size=4,
                                             stream_error=ProviderUnavailable("reset"),
                                             fail_after_chunks=2)])
    b = FakeProvider(name="b", script=["from b"])
    runtime = Runtime({"a": a, "b": b}, hooks=[recorder])
    seen: list[str] = []

    async def consume() -> None:
        async with runtime.stream(make_call("a", "b")) as stream:
            async for chunk in stream:
                seen.append(chunk.text)

    with pytest.raises(StreamInterrupted) as info:
        await consume()
    assert "".join(seen) == "partial "
    assert info.value.partial_text == "partial "
    assert b.requests == []  # no fallback after tokens reached the caller
    [outcome] = recorder.outcomes
    assert outcome.status == "error"
    assert [x.status for x in outcome.attempts] == ["error"]


async def test_truncated_stream_is_a_typed_error() -> None:
    class Truncated(FakeProvider):
        async def stream(self, request: CallRequest):  # type: ignore[no-untyped-def,override]
            yield StreamChunk(text="cut")
            yield StreamChunk(text=" off")  # and no finish reason

    runtime = Runtime({"a": Truncated(name="a")})
    with pytest.raises(StreamInterrupted) as info:
        await collect(runtime, make_call("a"))
    assert "truncated" in str(info.value)
    assert isinstance(info.value.__cause__, MalformedResponse)


async def test_empty_stream_is_retried_as_malformed() -> None:
    class Empty(FakeProvider):
        calls = 0

        async def stream(self, request: CallRequest):  # type: ignore[no-untyped-def,override]
            Empty.calls += 1
            if Empty.calls == 1:
                return
            yield StreamChunk(text="second time", finish_reason="stop")

    runtime = Runtime({"a": Empty(name="a")})
    chunks, result = await collect(runtime, make_call("a", backoff_base_s=0,
                                                      backoff_max_s=0))
    assert result.attempts[0].error_kind == "malformed_response"  # type: ignore[attr-defined]
    assert "".join(c.text for c in chunks) == "second time"


async def test_leaving_early_closes_the_provider_stream_and_records_cancelled() -> None:
    closed = asyncio.Event()
    recorder = Recorder()

    class Endless(FakeProvider):
        async def stream(self, request: CallRequest):  # type: ignore[no-untyped-def,override]
            try:
                while True:
                    yield StreamChunk(text="x")
                    await asyncio.sleep(0)
            finally:
                closed.set()

    runtime = Runtime({"a": Endless(name="a")}, hooks=[recorder])
    async with runtime.stream(make_call("a")) as stream:
        async for _chunk in stream:
            break
    assert closed.is_set()
    assert [(o.status, o.partial_text) for o in recorder.outcomes] == [("cancelled", "x")]


async def test_stream_deadline_mid_stream_interrupts() -> None:
    a = FakeProvider(name="a", script=[Reply(text="abcdefgh", chunk_size=1, chunk_delay_s=0.05)])
    runtime = Runtime({"a": a})
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(StreamInterrupted) as info:
        await collect(runtime, make_call("a", deadline_s=0.12))
    assert loop.time() - start < 0.12 + 0.05
    assert "deadline" in str(info.value)


async def test_stream_deadline_passing_while_the_consumer_is_busy_interrupts() -> None:
    # The deadline passes between two reads: the next read ends the stream, without waiting.
    a = FakeProvider(name="a", script=[Reply(text="abcdefgh", chunk_size=1)])
    recorder = Recorder()
    runtime = Runtime({"a": a}, hooks=[recorder])
    seen: list[str] = []

    async def slow_consumer() -> None:
        async with runtime.stream(make_call("a", deadline_s=0.05)) as stream:
            async for chunk in stream:
                seen.append(chunk.text)
                await asyncio.sleep(0.08)  # the consumer, not the provider, is slow

    with pytest.raises(StreamInterrupted) as info:
        await slow_consumer()
    assert seen == ["a"]
    assert "deadline" in str(info.value)
    assert info.value.partial_text == "a"
    assert [(o.status, o.partial_text) for o in recorder.outcomes] == [("error", "a")]


async def test_an_outside_cancellation_mid_stream_stays_a_cancellation() -> None:
    # Only the stream's own deadline becomes StreamInterrupted; cancelling the consuming task is
    # a cancellation, recorded as such, however close to the deadline it comes.
    a = FakeProvider(name="a", script=[Reply(text="abcdefgh", chunk_size=1, chunk_delay_s=0.05)])
    recorder = Recorder()
    runtime = Runtime({"a": a}, hooks=[recorder])
    task = asyncio.ensure_future(collect(runtime, make_call("a", deadline_s=5.0)))
    await asyncio.sleep(0.12)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [o.status for o in recorder.outcomes] == ["cancelled"]


class DictCache:
    """The smallest cache: by the last user message."""

    def __init__(self) -> None:
        self.entries: dict[str, object] = {}

    async def lookup(self, call: Call):  # type: ignore[no-untyped-def]
        hit = self.entries.get(call.request.messages[-1].content or "")
        if hit is None:
            return None
        return hit.model_copy(update={"call_id": call.call_id, "cache_hit": True})  # type: ignore[attr-defined]

    async def store(self, call: Call, result: object) -> None:
        self.entries[call.request.messages[-1].content or ""] = result


async def test_cache_seam_answers_without_the_provider_and_honours_the_mode() -> None:
    recorder = Recorder()
    fake = FakeProvider(name="a", script=["first", "second", "third"])
    runtime = Runtime({"a": fake}, hooks=[recorder], cache=DictCache())
    first = await runtime.complete(make_call("a"))
    hit = await runtime.complete(make_call("a"))
    assert (first.text, hit.text, hit.cache_hit) == ("first", "first", True)
    chunks, streamed = await collect(runtime, make_call("a"))
    assert "".join(c.text for c in chunks) == "first"
    assert streamed.cache_hit  # type: ignore[attr-defined]
    assert len(fake.requests) == 1
    bypass = await runtime.complete(make_call("a").model_copy(update={"cache": "bypass"}))
    refresh = await runtime.complete(make_call("a").model_copy(update={"cache": "refresh"}))
    after = await runtime.complete(make_call("a"))
    assert (bypass.text, refresh.text, after.text) == ("second", "third", "third")
    assert [o.result.cache_hit for o in recorder.outcomes] == [  # type: ignore[union-attr]
        False, True, True, False, False, True]
