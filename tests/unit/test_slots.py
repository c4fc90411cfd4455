"""The executor's per-provider concurrency limit (``Slots``): free slots taken at once, waiters
served in order, and cancellation never losing or leaking a slot."""

from __future__ import annotations

import asyncio

from buttress.runtime.executor import Slots


async def test_free_slots_are_taken_at_once_and_given_back() -> None:
    slots = Slots(2)
    assert slots.take_now()
    assert slots.take_now()
    assert not slots.take_now()
    slots.release()
    assert slots.take_now()


async def test_waiters_are_served_in_order() -> None:
    slots = Slots(1)
    await slots.take()
    order: list[int] = []

    async def wait(i: int) -> None:
        await slots.take()
        order.append(i)

    tasks = [asyncio.ensure_future(wait(i)) for i in range(3)]
    await asyncio.sleep(0)
    assert not slots.take_now()  # the line comes first, even once a slot is free
    for _ in range(3):
        slots.release()
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]


async def test_a_cancelled_waiter_leaves_the_line() -> None:
    slots = Slots(1)
    await slots.take()
    waiting = asyncio.ensure_future(slots.take())
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    slots.release()
    assert slots.take_now()  # the slot was not handed to the cancelled waiter


async def test_a_waiter_cancelled_after_being_handed_a_slot_passes_it_on() -> None:
    slots = Slots(1)
    await slots.take()
    first = asyncio.ensure_future(slots.take())
    second = asyncio.ensure_future(slots.take())
    await asyncio.sleep(0)
    slots.release()  # first is handed the slot...
    first.cancel()  # ...and cancelled before it runs again
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(second, 1)  # the slot went on to the next in line
    assert not slots.take_now()
    slots.release()
    assert slots.take_now()
