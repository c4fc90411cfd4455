"""The real server in-process on a loopback port: graceful drain, ledger flush, disconnects."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
import uvicorn

from buttress.gateway.app import GatewayApp
from buttress.gateway.server import build_gateway, is_loopback, uvicorn_config
from buttress.gateway.uvicorn_server import GatewayServer
from buttress.ledger.open import open_store
from buttress.ledger.records import AttemptRecord, CallRecord
from buttress.providers.base import Provider
from buttress.testing.fake import FakeProvider
from buttress.types import CallRequest, Completion, StreamChunk, Usage

from .harness import write_project


class GatedProvider(Provider):
    """Answers only when ``gate`` is set; ``entered`` tells a request is inside."""

    name = "mock"

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def complete(self, request: CallRequest) -> Completion:
        self.entered.set()
        await self.gate.wait()
        return Completion(text="drained", usage=Usage(prompt_tokens=3, completion_tokens=1))

    async def stream(self, request: CallRequest) -> AsyncIterator[StreamChunk]:
        yield StreamChunk(text="first ")
        self.entered.set()
        await self.gate.wait()
        yield StreamChunk(text="never", finish_reason="stop")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start(tmp_path: Path, provider: Provider,
                server: Callable[[uvicorn.Config], GatewayServer] = GatewayServer
                ) -> tuple[GatewayServer, asyncio.Task[None], str]:
    path = write_project(tmp_path)
    gateway = build_gateway(path, env={}, providers={"mock": provider})
    port = free_port()
    made = server(uvicorn_config(GatewayApp(gateway), "127.0.0.1", port, drain_s=10))
    task = asyncio.create_task(made.serve())
    while not made.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.005)  # waiting for a real socket, not timing anything
    return made, task, f"http://127.0.0.1:{port}"


BODY = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}


async def landed(root: Path, call_id: str) -> tuple[CallRecord, list[AttemptRecord]] | None:
    """The call's ledger record under ``root``, once the writer has written it (4 s at most)."""
    store = open_store("sqlite:///ledger.db", base_dir=root)
    try:
        for _ in range(400):
            got = store.get_call(call_id)
            if got is not None:
                return got
            await asyncio.sleep(0.01)  # waiting for the writer's batch, not timing anything
        return None
    finally:
        store.close()


async def test_shutdown_drains_in_flight_requests_and_flushes_the_ledger(
        tmp_path: Path) -> None:
    provider = GatedProvider()
    server, task, url = await start(tmp_path, provider)
    async with httpx.AsyncClient(base_url=url) as http:
        request = asyncio.create_task(http.post("/v1/chat/completions", json=BODY))
        await provider.entered.wait()
        server.should_exit = True
        await asyncio.sleep(0.2)  # let the server begin its shutdown with the request open
        assert not request.done()
        provider.gate.set()
        response = await request
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "drained"
    await task
    store = open_store("sqlite:///ledger.db", base_dir=tmp_path)
    try:
        records = store.query_calls()
    finally:
        store.close()
    assert [r.call_id for r in records] == [response.headers["x-buttress-call-id"]]
    assert records[0].status == "ok"


async def test_client_disconnect_mid_stream_is_recorded_and_serving_goes_on(
        tmp_path: Path) -> None:
    provider = GatedProvider()
    server, task, url = await start(tmp_path, provider)
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            async with http.stream("POST", "/v1/chat/completions",
                                   json={**BODY, "stream": True}) as response:
                call_id = response.headers["x-buttress-call-id"]
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        break  # the first chunk arrived: hang up
            await provider.entered.wait()
            health = await http.get("/health")
            assert health.status_code == 200
            got = await landed(tmp_path, call_id)  # once the server saw the disconnect
            assert got is not None
            assert (got[0].status, got[0].output_text) == ("cancelled", "first ")
            provider.gate.set()
            again = await http.post("/v1/chat/completions", json=BODY)
            assert again.status_code == 200
    finally:
        server.should_exit = True
        provider.gate.set()
        await task


class CountingServer(GatewayServer):
    """Counts the main loop's looks at the exit flag, which it takes hourly unless woken."""

    ticks = 0
    tick_s = 3600.0

    async def on_tick(self, counter: int) -> bool:
        self.ticks += 1
        return await super().on_tick(counter)


async def serve_idle(tmp_path: Path, stop: Callable[[CountingServer], None]) -> CountingServer:
    """Serve, answer requests for a while, then ``stop`` the server: serving must end without
    waiting for its hourly look at the flag."""
    server, task, url = await start(tmp_path, FakeProvider(script=["hi"]), CountingServer)
    assert isinstance(server, CountingServer)
    async with httpx.AsyncClient(base_url=url) as http:
        # for 0.3 s at least, in which uvicorn's own loop would look at the flag 3 times
        until = asyncio.get_running_loop().time() + 0.3
        while asyncio.get_running_loop().time() < until:
            assert (await http.post("/v1/chat/completions", json=BODY)).status_code == 200
    stop(server)
    await asyncio.wait_for(task, 60)  # far below the hour: the flag woke the loop
    return server


async def test_an_idle_server_does_not_wake_to_poll_its_exit_flag(tmp_path: Path) -> None:
    server = await serve_idle(tmp_path, lambda s: setattr(s, "should_exit", True))
    # one look at start, one when told to exit: none while serving (uvicorn: 10 a second)
    assert server.ticks == 2


async def test_another_thread_wakes_the_idle_server(tmp_path: Path) -> None:
    # as uvicorn's signal handler does, or a program serving from a thread of its own
    server = await serve_idle(tmp_path, lambda s: threading.Thread(
        target=setattr, args=(s, "should_exit", True)).start())
    assert server.ticks == 2


def test_no_keys_means_loopback_only(tmp_path: Path) -> None:
    from buttress.errors import UsageError

    path = write_project(tmp_path)
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert not is_loopback("0.0.0.0")
    with pytest.raises(UsageError, match="without virtual keys"):
        build_gateway(path, env={}, host="0.0.0.0")
    with pytest.raises(UsageError, match="no key exists"):
        build_gateway(path, env={}, require_keys=True)
