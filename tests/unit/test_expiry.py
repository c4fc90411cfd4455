"""The executor's timeout scope: fires as asyncio.timeout does, and only for its own timer."""

from __future__ import annotations

import asyncio

import pytest

from buttress.runtime.expiry import Expiry, current


async def test_the_timer_turns_its_cancellation_into_timeout_error() -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError), Expiry(loop, current(loop), loop.time() + 0.01) as scope:
        await asyncio.sleep(10)
    assert scope.expired
    task = current(loop)
    assert task.cancelling() == 0  # nothing left pending on the task
    await asyncio.sleep(0)  # and it goes on running


async def test_a_block_that_ends_in_time_is_untouched_and_the_timer_is_gone() -> None:
    loop = asyncio.get_running_loop()
    with Expiry(loop, current(loop), loop.time() + 0.05) as scope:
        await asyncio.sleep(0)
    await asyncio.sleep(0.08)  # past the deadline: the cancelled timer never fires
    assert not scope.expired


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    loop = asyncio.get_running_loop()
    entered = asyncio.Event()

    async def body() -> None:
        with Expiry(loop, current(loop), loop.time() + 10):
            entered.set()
            await asyncio.sleep(10)

    task = asyncio.ensure_future(body())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_nested_scopes_each_claim_only_their_own_expiry() -> None:
    loop = asyncio.get_running_loop()
    task = current(loop)
    scopes: list[Expiry] = []
    claimed_by_inner = False

    async def nested() -> None:
        nonlocal claimed_by_inner
        with Expiry(loop, task, loop.time() + 0.01) as outer:
            scopes.append(outer)
            try:
                with Expiry(loop, task, loop.time() + 10) as inner:
                    scopes.append(inner)
                    await asyncio.sleep(10)
            except TimeoutError:
                claimed_by_inner = True

    with pytest.raises(TimeoutError):
        await nested()
    assert not claimed_by_inner
    assert [s.expired for s in scopes] == [True, False]
