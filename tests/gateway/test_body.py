"""How the gateway reads a request from the server: its body in one message or several, with or
without a Content-Length, too large, or cut off by the client leaving; and its headers."""

from __future__ import annotations

from typing import Any

import orjson

from .harness import Harness

BODY = orjson.dumps({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]})


async def post(harness: Harness, messages: list[dict[str, Any]],
               headers: list[tuple[bytes, bytes]] | None = None) -> list[dict[str, Any]]:
    """The app's answer to a request whose body arrives as ``messages`` (no Content-Length
    unless given: a chunked upload)."""
    scope = {"type": "http", "path": "/v1/chat/completions", "method": "POST",
             "headers": headers or []}
    pending = list(messages)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await harness.app(scope, receive, send)
    return sent


def part(body: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


async def test_a_body_in_one_message_or_several_is_read_whole(harness: Harness) -> None:
    for messages in ([part(BODY, False)],
                     [part(BODY[:10], True), part(b"", True), part(BODY[10:], False)]):
        sent = await post(harness, messages)
        assert sent[0]["status"] == 200
        assert orjson.loads(sent[1]["body"])["object"] == "chat.completion"


async def test_a_body_over_the_limit_is_refused_however_it_arrives(harness: Harness) -> None:
    limit = harness.gateway.max_body_bytes
    big = b"x" * (limit + 1)
    for messages in ([part(big, False)],  # no Content-Length, one message
                     [part(big[:limit], True), part(big[limit:], False)]):
        sent = await post(harness, messages)
        assert sent[0]["status"] == 413
        assert orjson.loads(sent[1]["body"])["error"]["code"] == "request_too_large"
    sent = await post(harness, [part(b"", False)],
                      [(b"content-length", str(limit + 1).encode())])
    assert sent[0]["status"] == 413  # refused on its Content-Length, before reading


async def test_a_client_that_leaves_mid_body_gets_no_answer(harness: Harness) -> None:
    assert await post(harness, [part(BODY[:10], True), {"type": "http.disconnect"}]) == []
    assert await post(harness, [{"type": "http.disconnect"}]) == []
    # and the gateway goes on serving
    assert (await post(harness, [part(BODY, False)]))[0]["status"] == 200


async def test_headers_are_read_by_name_among_many(harness: Harness) -> None:
    sdk_like = [(b"x-stainless-%d" % i, b"v") for i in range(12)]
    sent = await post(harness, [part(BODY, False)], [
        *sdk_like, (b"x-buttress-tags", b"a, b"), (b"x-buttress-unknown", b"ignored"),
        (b"x-buttress-user", b"first"), (b"x-buttress-user", b"u-7")])
    assert sent[0]["status"] == 200
    record = harness.records()[-1]
    assert record.tags == ("a", "b")
    assert record.user_id == "u-7"  # a header sent twice counts as its last value
    sent = await post(harness, [part(BODY, False)],
                      [*sdk_like, (b"x-buttress-cache", b"sometimes")])
    assert sent[0]["status"] == 400
    assert orjson.loads(sent[1]["body"])["error"]["param"] == "x-buttress-cache"
