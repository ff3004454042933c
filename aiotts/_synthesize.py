"""``synthesize``: from texts to audio files, submit and fetch pipelined.

The texts go through ``Submissions`` (``submit_many``); each task id is handed to the
client's one scheduler, through a ``Batch``, the moment it exists, so the first files are
written while later texts are still being sent. Each file is named after its text's key
(``_texts.file_stem``), never after its task id.

One record store holds both halves: the ledger (which text became which task) and the
outcomes (which task's audio is saved), so a resumed run sends no text twice and fetches
no audio twice. A text that got no task id (refused, uncertain, a changed text under a
known key) ends at once with an outcome of its own: ``failed`` when the server refused it
(``messages`` hold its words), else ``aborted``; ``task_id`` is then empty (or the earlier
task's, for a changed text) and ``cause`` holds the error.

Invariants:

* Every text taken in yields exactly one ``Outcome``, carrying its ``key``.
* The ids in flight are the only names held in memory (task id -> key); the texts are
  streamed and the keys seen are kept on disk, so memory does not grow with the input.
* The store is closed by the batch when it ends, after the submitter (the batch's source
  of ids) has stopped and recorded every submit it had in flight.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncGenerator, Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from aiotts._batch import Batch, BatchStatistics
from aiotts._errors import AiottsError, ApiError
from aiotts._files import OutputTarget
from aiotts._models import Outcome, OutcomeState
from aiotts._reading import Reader
from aiotts._store import OutcomeStore
from aiotts._submit import Submissions, Submitted
from aiotts._texts import file_stem

__all__ = ["Synthesis", "TextTargets"]

_HANDOUT_BUFFER = 256
"""Outcomes waiting for the caller; beyond, the batch and the submitter wait."""


class TextTargets:
    """The file of each task in flight, named after its text's key: task id -> key, filled
    as ids are handed to the batch and emptied as their outcomes come out."""

    __slots__ = ("_folder", "_keys")

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._keys: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, task_id: str, key: str) -> None:
        self._keys[task_id] = key

    def target_for(self, task_id: str) -> OutputTarget:
        return OutputTarget(self._folder, file_stem(self._keys[task_id]))

    def key_of(self, task_id: str) -> str | None:
        return self._keys.pop(task_id, None)


def no_task_outcome(submitted: Submitted) -> Outcome:
    """The outcome of a text that got no task id (or whose text changed under its key)."""
    refused = isinstance(submitted.cause, ApiError)
    return Outcome(
        submitted.task_id or "",
        OutcomeState.FAILED if refused else OutcomeState.ABORTED,
        error=submitted.error,
        messages=submitted.messages,
        finished_at=time.time(),
        resumed=submitted.resumed,
        cause=submitted.cause,
        key=submitted.key,
    )


class Synthesis:
    """What ``synthesize`` returns: iterate it for one ``Outcome`` per text (with its
    ``key``), as each ends. ``async with`` cancels on exit and waits until every task in
    flight is recorded; ``cancel()`` stops it; ``statistics()`` any time."""

    def __init__(
        self,
        submissions: Submissions,
        targets: TextTargets,
        make_batch: Callable[[AsyncGenerator[str, None]], Batch],
        spawn: Callable[[Coroutine[Any, Any, None]], object],
        store: OutcomeStore | None,
    ) -> None:
        self._submissions = submissions
        self._targets = targets
        self._store = store
        self.batch = make_batch(self._ids())
        self._spawn = spawn
        sender, receiver = anyio.create_memory_object_stream[Outcome](_HANDOUT_BUFFER)
        self._sender: MemoryObjectSendStream[Outcome] = sender
        self._receiver: MemoryObjectReceiveStream[Outcome] = receiver
        self._scope = anyio.CancelScope()
        self._started = False
        self._finished = anyio.Event()
        self._error: AiottsError | None = None
        self.without_task = 0

    def __repr__(self) -> str:
        return f"<Synthesis {self._submissions!r} {self.batch!r} without_task={self.without_task}>"

    @property
    def submitted(self) -> int:
        """Texts with a task id so far: sent in this run, or resumed from the ledger."""
        return self._submissions.sent + self._submissions.resumed

    def statistics(self) -> BatchStatistics:
        """The fetching half's statistics (``submitted`` tells the sending half's)."""
        return self.batch.statistics()

    # -- the two halves ---------------------------------------------------------------------

    async def _ids(self) -> AsyncGenerator[str, None]:
        """The batch's source: each task id as soon as its submit returns; a text without
        one is handed out at once, as its own outcome."""
        try:
            async for submitted in self._submissions:
                if submitted.ok and submitted.task_id is not None:
                    self._targets.add(submitted.task_id, submitted.key)
                    yield submitted.task_id
                else:
                    self.without_task += 1
                    await self._sender.send(no_task_outcome(submitted))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return  # nobody reads any more: the synthesis is being cancelled
        except AiottsError as exc:
            # The submits stopped (credentials refused, the ledger unwritable): the batch
            # ends what it holds, then the caller gets this error after those outcomes.
            self._error = self._error or exc
            return
        finally:
            with anyio.CancelScope(shield=True):
                await self._submissions.aclose()

    async def _pump(self) -> None:
        """Moves the batch's outcomes, each given its key, to the caller."""
        try:
            with self._scope:
                async with self.batch as batch:
                    async for outcome in batch:
                        key = self._targets.key_of(outcome.task_id)
                        await self._sender.send(dataclasses.replace(outcome, key=key))
        except AiottsError as exc:
            self._error = self._error or exc  # raised to the caller after the outcomes queued
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        finally:
            self._sender.close()
            self._finished.set()

    # -- the caller's side --------------------------------------------------------------------

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self._spawn(self._pump())

    def cancel(self) -> None:
        """Stop: submits in flight stay in the uncertain window, tasks in flight are
        recorded as cancelled, temporary files removed."""
        self._scope.cancel()
        if not self._started:
            self.batch.cancel()

    async def wait_closed(self) -> None:
        if self._started:
            with anyio.CancelScope(shield=True):
                await self._finished.wait()

    def __aiter__(self) -> Reader[Outcome]:
        # What the loop holds: dropped when the loop is left early, it stops the synthesis.
        return Reader(self)

    def reader_left(self) -> None:
        """The ``async for`` that read this was left: stop sending and fetching, unless
        it ended."""
        if not self._finished.is_set():
            self.cancel()

    async def __anext__(self) -> Outcome:
        self._start()
        try:
            return await self._receiver.receive()
        except anyio.EndOfStream:
            self._receiver.close()
            if self._error is not None:
                raise self._error from None
            raise StopAsyncIteration from None
        except BaseException:
            self.cancel()  # the caller was cancelled: nobody reads any more
            raise

    async def __aenter__(self) -> Synthesis:
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
        self._receiver.close()

    def __del__(self) -> None:
        # A started synthesis is held by its pump until it finished (a loop left early
        # stops it through its ``Reader``).
        self._receiver.close()  # nothing reads any more: the pump's next send ends it
        if not self._started:
            self._sender.close()
