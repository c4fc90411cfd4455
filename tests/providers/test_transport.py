"""The pooled HTTP/1.1 transport against a real socket server that answers as scripted."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable

import httpx
import orjson
import pytest

from buttress.errors import MalformedResponse, ProviderUnavailable, RateLimited
from buttress.providers.http import FastClient, iter_sse, open_stream, post_json
from buttress.providers.openai_compat import OpenAICompatProvider
from buttress.providers.transport import PooledTransport, _Response
from buttress.types import CallRequest, Message

Reply = Callable[[bytes], list[bytes]]


class Server:
    """Answers each request on a connection with the chunks ``reply(request)`` returns; a
    chunk ``b"<close>"`` closes the connection there, ``b"<pause>"`` waits 50 ms."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: set[asyncio.StreamWriter] = set()  # connections still open

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                for chunk in self.reply(head + body):
                    if chunk == b"<close>":
                        writer.close()
                        return
                    if chunk == b"<pause>":
                        await asyncio.sleep(0.05)
                        continue
                    writer.write(chunk)
                    await writer.drain()
                    await asyncio.sleep(0)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Reply], asyncio.Future[tuple[Server, str]]]]:
    servers: list[tuple[asyncio.Server, Server]] = []

    async def start(reply: Reply) -> tuple[Server, str]:
        server = Server(reply)
        srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        servers.append((srv, server))
        port = srv.sockets[0].getsockname()[1]
        return server, f"http://127.0.0.1:{port}"

    yield start  # type: ignore[misc]
    for srv, server in servers:
        srv.close()
        for writer in server.writers:  # connections the test left open: their handlers end
            writer.close()
    await asyncio.sleep(0.01)


