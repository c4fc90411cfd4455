"""The gateway over a real OpenAI-compatible upstream on a loopback socket: the OpenAI adapter,
the pooled transport and the batched relay of a stream, as `buttress serve` runs them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from buttress.errors import StreamInterrupted
from buttress.providers.http import FastClient
from buttress.providers.openai_compat import OpenAICompatProvider
from buttress.providers.transport import PooledTransport
from buttress.types import Message, StreamChunk

from .harness import Harness

UPSTREAM_KEY = "sk-upstream-SECRET-42"
Script = list[bytes | float]  # what the upstream writes, a float is a pause (seconds)


def event(delta: dict[str, Any] | None = None, finish: str | None = None,
          usage: dict[str, int] | None = None, obfuscation: str | None = None) -> bytes:
    body: dict[str, Any] = {"id": "chatcmpl-up", "object": "chat.completion.chunk",
                            "created": 1, "model": "gpt-4o-mini-2024-07-18",
                            "system_fingerprint": "fp_up", "choices": []}
    if delta is not None:
        body["choices"] = [{"index": 0, "delta": delta, "logprobs": None,
                            "finish_reason": finish}]
    if usage is not None:
        body["usage"] = usage
    if obfuscation is not None:  # OpenAI's padding, after everything else
        body["obfuscation"] = obfuscation
    return b"data: " + json.dumps(body).encode() + b"\n\n"


USAGE = {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}
DONE = b"data: [DONE]\n\n"


class Upstream:
    """Answers every POST with a chunked SSE body written as ``script`` says."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.answered = asyncio.Event()  # a whole response has been written

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                self.requests.append(head + await reader.readexactly(length))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")
                for step in self.script:
                    if isinstance(step, float):
                        await writer.drain()
                        await asyncio.sleep(step)
                    else:
                        writer.write(b"%x\r\n%s\r\n" % (len(step), step))
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                self.answered.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@pytest.fixture
async def through(tmp_path: Path) -> AsyncIterator[Callable[[Script], Any]]:
    """A gateway whose model ``gpt`` is served by an upstream writing ``script``."""
    servers: list[asyncio.Server] = []
    upstreams: list[Upstream] = []
    clients: list[FastClient] = []
    harnesses: list[Harness] = []

    async def start(script: Script) -> tuple[Harness, Upstream]:
        upstream = Upstream(script)
        upstreams.append(upstream)
        server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        clients.append(FastClient(PooledTransport()))
        provider = OpenAICompatProvider("mock", base_url=f"http://127.0.0.1:{port}/v1",
                                        api_key=UPSTREAM_KEY, http=clients[-1])
        harness = Harness(tmp_path / f"h{len(harnesses)}", upstream=provider)
        harnesses.append(harness)
        return harness, upstream

    yield start
    for harness in harnesses:
        await harness.aclose()
    for client in clients:
        await client.aclose()
    for upstream in upstreams:
        for writer in upstream.writers:
            writer.close()
    for server in servers:
        server.close()
        await server.wait_closed()


async def stream_through(harness: Harness) -> list[ChatCompletionChunk]:
    stream = await harness.sdk().chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True})
    return [c async for c in stream]


async def test_a_stream_is_relayed_whole_and_recorded(through: Any) -> None:
    harness, upstream = await through([
        event({"role": "assistant", "content": ""}), 0.01,
        event({"content": "Hel"}) + event({"content": "lo, "}), 0.01,  # with the first token
        event({"content": "wor"}), 0.01,
        event({"content": "ld"})[:25], 0.01, event({"content": "ld"})[25:],  # one split
        event({}, finish="stop"), event(usage=USAGE), DONE])
    chunks = await stream_through(harness)

    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk.model_dump())
    texts = [c.choices[0].delta.content for c in chunks if c.choices]
    assert "".join(t or "" for t in texts) == "Hello, world"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (11, 5)
    assert {c.model for c in chunks} == {"gpt"}  # the alias asked for, not the upstream's
    assert len({c.id for c in chunks}) == 1
    assert json.loads(upstream.requests[0].split(b"\r\n\r\n", 1)[1])["stream"] is True

    [record] = harness.records()
    assert record.status == "ok"
    assert record.output_text == "Hello, world"
    assert (record.prompt_tokens, record.completion_tokens) == (11, 5)
    assert record.finish_reason == "stop"
    assert record.model_served == "gpt-4o-mini-2024-07-18"
    assert record.system_fingerprint == "fp_up"
    assert chunks[0].id == f"chatcmpl-{record.call_id}"


async def test_a_stream_padded_as_openai_pads_it_is_relayed_whole(through: Any) -> None:
    texts = ["Hel", "lo", ', "w', 'or\\"', '"}],"obfuscation":"', "ld ☃"]
    pads = ["a", "Zx0_-9", "", "qq", "☃", "b\"c"]
    harness, _ = await through([
        event({"role": "assistant", "content": ""}, obfuscation="k3"), 0.01,
        *(step for text, pad in zip(texts, pads, strict=True)
          for step in (event({"content": text}, obfuscation=pad), 0.005)),
        event({}, finish="stop", obfuscation="x"), event(usage=USAGE, obfuscation="yz"), DONE])
    chunks = await stream_through(harness)

    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk.model_dump())
    assert [c.choices[0].delta.content for c in chunks if c.choices][1:-1] == texts
    assert all(c.obfuscation is None for c in chunks)  # the upstream's padding stays there
    [record] = harness.records()
    assert (record.status, record.output_text) == ("ok", "".join(texts))


