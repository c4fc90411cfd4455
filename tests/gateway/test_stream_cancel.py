"""A streamed response pumps in the request's own task; a watcher cancels it when the client
goes away. Only that cancellation is absorbed: anyone else's (a server shutting down) goes on."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from buttress.gateway.app import GatewayApp
from buttress.gateway.server import build_gateway
from buttress.ledger.open import open_store

from .harness import write_project
from .test_server import GatedProvider

BODY = orjson.dumps({"model": "gpt", "messages": [{"role": "user", "content": "hi"}],
                     "stream": True})
SCOPE = {"type": "http", "path": "/v1/chat/completions", "method": "POST",
         "headers": [(b"content-length", str(len(BODY)).encode())]}


class Client:
    """The ASGI side of one request: the body, then a disconnect when ``leave`` is set."""

    def __init__(self) -> None:
        self.leave = asyncio.Event()
        self.sent: list[dict[str, Any]] = []
        self._body_sent = False

    async def receive(self) -> dict[str, Any]:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        await self.leave.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


@contextlib.asynccontextmanager
async def serve_one(tmp_path: Path, *, leave_after: bool = False
                    ) -> AsyncIterator[tuple[GatewayApp, GatedProvider, Client,
                                             asyncio.Task[None]]]:
    """The app serving one streamed request in a task of its own, once its first chunk is
    out and the provider hangs. ``leave_after``: once the app returns, the client leaves and
    the task awaits a few times more (as a server's task does after the app), where a
    cancellation meant for the finished stream would land."""
    provider = GatedProvider()
    gateway = build_gateway(write_project(tmp_path), env={}, providers={"mock": provider})
    app = GatewayApp(gateway)
    client = Client()

    async def request() -> None:
        await app(SCOPE, client.receive, client.send)
        if leave_after:
            client.leave.set()
            for _ in range(5):
                await asyncio.sleep(0)

    task = asyncio.create_task(request())
    try:
        await provider.entered.wait()
        yield app, provider, client, task
    finally:
        provider.gate.set()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, 5)
        await gateway.client.aclose()
        if gateway.key_store is not None:
            gateway.key_store.close()


def statuses(app: GatewayApp, tmp_path: Path) -> list[str]:
    ledger = app.gateway.client.ledger
    assert ledger is not None
    ledger.flush()
    store = open_store("sqlite:///ledger.db", base_dir=tmp_path)
    try:
        return [r.status for r in store.query_calls()]
    finally:
        store.close()


async def test_a_client_that_leaves_ends_the_request_quietly_and_is_recorded(
        tmp_path: Path) -> None:
    async with serve_one(tmp_path) as (app, _provider, client, task):
        client.leave.set()
        await asyncio.wait_for(task, 5)  # returns: no CancelledError out of the app
        assert not task.cancelled()
        assert statuses(app, tmp_path) == ["cancelled"]


async def test_someone_elses_cancellation_is_not_swallowed(tmp_path: Path) -> None:
    async with serve_one(tmp_path) as (app, _provider, _client, task):
        task.cancel()  # e.g. the server giving up on its drain
        with pytest.raises(asyncio.CancelledError):
            await task
        assert statuses(app, tmp_path) == ["cancelled"]


async def test_a_stream_that_ends_is_not_cancelled_by_its_watcher_ending_after_it(
        tmp_path: Path) -> None:
    async with serve_one(tmp_path, leave_after=True) as (app, provider, client, task):
        provider.gate.set()
        await asyncio.wait_for(task, 5)  # no stray cancellation after the app returned
        assert not task.cancelled()
        body = b"".join(m.get("body", b"") for m in client.sent)
        assert body.endswith(b"data: [DONE]\n\n")
        assert statuses(app, tmp_path) == ["ok"]
