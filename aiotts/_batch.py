"""``Batch``: what ``fetch_many`` returns, an async iterator of outcomes.

The scheduler runs in a task of its own that the client keeps, not in the caller's frame,
so leaving an ``async for`` early (``break``, an exception, a cancellation) can never tear
down a task group from the wrong task. Instead:

* a cancellation while the caller waits for the next outcome cancels the batch;
* ``break`` drops the last reference to the batch, and ``__del__`` cancels it;
* ``async with client.fetch_many(...) as batch`` cancels on exit *and waits* until every
  temporary file is gone and every id in flight is recorded;
* closing the client cancels and waits for every batch still running.

The outcome stream is bounded, so a caller that stops reading slows the batch down instead
of letting outcomes pile up in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio

from aiotts._errors import AiottsError
from aiotts._models import Outcome
from aiotts._scheduler import BatchStatistics, Scheduler, TaskIds

__all__ = ["Batch", "BatchReport"]


@dataclass(frozen=True, slots=True)
class BatchReport:
    """Every outcome of a batch, the successes and the rest kept apart."""

    done: tuple[Outcome, ...]
    failed: tuple[Outcome, ...]
    statistics: BatchStatistics

    @property
    def ok(self) -> bool:
        return not self.failed


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to show for a task group that failed: ours if there is one."""
    leaves: list[BaseException] = []

    def collect(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                collect(inner)
        else:
            leaves.append(error)

    collect(group)
    for error in leaves:
        if isinstance(error, AiottsError):
            return error
    return leaves[0] if leaves else group


class Batch:
    """A running batch. Iterate it for outcomes as tasks end; ``statistics()`` any time."""

    def __init__(
        self,
        scheduler: Scheduler,
        ids: TaskIds,
        spawn: Callable[[Coroutine[Any, Any, None]], object],
        *,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._scheduler = scheduler
        self._on_close = on_close
        self._ids = ids
        self._spawn = spawn
        self._send, self._receive = anyio.create_memory_object_stream[Outcome](256)
        self._scope = anyio.CancelScope()
        self._finished = anyio.Event()
        self._started = False
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        state = "finished" if self._finished.is_set() else "running" if self._started else "new"
        return f"<Batch {state} {self._scheduler!r}>"

    def statistics(self) -> BatchStatistics:
        return self._scheduler.statistics()

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self._spawn(self._run())

    async def _run(self) -> None:
        try:
            with self._scope:
                async with self._send:
                    await self._scheduler.run(self._ids, self._send)
        except BaseExceptionGroup as group:
            self._error = _first_error(group)
        except Exception as exc:
            self._error = exc
        finally:
            if self._on_close is not None:
                self._on_close()
            self._finished.set()

    def cancel(self) -> None:
        """Stop the batch. Ids in flight are recorded as cancelled, temporary files removed."""
        self._scope.cancel()

    async def wait_closed(self) -> None:
        """Wait until the batch stopped and cleaned up after itself."""
        if self._started:
            with anyio.CancelScope(shield=True):
                await self._finished.wait()

    def __aiter__(self) -> Batch:
        return self

    async def __anext__(self) -> Outcome:
        self._start()
        try:
            try:
                return self._receive.receive_nowait()  # no trip through the loop if ready
            except anyio.WouldBlock:
                return await self._receive.receive()
        except anyio.EndOfStream:
            self._receive.close()
            if self._error is not None:
                raise self._error from None
            raise StopAsyncIteration from None
        except BaseException:
            self.cancel()  # the caller was cancelled or failed: nobody reads any more
            raise

    async def __aenter__(self) -> Batch:
        self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cancel()
        await self.wait_closed()
        self._receive.close()

    def __del__(self) -> None:
        if not self._started:  # made, never iterated: release what __init__ took
            self._send.close()
            self._receive.close()
            if self._on_close is not None:
                self._on_close()
        elif not self._finished.is_set():
            self._scope.cancel()
        else:
            self._receive.close()

    async def collect(self) -> BatchReport:
        """Run to the end; every outcome, the done ones apart from the rest."""
        done: list[Outcome] = []
        failed: list[Outcome] = []
        async with self:
            async for outcome in self:
                (done if outcome.ok else failed).append(outcome)
        return BatchReport(tuple(done), tuple(failed), self.statistics())