async def test_an_upstream_failure_mid_stream_ends_it_with_an_error_event(through: Any) -> None:
    failure = b"data: " + json.dumps({"error": {
        "message": f"upstream overloaded (key {UPSTREAM_KEY})", "type": "server_error",
        "code": "overloaded"}}).encode() + b"\n\n"
    harness, _ = await through([event({"role": "assistant", "content": "Hel"}), 0.01,
                                event({"content": "lo"}) + failure])
    seen: list[str] = []

    async def read(stream: Any) -> None:
        async for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "")

    stream = await harness.sdk().chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "hi"}], stream=True)
    with pytest.raises(openai.APIError, match="overloaded") as raised:
        await read(stream)
    assert "".join(seen) == "Hello"  # every token sent before the failure reached the client
    assert UPSTREAM_KEY not in str(raised.value)
    [record] = harness.records()
    assert (record.status, record.error_kind) == ("error", "stream_interrupted")
    assert record.output_text == "Hello"  # what the client was shown
    assert UPSTREAM_KEY not in record.model_dump_json()


async def test_the_python_client_reads_the_same_upstream_as_chunks(through: Any) -> None:
    harness, _ = await through([
        event({"role": "assistant", "content": ""}), 0.01,
        event({"content": "Hel"}) + event({"content": "lo"}), 0.01,
        event({}, finish="stop"), event(usage=USAGE), DONE])
    async with harness.client.stream_complete("gpt", [Message.user("hi")]) as stream:
        chunks = [chunk async for chunk in stream]
    assert all(isinstance(c, StreamChunk) for c in chunks)  # never a bare str
    assert [c.text for c in chunks if c.text] == ["Hel", "lo"]
    assert stream.result is not None
    assert stream.result.completion.text == "Hello"
    assert stream.result.completion.usage.completion_tokens == 5


def _texts(batches: list[list[StreamChunk | str]]) -> str:
    return "".join(i if isinstance(i, str) else i.text for batch in batches for i in batch)


async def test_a_relay_writes_nothing_more_until_a_slow_write_is_done(through: Any) -> None:
    harness, upstream = await through([
        event({"role": "assistant", "content": "a"}), 0.01, event({"content": "b"}), 0.01,
        event({"content": "c"}), 0.01, event({"content": "d"}), 0.01,
        event({}, finish="stop"), event(usage=USAGE), DONE])
    written: list[list[StreamChunk | str]] = []
    consumer_ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def write(batch: list[StreamChunk | str]) -> Any:
        written.append(list(batch))
        return consumer_ready if len(written) == 2 else None  # the second takes a while

    async with harness.client.stream_complete("gpt", [Message.user("hi")]) as stream:
        relay = asyncio.create_task(stream.relay(write))
        for _ in range(200):
            if len(written) == 2:
                break
            await asyncio.sleep(0.005)  # waiting for the upstream's pauses, not timing
        await asyncio.wait_for(upstream.answered.wait(), 5)  # the rest is sent meanwhile
        await asyncio.sleep(0.05)  # and read off the socket, into the transport's buffer
        assert _texts(written) == "ab"  # nothing more while the write is pending
        consumer_ready.set_result(None)
        await asyncio.wait_for(relay, 5)
    assert _texts(written) == "abcd"
    assert len(written) == 3  # what arrived while the consumer was busy: one batch
    assert stream.result is not None
    assert stream.result.completion.text == "abcd"
    assert stream.result.completion.usage.completion_tokens == 5
    [record] = harness.records()
    assert (record.status, record.output_text) == ("ok", "abcd")


async def test_a_relayed_stream_past_its_deadline_is_interrupted(through: Any) -> None:
    harness, _ = await through([event({"role": "assistant", "content": "Hel"}), 0.01,
                                event({"content": "lo"}), 2.0, event({}, finish="stop"), DONE])
    written: list[list[StreamChunk | str]] = []
    stream = harness.client.stream_complete("gpt", [Message.user("hi")],
                                            policy={"deadline_s": 0.3})
    with pytest.raises(StreamInterrupted, match="deadline") as raised:
        async with stream:
            await stream.relay(lambda batch: written.append(batch))  # type: ignore[func-returns-value]
    assert _texts(written) == "Hello"
    assert raised.value.partial_text == "Hello"
    [record] = harness.records()
    assert (record.status, record.error_kind) == ("error", "stream_interrupted")
    assert record.output_text == "Hello"


FAILURE = b"data: " + json.dumps({"error": {"message": "upstream overloaded",
                                            "type": "server_error"}}).encode() + b"\n\n"


