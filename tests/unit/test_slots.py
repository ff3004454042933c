"""``Slots``: a free slot is taken at once, a released one goes to the longest waiter, and
cancellation never loses or duplicates a slot."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from aiotts._slots import Slots

pytestmark = pytest.mark.anyio


async def test_free_slots_are_taken_without_waiting() -> None:
    slots = Slots(2)
    await slots.acquire()
    await slots.acquire()
    assert slots.locked()
    slots.release()
    assert slots.free == 1


async def test_a_released_slot_goes_to_the_longest_waiter() -> None:
    slots = Slots(1)
    await slots.acquire()
    order: list[str] = []

    async def take(name: str) -> None:
        async with slots:
            order.append(name)
            await asyncio.sleep(0)

    first = asyncio.create_task(take("first"))
    await asyncio.sleep(0)
    second = asyncio.create_task(take("second"))
    await asyncio.sleep(0)
    slots.release()
    late = asyncio.create_task(take("late"))  # arrives after the release: must not barge in
    await asyncio.gather(first, second, late)
    assert order == ["first", "second", "late"]
    assert slots.free == 1


async def test_a_cancelled_waiter_leaves_no_trace() -> None:
    slots = Slots(1)
    await slots.acquire()
    waiter = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    slots.release()
    assert slots.free == 1  # the slot was not handed to the cancelled waiter


async def test_a_waiter_cancelled_before_it_runs_is_skipped() -> None:
    slots = Slots(1)
    await slots.acquire()
    cancelled = asyncio.create_task(slots.acquire())
    taker = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    cancelled.cancel()  # its future is cancelled now; its task runs later
    slots.release()  # must skip it and hand the slot to the next waiter
    await taker
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert slots.free == 0
    slots.release()
    assert slots.free == 1


async def test_a_waiter_cancelled_after_it_was_handed_a_slot_passes_it_on() -> None:
    slots = Slots(1)
    await slots.acquire()
    handed = asyncio.create_task(slots.acquire())
    nxt = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    slots.release()  # handed gets the slot ...
    handed.cancel()  # ... but is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await handed
    with anyio.fail_after(5):
        await nxt  # the slot went on
    assert slots.free == 0
    slots.release()
    assert slots.free == 1


def test_at_least_one_slot() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Slots(0)