def _chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked body."""
    return hex(len(data))[2:].encode() + b"\r\n" + data + b"\r\n"


def json_reply(body: bytes = b'{"ok": true}', status: bytes = b"200 OK",
               extra: bytes = b"") -> Reply:
    return lambda _req: [b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                         + extra + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n",
                         body]


async def test_json_posts_reuse_one_keep_alive_connection(serve) -> None:  # type: ignore[no-untyped-def]
    server, base = await serve(json_reply())
    client = FastClient(PooledTransport())
    for _ in range(5):
        data = await post_json(client, base + "/v1/x", {"a": 1}, {"Authorization": "Bearer k"},
                               provider="p", model="m")
        assert data == {"ok": True}
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /v1/x HTTP/1.1\r\n")
    assert b"Authorization: Bearer k" in first
    assert first.endswith(b'{"a":1}')
    await client.aclose()


async def test_a_response_read_to_its_end_is_freed_without_the_collector(serve) -> None:  # type: ignore[no-untyped-def]
    # a response's state and its parser once held each other: a cycle on every request, freed
    # only by the collector (a pause of milliseconds at the gateway's threshold)
    _server, base = await serve(json_reply())
    stream_base = (await serve(lambda _req: [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked"
        b"\r\n\r\n", _chunk(b"data: a\n\n"), _chunk(b"data: b\n\n"), b"0\r\n\r\n"]))[1]
    client = FastClient(PooledTransport())
    gc.collect()
    gc.disable()
    try:
        for _ in range(5):
            assert await post_json(client, base, {}, {}, provider="p", model="m") == {"ok": True}
            async with open_stream(client, stream_base, {}, {}, provider="p", model="m") as body:
                assert b"".join([part async for part in body]).count(b"data:") == 2
        alive = [o for o in gc.get_objects() if type(o) is _Response]
        # only each pooled connection's latest response, which it holds until its next request
        assert len(alive) == 2
    finally:
        gc.enable()
    await client.aclose()


async def test_concurrent_requests_open_parallel_connections_then_reuse(serve) -> None:  # type: ignore[no-untyped-def]
    server, base = await serve(json_reply())
    transport = PooledTransport()
    client = FastClient(transport)
    calls = [post_json(client, base, {}, {}, provider="p", model="m") for _ in range(20)]
    assert len(await asyncio.gather(*calls)) == 20
    opened = transport.opened
    assert opened == server.connections
    await asyncio.gather(*[post_json(client, base, {}, {}, provider="p", model="m")
                           for _ in range(opened)])
    assert transport.opened == opened  # the second wave found them all idle
    await client.aclose()


async def test_chunked_body_and_connection_close_are_read_whole(serve) -> None:  # type: ignore[no-untyped-def]
    chunked = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
               b"5\r\n{\"a\":\r\n", b"3\r\n 1}\r\n", b"0\r\n\r\n"]
    server, base = await serve(lambda _r: chunked)
    client = FastClient(PooledTransport())
    assert await post_json(client, base, {}, {}, provider="p", model="m") == {"a": 1}
    assert await post_json(client, base, {}, {}, provider="p", model="m") == {"a": 1}
    assert server.connections == 1
    await client.aclose()

    closing = [b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", b'{"b": 2}', b"<close>"]
    server, base = await serve(lambda _r: closing)
    client = FastClient(PooledTransport())
    assert await post_json(client, base, {}, {}, provider="p", model="m") == {"b": 2}
    assert await post_json(client, base, {}, {}, provider="p", model="m") == {"b": 2}
    assert server.connections == 2  # not reused after Connection: close
    await client.aclose()


async def test_a_connection_the_server_closed_while_idle_is_retried_once(serve) -> None:  # type: ignore[no-untyped-def]
    replies = iter([[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", b"{}", b"<close>"]])
    server, base = await serve(lambda _r: next(replies, json_reply(b'{"again":1}')(b"")))
    client = FastClient(PooledTransport())
    assert await post_json(client, base, {}, {}, provider="p", model="m") == {}
    await asyncio.sleep(0.01)  # the server's FIN arrives while the connection is idle
    assert await post_json(client, base, {}, {}, provider="p", model="m") == {"again": 1}
    assert server.connections == 2
    await client.aclose()


async def test_error_statuses_and_broken_responses_are_typed(serve) -> None:  # type: ignore[no-untyped-def]
    _, base = await serve(json_reply(b'{"error": {"message": "slow down"}}',
                                     b"429 Too Many Requests", b"Retry-After: 3\r\n"))
    client = FastClient(PooledTransport())
    with pytest.raises(RateLimited) as info:
        await post_json(client, base, {}, {}, provider="p", model="m")
    assert info.value.retry_after == 3
    assert "slow down" in str(info.value)

    _, base = await serve(lambda _r: [b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"par",
                                      b"<close>"])
    with pytest.raises(ProviderUnavailable, match="closed mid-body"):
        await post_json(client, base, {}, {}, provider="p", model="m")

    _, base = await serve(lambda _r: [b"NOT HTTP AT ALL\r\n\r\n"])
    with pytest.raises(ProviderUnavailable, match="malformed HTTP response"):
        await post_json(client, base, {}, {}, provider="p", model="m")

    with pytest.raises(ProviderUnavailable):  # nobody listens there
        await post_json(client, "http://127.0.0.1:9", {}, {}, provider="p", model="m")
    await client.aclose()


async def test_sse_lines_split_across_chunks_and_crlf(serve) -> None:  # type: ignore[no-untyped-def]
    sse = [b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n"]
    for piece in (b"data: {\"a\"", b":1}\r", b"\n\r\nevent: x\rdata: two\r\n", b"\r\n",
                  b"data: [DONE]\n\n"):
        sse.append(_chunk(piece))
    sse.append(b"0\r\n\r\n")
    server, base = await serve(lambda _r: sse)
    client = FastClient(PooledTransport())
    for _ in range(2):
        async with open_stream(client, base, {}, {}, provider="p", model="m") as body:
            events = [(e.event, e.data) async for e in iter_sse(body, provider="p", model="m")]
        assert events == [("message", b'{"a":1}'), ("x", b"two"), ("message", b"[DONE]")]
    assert server.connections == 1  # a stream read to its end returns the connection
    await client.aclose()


async def test_a_stream_left_early_closes_its_connection(serve) -> None:  # type: ignore[no-untyped-def]
    sse = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
           b"b\r\ndata: one\n\n\r\n"]
    server, base = await serve(lambda _r: sse)  # never finishes its body
    client = FastClient(PooledTransport())
    for _ in range(2):
        async with open_stream(client, base, {}, {}, provider="p", model="m") as body:
            async for event in iter_sse(body, provider="p", model="m"):
                assert event.data == b"one"
                break
    assert server.connections == 2  # a half-read connection is never reused
    await client.aclose()


async def test_plain_httpx_requests_work_through_the_pool(serve) -> None:  # type: ignore[no-untyped-def]
    server, base = await serve(json_reply(b'{"x": 1}'))
    async with httpx.AsyncClient(transport=PooledTransport()) as client:
        for _ in range(3):
            response = await client.get(base + "/models?a=1")
            assert response.json() == {"x": 1}
    assert server.connections == 1
    assert server.requests[0].startswith(b"GET /models?a=1 HTTP/1.1\r\n")


async def test_sse_events_one_per_read_and_otherwise() -> None:
    # The usual read holds exactly one one-line event (the fast path); everything else takes
    # the general path, and both agree on what the events are.
    reads = [b"event: delta\n", b'data: {"x":1}\n\n', b"data: two\n\n", b"data: a\ndata: b\n\n",
             "data: é\n\n".encode(), b": a comment\n\n", b"data: [DONE]\n\n"]

    async def body() -> AsyncIterator[bytes]:
        for read in reads:
            yield read

    events = [(e.event, e.data) async for e in iter_sse(body(), provider="p", model="m")]
    assert events == [("delta", b'{"x":1}'), ("message", b"two"), ("message", b"a\nb"),
                      ("message", "é".encode()), ("message", b"[DONE]")]


async def test_a_slow_reader_gets_a_large_body_whole_and_the_connection_back(serve) -> None:  # type: ignore[no-untyped-def]
    # 4 MiB arrive far faster than this reader takes them: reading pauses while 256 KiB wait
    # unread and resumes as they are taken, and nothing is lost or reordered on the way; in
    # particular not the last chunks, which arrive (and complete the body) while the reader
    # still holds an earlier one.
    body = bytes(range(256)) * (4 * 4096)
    server, base = await serve(json_reply(body))
    client = FastClient(PooledTransport())
    for _ in range(2):
        received = []
        async with open_stream(client, base, {}, {}, provider="p", model="m") as stream:
            async for chunk in stream:
                received.append(chunk)
                await asyncio.sleep(0)
        assert b"".join(received) == body
    assert server.connections == 1  # read to its end: the connection went back to the pool
    await client.aclose()


def _text_event(text: str) -> bytes:
    return b'data: {"choices":[{"index":0,"delta":{"content":"' + text.encode() + \
        b'"},"finish_reason":null}]}\n\n'


def _abcd_stream(finish: bytes) -> list[bytes]:
    """An OpenAI stream's response as the server writes it: "a", "b" and "c" in one write, "d"
    split across two, then ``finish`` with [DONE] and, as servers send it, the body's end."""
    event = _text_event
    writes = [event("a"), event("b") + event("c"), event("d")[:20], event("d")[20:],
              finish + b"data: [DONE]\n\n"]
    sse = [b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n"]
    sse += [_chunk(w) for w in writes]
    sse[-1] += b"0\r\n\r\n"
    return sse


async def test_openai_batches_take_what_each_read_brought(serve) -> None:  # type: ignore[no-untyped-def]
    finish = b'data: {"model":"m-1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    sse = _abcd_stream(finish)
    server, base = await serve(lambda _r: sse)
    client = FastClient(PooledTransport())
    upstream = OpenAICompatProvider("p", base_url=base, api_key=None, http=client)
    request = CallRequest(model="m", messages=(Message.user("hi"),))
    for _ in range(2):
        stream = upstream.stream(request)
        batches = []
        while batch := await stream.batch():
            batches.append(batch)
        items = [item for batch in batches for item in batch]
        assert items[:4] == ["a", "b", "c", "d"]  # the split event joined whole
        assert (items[4].finish_reason, items[4].model) == ("stop", "m-1")
        assert len(items) == 5
        # what one write brought comes in one batch, never split across two
        assert any("b" in batch and "c" in batch for batch in batches)
        await stream.aclose()
    assert server.connections == 1  # read to its end, the connection went back to the pool
    await client.aclose()


async def _linger_over(pool: PooledTransport) -> None:
    """Until no connection of ``pool`` waits for its body's end (a second at most)."""
    for _ in range(100):
        if not pool._lingering:
            return
        await asyncio.sleep(0.01)


def _sse_reply(*tail: bytes) -> list[bytes]:
    """An OpenAI stream (one text event, then [DONE]) as chunked writes, then ``tail``."""
    writes = [b'data: {"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n',
              b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
              b"data: [DONE]\n\n"]
    head = [b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"]
    return head + [_chunk(w) for w in writes] + \
        list(tail)


async def _read_openai_stream(base: str, client: FastClient, *, until_done: bool = True) -> None:
    upstream = OpenAICompatProvider("p", base_url=base, api_key=None, http=client)
    stream = upstream.stream(CallRequest(model="m", messages=(Message.user("hi"),)))
    texts = []
    while batch := await stream.batch():
        texts += batch
        if not until_done:
            break
    await stream.aclose()
    assert texts[0] == "hi"


async def test_a_body_end_after_done_returns_the_connection_to_the_pool(serve) -> None:  # type: ignore[no-untyped-def]
    # the chunked terminator comes 50 ms after data: [DONE], once the reader has left
    server, base = await serve(lambda _r: _sse_reply(b"<pause>", b"0\r\n\r\n"))
    pool = PooledTransport()
    client = FastClient(pool)
    for _ in range(3):
        await _read_openai_stream(base, client)
        await _linger_over(pool)  # the connection waits for its body's end
    assert server.connections == 1
    assert pool.opened == 1
    await client.aclose()


async def test_a_body_end_that_never_comes_closes_the_connection(serve) -> None:  # type: ignore[no-untyped-def]
    server, base = await serve(lambda _r: _sse_reply())  # no terminator, ever
    pool = PooledTransport(linger_s=0.05)
    client = FastClient(pool)
    await _read_openai_stream(base, client)
    assert len(pool._lingering) == 1  # waiting for the end, not in the pool yet
    await _linger_over(pool)
    assert not pool._lingering
    await _read_openai_stream(base, client)
    assert server.connections == 2  # the first was closed, not reused
    await client.aclose()
    assert not pool._lingering  # closing the client ends any wait


async def test_a_stream_left_before_done_does_not_linger(serve) -> None:  # type: ignore[no-untyped-def]
    # more than a body's end follows [DONE]'s absence: the reader left mid-stream
    server, base = await serve(lambda _r: _sse_reply(b"<pause>", b"0\r\n\r\n")[:2])
    pool = PooledTransport()
    client = FastClient(pool)
    await _read_openai_stream(base, client, until_done=False)
    assert not pool._lingering  # closed at once: the upstream stops generating
    await _read_openai_stream(base, client, until_done=False)
    assert server.connections == 2
    await client.aclose()


async def test_a_lingering_connection_that_receives_more_than_an_end_is_closed(serve) -> None:  # type: ignore[no-untyped-def]
    more = b"x" * (70 * 1024)
    server, base = await serve(lambda _r: _sse_reply(
        b"<pause>", _chunk(more)))
    pool = PooledTransport()
    client = FastClient(pool)
    await _read_openai_stream(base, client)
    await _linger_over(pool)
    assert not pool._lingering
    await _read_openai_stream(base, client)
    assert server.connections == 2
    await client.aclose()


async def test_headers_are_sent_as_they_are_now_even_when_kept_encoded(serve) -> None:  # type: ignore[no-untyped-def]
    server, base = await serve(json_reply())
    client = FastClient(PooledTransport())
    headers = {"Authorization": "Bearer one", "Content-Type": "text/plain"}
    for _ in range(2):
        await post_json(client, base + "/v1/x", {}, headers, provider="p", model="m")
    headers["Authorization"] = "Bearer two"  # a rotated key: the same dict, changed
    await post_json(client, base + "/v1/x", {}, headers, provider="p", model="m")
    sent = [r.split(b"\r\n\r\n")[0].split(b"\r\n")[1:] for r in server.requests]
    assert sent[0] == sent[1]
    assert b"Authorization: Bearer one" in sent[0]
    assert b"Authorization: Bearer two" in sent[2]
    # the caller's Content-Type replaces the default, and is sent once
    assert [h for h in sent[2] if h.lower().startswith(b"content-type")] == \
        [b"Content-Type: text/plain"]
    assert b"Accept: application/json" in sent[2]
    await client.aclose()


async def test_an_anthropic_stream_ended_by_message_stop_keeps_its_connection(serve) -> None:  # type: ignore[no-untyped-def]
    from buttress.providers.anthropic import AnthropicProvider

    def event(kind: str, **data: object) -> bytes:
        return b"event: " + kind.encode() + b"\ndata: " + \
            orjson.dumps({"type": kind, **data}) + b"\n\n"

    writes = [
        event("message_start", message={"id": "m", "type": "message", "role": "assistant",
                                        "content": [], "model": "claude", "stop_reason": None,
                                        "usage": {"input_tokens": 3, "output_tokens": 1}}),
        event("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        event("content_block_delta", index=0, delta={"type": "text_delta", "text": "hi"}),
        event("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 2})
        + event("message_stop")]
    sse = [b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n"]
    sse += [_chunk(w) for w in writes]
    sse += [b"<pause>", b"0\r\n\r\n"]  # the body's end, after the reader has left
    server, base = await serve(lambda _r: sse)
    pool = PooledTransport()
    client = FastClient(pool)
    upstream = AnthropicProvider("a", base_url=base, api_key=None, http=client)
    for _ in range(2):
        chunks = [c async for c in upstream.stream(
            CallRequest(model="claude", messages=(Message.user("hi"),)))]
        assert "".join(c.text or "" for c in chunks) == "hi"
        await _linger_over(pool)
    assert server.connections == 1
    await client.aclose()


async def _pushed(stream: object, got: list[object]) -> list[object]:
    """Everything a stream in push mode (``listen``/``poll``) hands its listener, until the
    stream is over, added to ``got``; a failure is raised."""
    over: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def listener() -> None:
        try:
            while items := stream.poll():  # type: ignore[attr-defined]
                got.extend(items)
            if items is None:
                over.set_result(None)
        except Exception as exc:
            over.set_exception(exc)

    assert stream.listen(listener)  # type: ignore[attr-defined]
    try:
        listener()
        await asyncio.wait_for(over, 5)
    finally:
        stream.listen(None)  # type: ignore[attr-defined]
    return got


async def test_an_openai_stream_pushes_each_arrival_to_its_listener(serve) -> None:  # type: ignore[no-untyped-def]
    sse = _abcd_stream(b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n')
    server, base = await serve(lambda _r: sse)
    pool = PooledTransport()
    client = FastClient(pool)
    upstream = OpenAICompatProvider("p", base_url=base, api_key=None, http=client)
    request = CallRequest(model="m", messages=(Message.user("hi"),))
    for _ in range(2):
        stream = upstream.stream(request)
        assert await stream.batch() == ["a"]  # opened (and read) by a task, as the runtime does
        items = await _pushed(stream, [])
        assert items[:3] == ["b", "c", "d"]  # the split event joined whole
        assert [getattr(i, "finish_reason", None) for i in items[3:]] == ["stop"]
        assert await stream.batch() == []
        await stream.aclose()
    assert server.connections == 1  # read to its end, the connection went back to the pool
    [conn] = pool._idle[next(iter(pool._idle))]
    assert conn.listener is None  # the pooled connection calls no reader of a body before

    # a plain request on the same connection: nothing reaches the old listener
    server.reply = json_reply()
    assert await post_json(client, base, {}, {}, provider="p", model="m") == {"ok": True}
    assert server.connections == 1
    await client.aclose()


async def test_a_pushed_stream_that_ends_before_done_is_truncated(serve) -> None:  # type: ignore[no-untyped-def]
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    text = b'data: {"choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":null}]}\n\n'
    _server, base = await serve(lambda _r: [head, text % b"a", b"<pause>", text % b"b",
                                           b"<pause>", b"<close>"])
    client = FastClient(PooledTransport())
    upstream = OpenAICompatProvider("p", base_url=base, api_key=None, http=client)
    stream = upstream.stream(CallRequest(model="m", messages=(Message.user("hi"),)))
    assert await stream.batch() == ["a"]
    got: list[object] = []
    with pytest.raises(MalformedResponse, match="truncated"):
        await _pushed(stream, got)
    assert got == ["b"]  # what came before the end was handed out first
    await stream.aclose()
    await client.aclose()


async def test_a_pushed_large_body_pauses_and_resumes_reading_without_loss(serve) -> None:  # type: ignore[no-untyped-def]
    # 4 MiB in one burst: the transport pauses reading past 256 KiB buffered, and taking them
    # (from the listener) resumes it
    body = bytes(range(256)) * (4 * 4096)
    server, base = await serve(json_reply(body))
    client = FastClient(PooledTransport())
    received: list[bytes] = []
    async with open_stream(client, base, {}, {}, provider="p", model="m") as stream:
        over: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def listener() -> None:
            while data := stream.take():  # type: ignore[attr-defined]
                received.append(data)
            if data is None and not over.done():
                over.set_result(None)

        stream.listen(listener)  # type: ignore[attr-defined]
        listener()
        await asyncio.wait_for(over, 10)
    assert b"".join(received) == body
    assert server.connections == 1
    await client.aclose()


async def test_a_large_body_that_arrived_whole_leaves_its_connection_reading(serve) -> None:  # type: ignore[no-untyped-def]
    # the whole body (over 256 KiB) arrives before it is read: the read that completes it also
    # pauses reading, and the connection goes back to the pool from aread; the next request
    # on it must still be answered
    body = orjson.dumps({"data": "x" * 300_000})
    server, base = await serve(json_reply(body))
    pool = PooledTransport()
    client = FastClient(pool)
    for _ in range(3):
        status, _, stream = await asyncio.wait_for(pool.post(base, {}, b"{}"), 5)
        await asyncio.sleep(0.1)  # the rest of the body lands while no one reads
        assert (status, await asyncio.wait_for(stream.aread(), 5)) == (200, body)
    got = await asyncio.wait_for(post_json(client, base, {}, {}, provider="p", model="m"), 5)
    assert len(got["data"]) == 300_000
    assert server.connections == 1
    await client.aclose()
