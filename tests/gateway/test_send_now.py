"""``_send_now``: an ASGI send run to its end at once, outside any task, unless it has to wait."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from buttress.gateway.app import _send_now


async def test_a_send_that_need_not_wait_is_done_at_once() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    assert _send_now(send, {"n": 1}) is None
    assert sent == [{"n": 1}]


async def test_a_send_that_waits_is_finished_by_whoever_awaits_it() -> None:
    loop = asyncio.get_running_loop()
    drained, flushed = loop.create_future(), loop.create_future()
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:  # waits twice, as a drain might
        await drained
        await flushed
        sent.append(message)

    rest = _send_now(send, {"n": 1})
    assert rest is not None
    assert sent == []

    async def finish() -> None:
        await rest

    task = asyncio.create_task(finish())
    await asyncio.sleep(0)
    drained.set_result(None)
    await asyncio.sleep(0)
    assert not task.done()
    assert sent == []
    flushed.set_result(None)
    await task
    assert sent == [{"n": 1}]


async def test_cancelling_a_waiting_send_closes_it() -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    closed: list[bool] = []

    async def send(message: dict[str, Any]) -> None:
        try:
            await never
        finally:
            closed.append(True)

    rest = _send_now(send, {"n": 1})
    assert rest is not None

    async def finish() -> None:
        await rest

    task = asyncio.create_task(finish())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed == [True]


async def test_a_send_that_returns_another_awaitable_is_awaited_as_it_is() -> None:
    sent: list[dict[str, Any]] = []

    def send(message: dict[str, Any]) -> asyncio.Future[None]:  # ASGI allows any awaitable
        sent.append(message)
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    rest = _send_now(send, {"n": 1})
    assert rest is not None
    await rest
    assert sent == [{"n": 1}]
