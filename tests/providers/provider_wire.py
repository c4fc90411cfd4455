"""A scripted HTTP wire for adapter tests: httpx's mock transport, never a patched SDK."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx


class Wire:
    """Answers requests with scripted responses (or raises scripted exceptions) and keeps them."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self._script: list[httpx.Response | Exception] = []
        self.client = httpx.AsyncClient(transport=httpx.MockTransport(self._handle))

    def reply(self, *answers: httpx.Response | Exception) -> None:
        self._script.extend(answers)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self._script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def request(self) -> httpx.Request:
        return self.requests[-1]

    @property
    def body(self) -> Any:
        return json.loads(self.requests[-1].content)


def sse(*events: Any) -> bytes:
    """An SSE body: dicts become ``data:`` events, ``(name, dict)`` named events, str raw data."""
    out = []
    for event in events:
        if isinstance(event, tuple):
            name, data = event
            out.append(f"event: {name}\ndata: {json.dumps(data)}\n\n")
        elif isinstance(event, str):
            out.append(f"data: {event}\n\n")
        else:
            out.append(f"data: {json.dumps(event)}\n\n")
    return "".join(out).encode()


def sse_response(*events: Any) -> httpx.Response:
    return httpx.Response(200, content=sse(*events),
                          headers={"content-type": "text/event-stream"})


class BrokenStream(httpx.AsyncByteStream):
    """A body that delivers ``parts`` and then fails like a reset connection."""

    def __init__(self, *parts: bytes) -> None:
        self.parts = parts

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part
        raise httpx.ReadError("connection reset by peer")


def broken_sse_response(*events: Any) -> httpx.Response:
    return httpx.Response(200, stream=BrokenStream(sse(*events)),
                          headers={"content-type": "text/event-stream"})


async def drain(stream: AsyncIterator[Any], into: list[Any] | None = None) -> list[Any]:
    """Collect a stream's chunks into ``into`` (kept even when the stream then fails)."""
    seen = [] if into is None else into
    async for item in stream:
        seen.append(item)
    return seen
