"""A counting semaphore whose uncontended path costs next to nothing.

Every request of a client takes a slot in front of the pool, and every poll a free worker:
thousands of times a second. ``asyncio.Semaphore`` does that in several calls (its
``locked()`` walks the waiters with a generator each time); ``Slots`` takes a free slot in
one comparison, and waits only when none is free.

Invariants:

* ``_free`` slots are free; ``_waiters`` holds the callers waiting, in order, and the
  futures of cancelled ones, which a release skips. A caller waits only when no slot is
  free, and a release hands its slot on before it counts it free, so a free slot and a
  live waiter never exist at once.
* A released slot goes straight to the longest-waiting caller (first come, first served):
  no caller that arrives later can take it in between.
* A waiter cancelled after it was handed a slot passes that slot on, so no slot is lost.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType

__all__ = ["Slots"]


class Slots:
    """``value`` slots; ``async with slots:`` holds one. Use from one event loop."""

    __slots__ = ("_free", "_waiters")

    def __init__(self, value: int) -> None:
        if value < 1:
            raise ValueError(f"Slots needs at least one slot, not {value}")
        self._free = value
        self._waiters: deque[asyncio.Future[None]] = deque()

    def __repr__(self) -> str:
        return f"<Slots free={self._free} waiting={len(self._waiters)}>"

    @property
    def free(self) -> int:
        return self._free

    def locked(self) -> bool:
        """True when ``acquire`` would wait."""
        return self._free == 0

    async def acquire(self) -> None:
        if self._free:  # the common case: no await, no future
            self._free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just before the cancellation: pass it on
            raise  # else its cancelled future stays queued: the next release skips it

    def release(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # not cancelled while its task has yet to run
                waiter.set_result(None)  # the slot goes straight to the next waiter
                return
        self._free += 1

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
