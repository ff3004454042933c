"""A task's deadline cuts the poll it has in flight, and nothing else.

The scheduler bounds each poll by its task's deadline with a timer that cancels the
worker's poll: a body trickling past the deadline ends the task ``expired`` with no file
left, the other tasks of the batch go on, and a cancellation from outside that comes at
the same moment is never taken for the deadline.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio
import pytest
from aiohttp import web

from aiotts import OutcomeState, Timeouts
from aiotts._scheduler import _Deadline
from tests.hostile.servers import HostileServer
from tests.hostile.transport import TTS_PATH, client_of, envelope

pytestmark = pytest.mark.anyio

SLOW_ID = "TTSslow0-0000-4000-8000-000000000000"
QUICK_ID = "TTSquick-0000-4000-8000-000000000000"


async def poll(request: web.Request) -> web.StreamResponse:
    """The quick task is Pending; the slow one sends headers, then a byte every 20 ms."""
    if request.query.get("id") == QUICK_ID:
        return envelope(QUICK_ID, "Pending")
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    for _ in range(250):
        await response.write(b" ")
        await asyncio.sleep(0.02)
    return response


async def test_a_trickling_poll_ends_its_task_expired_at_its_deadline(tmp_path: Path) -> None:
    async with HostileServer() as server:
        server.route("GET", TTS_PATH, poll)
        async with client_of(server, timeouts=Timeouts(read=5.0)) as client:
            with anyio.fail_after(4):  # the body would trickle for 5 s
                report = await client.fetch_all([SLOW_ID, QUICK_ID], tmp_path, task_timeout=0.4)
    states = {outcome.task_id: outcome.state for outcome in report.done + report.failed}
    assert states == {SLOW_ID: OutcomeState.EXPIRED, QUICK_ID: OutcomeState.EXPIRED}
    assert list(tmp_path.glob("*.wav")) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


async def test_a_cancellation_from_outside_is_not_taken_for_the_deadline() -> None:
    cancelled_from_outside = False

    async def worker() -> str:
        nonlocal cancelled_from_outside
        task = asyncio.current_task()
        assert task is not None
        limit = _Deadline(task, 0.0)  # passes at once, ...
        task.get_loop().call_soon(task.cancel)  # ... and the owner cancels too
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            if not limit.disarm():
                cancelled_from_outside = True
                raise
        return "cut by the deadline"

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(worker())
    assert cancelled_from_outside


async def test_the_deadline_alone_is_taken_back() -> None:
    async def worker() -> str:
        task = asyncio.current_task()
        assert task is not None
        limit = _Deadline(task, 0.0)
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            assert limit.disarm()
            assert task.cancelling() == 0
            return "cut by the deadline"
        return "not cut"

    assert await asyncio.create_task(worker()) == "cut by the deadline"


async def test_a_disarmed_deadline_never_cancels() -> None:
    task = asyncio.current_task()
    assert task is not None
    limit = _Deadline(task, 0.01)
    assert not limit.disarm()
    await asyncio.sleep(0.05)  # the timer would have passed by now
    assert not limit.passed
    assert task.cancelling() == 0