@pytest.mark.parametrize("how", ["relay", "iterate"])
@pytest.mark.parametrize("ending", ["upstream error", "deadline", "write fails"])
async def test_a_stream_ended_mid_way_leaves_nothing_for_the_collector(
        through: Any, how: str, ending: str, errors_in_cycles: Any) -> None:
    # a failure's traceback holds every frame of the read: while any of them held the failure
    # (the reader's frame, the pusher's future), each interrupted stream left some 150 objects
    # that only the collector could free
    harness, _ = await through([event({"role": "assistant", "content": "Hel"}), 0.01,
                                event({"content": "lo"}) + (FAILURE if ending == "upstream error"
                                                            else b""), 1.0,
                                event({}, finish="stop"), DONE])

    def write(batch: list[StreamChunk | str]) -> None:
        if ending == "write fails" and _texts([batch]) == "lo":
            raise ConnectionResetError("the client is gone")

    async def read() -> None:
        with contextlib.suppress(StreamInterrupted, ConnectionResetError):
            async with harness.client.stream_complete(
                    "gpt", [Message.user("hi")], policy={"deadline_s": 0.3}) as stream:
                if how == "relay":
                    await stream.relay(write)
                else:
                    async for chunk in stream:
                        write([chunk])

    await read()  # the connection pool and the breaker's first use
    with errors_in_cycles() as left:
        await read()
        records = harness.records()  # the ledger's writer is done with the failure
    assert left == []
    assert len(records) == 2
    assert {r.status for r in records} == {"cancelled" if ending == "write fails" else "error"}


async def test_a_relay_whose_write_fails_is_recorded_as_cancelled(through: Any) -> None:
    harness, _ = await through([event({"role": "assistant", "content": "Hel"}), 0.01,
                                event({"content": "lo"}), 0.05,
                                event({}, finish="stop"), DONE])

    def write(batch: list[StreamChunk | str]) -> None:
        if _texts([batch]) == "lo":
            raise ConnectionResetError("the client is gone")

    with pytest.raises(ConnectionResetError):
        async with harness.client.stream_complete("gpt", [Message.user("hi")]) as stream:
            await stream.relay(write)
    [record] = harness.records()
    assert record.status == "cancelled"


async def test_a_relay_cancelled_mid_stream_is_recorded_as_cancelled(through: Any) -> None:
    harness, _ = await through([event({"role": "assistant", "content": "Hel"}), 0.01,
                                       event({"content": "lo"}), 5.0,
                                       event({}, finish="stop"), DONE])
    written: list[list[StreamChunk | str]] = []

    async def relay() -> None:
        async with harness.client.stream_complete("gpt", [Message.user("hi")]) as stream:
            await stream.relay(lambda batch: written.append(batch))  # type: ignore[func-returns-value]

    task = asyncio.create_task(relay())
    for _ in range(200):
        if _texts(written) == "Hello":
            break
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [record] = harness.records()
    assert (record.status, record.output_text) == ("cancelled", "Hello")


async def test_a_client_that_stops_reading_gets_the_whole_stream_once_it_reads_again(
        tmp_path: Path) -> None:
    """The real server over a real upstream: 8 MB of text while the client reads nothing
    for a while (its socket fills, uvicorn's send waits, the relay stops until it is done,
    the upstream's bytes wait in the transport), then the client reads it all, in order."""
    from .test_server import landed, start

    texts = [f"{i:06d}" + "x" * 8000 for i in range(1000)]
    upstream = Upstream([event({"role": "assistant", "content": ""}), 0.01,
                         *[event({"content": t}) for t in texts],
                         event({}, finish="stop"), event(usage=USAGE), DONE])
    listening = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    http = FastClient(PooledTransport())
    provider = OpenAICompatProvider("mock", base_url=f"http://127.0.0.1:{port}/v1",
                                    api_key=UPSTREAM_KEY, http=http)
    server, task, url = await start(tmp_path, provider)
    try:
        host, gw_port = url.removeprefix("http://").split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(gw_port)))
        reader, writer = await asyncio.open_connection(sock=sock, limit=2**20)
        body = json.dumps({"model": "gpt", "stream": True,
                           "messages": [{"role": "user", "content": "hi"}]}).encode()
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))
        await writer.drain()
        await asyncio.sleep(0.5)  # not reading: everything between fills up
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        call_id = next(line.split(b": ")[1].decode() for line in head.split(b"\r\n")
                       if line.lower().startswith(b"x-buttress-call-id"))
        received = []
        while (size := int((await reader.readuntil(b"\r\n"))[:-2], 16)) != 0:
            received.append(await reader.readexactly(size))
            await reader.readexactly(2)
        writer.close()
        events = [e for e in b"".join(received).split(b"\n\n") if e]
        assert events[-1] == b"data: [DONE]"
        chunks = [json.loads(e.removeprefix(b"data: ")) for e in events[:-1]]
        got = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
        assert [t for t in got if t] == texts  # every one, in order
        found = await landed(tmp_path, call_id)
        assert found is not None
        assert found[0].status == "ok"
        assert found[0].output_text == "".join(texts)
    finally:
        server.should_exit = True
        await task
        await http.aclose()
        for w in upstream.writers:
            w.close()
        listening.close()
