"""The batch scheduler: many task ids polled at once, each with its own state machine.

Shape::

    ids ──feed──▶ admitted tasks ──▶ heap of (next poll time, task)
                                         │ dispatch (when due)
                                         ▼
                               polls workers ── GET result ──▶ state machine
                                         │                        │
                         not ready: back on the heap        final: manifest line,
                         after the poll policy's delay      then the outcome

Invariants:

* A task is in exactly one place: on the heap, in the hand-off queue, or with one
  worker. So no task is ever polled twice at once, and sleeping tasks cost a heap entry
  and a small object, not a coroutine holding a request.
* Asking again about tasks is paced by the poll budget (``PollPolicy.budget``), so a
  batch of thousands of pending tasks does not ask about them as fast as it can.
* Ids are taken from the caller's iterable only while fewer than
  ``Limits.tasks_in_flight`` tasks are unfinished, and each distinct id is admitted once.
* Every admitted id ends exactly once: its final transition writes one manifest line and
  then hands one ``Outcome`` to the caller. On cancellation the ids still in flight are
  recorded as ``cancelled`` (synchronously, so the record is whole even then); at the
  batch deadline they and every id not yet taken in end as ``expired``.
* An error that no task can get past (``STOPS_THE_BATCH``: the credentials refused, the
  service unreachable; or any exception that is not an answer about one task) stops the
  batch: the ids in flight and the one being admitted are recorded as ``aborted`` with
  that error's message, and ``run`` raises that error itself, never a group.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import math
import re
import time
from collections import Counter
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import MappingProxyType

import aiohttp
import anyio
import yarl
from anyio.streams.memory import MemoryObjectSendStream

from aiotts._config import Limits, PollPolicy
from aiotts._context import log_task_id
from aiotts._errors import (
    AiottsError,
    AuthenticationError,
    ConnectError,
    UnexpectedStatusError,
)
from aiotts._files import OutputTarget
from aiotts._manifest import Manifest, ManifestEntry, complete_size, whole_files
from aiotts._models import Outcome, OutcomeState, TaskResult, TaskStatus
from aiotts._session import HttpSession
from aiotts._states import Event, State, TaskMachine
from aiotts._transfer import Answer, read_answer

__all__ = ["STOPS_THE_BATCH", "BatchStatistics", "Scheduler", "TaskIds"]

TaskIds = Iterable[str] | AsyncIterable[str]

STOPS_THE_BATCH: tuple[type[AiottsError], ...] = (AuthenticationError, ConnectError)
"""Errors about the service, not about one task: the credentials (or a fresh token) were
refused, or the service cannot be reached even after the request's retries. Every other
task would meet the same error, so the batch stops at the first one instead of failing
each id in turn (and, for refused credentials, earning the token endpoint's lockout)."""

MAX_ID_LENGTH = 1000
"""Longer ids are refused without a request: real ids are 36 characters."""


@dataclass(frozen=True, slots=True)
class BatchStatistics:
    """A snapshot of a batch: tasks per state, requests sent, retries, bytes written."""

    states: Mapping[str, int]
    requests: Mapping[str, int]
    retries: int
    throttled: int
    bytes_written: int
    resumed: int
    elapsed: float
    rate_limit: float = field(default=math.inf)

    @property
    def finished(self) -> int:
        return sum(n for s, n in self.states.items() if State(s).is_final)

    @property
    def in_flight(self) -> int:
        return sum(self.states.get(s.value, 0) for s in (State.POLLING, State.DOWNLOADING))


class _Task:
    """One admitted task. Only the scheduler touches it."""

    __slots__ = (
        "deadline",
        "delays",
        "machine",
        "polled",
        "processing",
        "read_answer",
        "target",
        "task_id",
        "url",
    )

    def __init__(
        self,
        task_id: str,
        target: OutputTarget,
        deadline: float,
        policy: PollPolicy,
        reader: Callable[[_Task], Callable[[aiohttp.ClientResponse], Awaitable[Answer]]],
        base_url: yarl.URL,
    ) -> None:
        self.task_id = task_id
        # Built once: every poll of the task asks for the same URL, and parsing and encoding
        # it again for each request would cost more than the rest of a poll's own work.
        self.url = base_url.with_query(id=task_id)
        self.target = target
        self.deadline = deadline
        self.machine = TaskMachine()
        self.delays: Iterator[float] = policy.pending_delays()
        self.polled = False  # asked about at least once: the next poll asks *again*
        self.processing = False
        self.read_answer = reader(self)  # reads one answer about this task

    def __repr__(self) -> str:
        return f"<_Task {self.task_id} {self.machine.state.value}>"


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
"""Control characters, and the lone surrogates that stand for bytes that were not UTF-8."""


def _id_problem(raw: object) -> str | None:
    """Why ``raw`` cannot be a task id, or None if it can be asked about."""
    if not isinstance(raw, str):
        return f"task ids are strings, got {type(raw).__name__}"
    if not raw.strip():
        return "the task id is empty"
    if len(raw) > MAX_ID_LENGTH:
        return f"the task id is {len(raw)} characters long (ids are 36); check the input"
    bad = _UNPRINTABLE.search(raw)
    if bad is None:
        return None
    if bad.group() >= "\ud800":
        return "the task id is not valid UTF-8 (was the ids file saved in another encoding?)"
    return "the task id contains control characters; check the input"


_DEADLINE_PASSED = "the task's deadline passed"

_MIN_BUDGET_WAIT = 0.25
"""Seconds the dispatcher sleeps at least when the poll budget is spent."""

_BUDGET_BURST = 0.25
"""Seconds of poll budget the bucket holds: the most that one wake-up may release.
Polls released together cost less CPU each than the same polls spaced evenly (measured
here: about 6% less at 250 ms than at 20 ms)."""


def _wake(woken: asyncio.Future[None]) -> None:
    if not woken.done():
        woken.set_result(None)


def _fingerprint(task_id: str) -> bytes:
    # 16 bytes per seen id instead of the whole string; collisions are out of reach.
    return hashlib.blake2b(task_id.encode("utf-8", "surrogatepass"), digest_size=16).digest()


async def _each(ids: TaskIds) -> AsyncGenerator[object, None]:
    if isinstance(ids, AsyncIterable):
        async for task_id in ids:
            yield task_id
    else:
        for task_id in ids:
            yield task_id


class Scheduler:
    """Runs one batch. Used once: ``run`` feeds outcomes into the given stream."""

    def __init__(
        self,
        session: HttpSession,
        *,
        fetch_url: str,
        authorised: bool,
        target_for: Callable[[str], OutputTarget],
        poll: PollPolicy,
        limits: Limits,
        download_slots: asyncio.Semaphore,
        durable: bool,
        task_timeout: float | None = None,
        batch_timeout: float | None = None,
        manifest: Manifest | None = None,
        earlier: Mapping[str, ManifestEntry] | None = None,
        retry_failed: bool = False,
        resume_files: bool = False,
    ) -> None:
        self._session = session
        self._fetch_url = yarl.URL(fetch_url)
        self._authorised = authorised
        self._target_for = target_for
        self._poll = poll
        self._limits = limits
        self._download_slots = download_slots
        self._durable = durable
        self._task_timeout = math.inf if task_timeout is None else task_timeout
        self._batch_timeout = math.inf if batch_timeout is None else batch_timeout
        self._manifest = manifest
        self._earlier = earlier or {}
        self._retry_failed = retry_failed
        self._resume_files = resume_files

        self._active: dict[str, _Task] = {}
        self._seen: set[bytes] = set()
        self._heap: list[tuple[float, int, _Task]] = []
        self._sequence = 0
        self._counts: Counter[State] = Counter()
        self._bytes_written = 0
        self._resumed = 0
        self._capacity = asyncio.Semaphore(limits.tasks_in_flight)
        self._woken: asyncio.Future[None] | None = None
        self._sleeping_until = math.inf
        self._feeding_done = False
        self._sending = 0
        self._admitting: str | None = None
        self._stopped_by: Exception | None = None  # the error that stopped the batch
        self._workers: anyio.abc.TaskGroup | None = None
        self._outcomes: MemoryObjectSendStream[Outcome] | None = None
        self._started = time.monotonic()
        self._requests_before = Counter(session.counters.requests)
        self._retries_before = session.counters.retries
        self._throttled_before = session.counters.throttled
        # The hand-off from the dispatcher to the workers. Plain asyncio primitives: taking a
        # free worker or a queued task costs no trip through the event loop, which matters
        # at thousands of polls a second. ``_idle`` counts workers waiting for a task, so
        # the dispatcher takes a task off the heap only when a worker is free for it.
        self._idle = asyncio.Semaphore(limits.polls)
        self._due: asyncio.Queue[_Task] = asyncio.Queue()

    def __repr__(self) -> str:
        stats = self.statistics()
        states = " ".join(f"{name}={n}" for name, n in stats.states.items() if n)
        return (
            f"<Scheduler {states or 'empty'} requests={sum(stats.requests.values())} "
            f"retries={stats.retries} bytes={stats.bytes_written}>"
        )

    def statistics(self) -> BatchStatistics:
        counters = self._session.counters
        requests = Counter(counters.requests)
        requests.subtract(self._requests_before)
        return BatchStatistics(
            states=MappingProxyType({s.value: self._counts[s] for s in State}),
            requests=MappingProxyType({k: v for k, v in requests.items() if v}),
            retries=counters.retries - self._retries_before,
            throttled=counters.throttled - self._throttled_before,
            bytes_written=self._bytes_written,
            resumed=self._resumed,
            elapsed=time.monotonic() - self._started,
            rate_limit=self._session.limiter.rate,
        )

    # -- the batch -------------------------------------------------------------------------

    async def run(self, ids: TaskIds, outcomes: MemoryObjectSendStream[Outcome]) -> None:
        """Take every id from ``ids`` to its outcome, sent into ``outcomes``."""
        self._outcomes = outcomes
        self._started = time.monotonic()
        source = _each(ids)
        try:
            with anyio.move_on_after(self._batch_timeout) as batch_deadline:
                async with anyio.create_task_group() as workers:
                    self._workers = workers
                    workers.start_soon(self._feed, source)
                    workers.start_soon(self._dispatch)
                    for _ in range(self._limits.polls):
                        workers.start_soon(self._work)
            if batch_deadline.cancelled_caught:
                await self._expire_everything(source)
        except BaseException:
            if self._stopped_by is None:
                self._record_cancelled()
            else:
                self._record_stopped(self._stopped_by)
                raise self._stopped_by from None  # the error itself, not a task group's
            raise
        finally:
            await source.aclose()

    def _stop_if_finished(self) -> None:
        # Every id taken in has ended *and* its outcome was handed over: stopping while an
        # outcome is still being sent would cancel that send and lose it.
        if (
            self._feeding_done
            and not self._active
            and not self._sending
            and self._workers is not None
        ):
            self._workers.cancel_scope.cancel()

    # -- admission ---------------------------------------------------------------------------

    async def _feed(self, source: AsyncIterator[object]) -> None:
        async for raw in source:
            await self._admit(raw)
        self._feeding_done = True
        self._stop_if_finished()

    def _first_sighting(self, raw: object) -> str | None:
        """The id ``raw`` stands for, or None if it was seen before (a duplicate is
        fetched once and reported once)."""
        task_id = raw if isinstance(raw, str) else repr(raw)
        fingerprint = _fingerprint(task_id)
        if fingerprint in self._seen:
            return None
        self._seen.add(fingerprint)
        return task_id

    async def _admit(self, raw: object) -> None:
        task_id = self._first_sighting(raw)
        if task_id is None:
            return
        # From here until the task is active or concluded, a cancellation or the batch
        # deadline concludes this id through ``_admitting``, so it is never dropped.
        self._admitting = task_id
        problem = _id_problem(raw)
        if problem is not None:
            await self._emit(self._conclude_unadmitted(task_id, State.ABORTED, problem))
            return
        if await self._skip_done(task_id):
            self._admitting = None
            return
        await self._capacity.acquire()
        deadline = time.monotonic() + self._task_timeout
        task = _Task(
            task_id, self._target_for(task_id), deadline, self._poll, self._reader, self._fetch_url
        )
        self._counts[State.QUEUED] += 1
        self._active[task_id] = task
        self._admitting = None
        self._transition(task, Event.ADMIT)
        self._schedule(task, time.monotonic())

    async def _skip_done(self, task_id: str) -> bool:
        """Report and skip an id an earlier run finished, if its files are still whole.

        Every check here is ``lstat`` plus a non-blocking, non-following open of a regular
        file (``_manifest.complete_size``): a FIFO or a link at a final name is never
        opened, so it can neither block the loop nor pass for a result; its task is fetched
        again and the new file replaces the entry (``os.replace`` does not follow it)."""
        entry = self._earlier.get(task_id)
        if entry is not None:
            files = whole_files(entry, self._target_for(task_id).folder)
            refused = entry.state in (OutcomeState.FAILED, OutcomeState.MISSING)
            if files is not None or (refused and not self._retry_failed):
                self._counts[State(entry.state.value)] += 1
                self._resumed += 1
                await self._emit(entry.as_outcome(files))
                return True
        elif self._resume_files:
            # Finished after its file was renamed but before its manifest line: a file at
            # its final name is whole by construction, so the task is done.
            path = self._target_for(task_id).path(0)
            size = complete_size(path)
            if size is not None:
                outcome = Outcome(
                    task_id,
                    OutcomeState.DONE,
                    files=(path,),
                    bytes_written=size,
                    finished_at=time.time(),
                    resumed=True,
                )
                self._counts[State.DONE] += 1
                self._resumed += 1
                self._append(outcome)
                await self._emit(outcome)
                return True
        return False

    # -- timing --------------------------------------------------------------------------------

    def _schedule(self, task: _Task, due: float) -> None:
        due = min(due, task.deadline)
        self._sequence += 1
        heapq.heappush(self._heap, (due, self._sequence, task))
        if due < self._sleeping_until and self._woken is not None:
            _wake(self._woken)

    async def _dispatch(self) -> None:
        """Hand due tasks to free workers, in due order.

        Asking *again* about a task spends one token of the poll budget, a bucket that
        refills at ``PollPolicy.budget`` tokens a second and holds ``_BUDGET_BURST`` seconds
        of them: with
        thousands of tasks pending, each is asked about less often, instead of the batch
        asking as fast as it can. A first poll is never held back.
        """
        heap = self._heap
        budget = self._poll.budget  # tokens a second; None: asking again is never held back
        capacity = max(1.0, budget * _BUDGET_BURST) if budget else math.inf
        tokens = capacity
        refilled = time.monotonic()
        while True:
            now = time.monotonic()
            if budget:
                tokens = min(capacity, tokens + (now - refilled) * budget)
                refilled = now
            wake_at = math.inf
            while heap:
                due, _, task = heap[0]
                if due > now:
                    wake_at = due
                    break
                if budget and task.polled and tokens < 1:
                    # Not before a few tokens are back: one wake-up releases several polls.
                    wake_at = now + max((1 - tokens) / budget, _MIN_BUDGET_WAIT)
                    break
                await self._idle.acquire()  # waits while every worker is busy
                if heap[0][2] is not task:  # the heap changed while waiting: look again
                    self._idle.release()
                    continue
                heapq.heappop(heap)
                if task.polled:
                    tokens -= 1
                task.polled = True
                self._due.put_nowait(task)
            await self._sleep_until(wake_at)

    async def _sleep_until(self, when: float) -> None:
        """Sleep until ``when``, or until ``_schedule`` puts an earlier task on the heap."""
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()
        self._woken = woken
        self._sleeping_until = when
        timer = None
        if when < math.inf:
            delay = max(when - time.monotonic(), 0.0)
            timer = loop.call_later(delay, _wake, woken)
        try:
            await woken
        finally:
            self._sleeping_until = -math.inf
            self._woken = None
            if timer is not None:
                timer.cancel()

    # -- polling ---------------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            task = await self._due.get()
            try:
                await self._poll_once(task)
            except Exception as exc:
                # Not an answer about this task (``_poll_once`` turns those into endings):
                # the batch stops, and the ids in flight are recorded with this cause.
                if self._stopped_by is None:
                    self._stopped_by = exc
                raise
            finally:
                self._idle.release()

    async def _poll_once(self, task: _Task) -> None:
        log_task_id.set(task.task_id)  # this worker's log lines name the task it polls
        now = time.monotonic()
        if now >= task.deadline:
            await self._finish(self._conclude(task, Event.DEADLINE, error=_DEADLINE_PASSED))
            return
        answer: Answer | None = None
        failure: tuple[Event, AiottsError] | None = None
        # Only the request and the files' settling run under the task's deadline; the
        # ending is recorded outside it, so a deadline can never cut a recording short.
        # No deadline, no cancel scope: most batches have none, and a scope per poll costs.
        deadline = None if task.deadline == math.inf else anyio.move_on_after(task.deadline - now)
        with deadline or contextlib.nullcontext():
            try:
                answer = await self._session.request(
                    "poll",
                    "GET",
                    task.url,
                    task.read_answer,
                    authorised=self._authorised,
                )
                await self._settle(answer)
            except STOPS_THE_BATCH:
                # Nothing can succeed: the batch stops and says why (``_work`` keeps the
                # first such error). The task stays active, so it is recorded with it.
                raise
            except UnexpectedStatusError as exc:
                failure = (Event.UNKNOWN_STATUS, exc)
            except AiottsError as exc:  # retries ran out, or the answer was unusable
                failure = (Event.GAVE_UP, exc)
        if failure is not None:
            event, error = failure
            await self._finish(self._conclude(task, event, error=str(error), cause=error))
        elif answer is None or (deadline is not None and deadline.cancelled_caught):
            await self._finish(self._conclude(task, Event.DEADLINE, error=_DEADLINE_PASSED))
        else:
            await self._after(task, answer)

    async def _settle(self, answer: Answer) -> None:
        """Give a completed task's files their final names, or remove them (even when
        cancelled on the way)."""
        if answer.pending:
            await answer.settle(durable=self._durable)

    async def _after(self, task: _Task, answer: Answer) -> None:
        result = answer.result
        status = result.status
        if status is TaskStatus.COMPLETED:
            if task.machine.state is State.POLLING:
                self._transition(task, Event.DOWNLOAD)
            self._bytes_written += answer.bytes_written
            await self._finish(
                self._conclude(
                    task,
                    Event.SAVED,
                    files=answer.files,
                    bytes_written=answer.bytes_written,
                    result=result,
                )
            )
        elif status is TaskStatus.ERROR or status is TaskStatus.NOT_EXIST:
            event = Event.SERVER_ERROR if status is TaskStatus.ERROR else Event.NOT_FOUND
            await self._finish(
                self._conclude(task, event, error=result.why_no_audio, result=result)
            )
        else:
            self._transition(task, Event.NOT_READY)
            if status is TaskStatus.PROCESSING and not task.processing:
                task.processing = True
                task.delays = self._poll.processing_delays()
            self._schedule(task, time.monotonic() + next(task.delays))

    # -- endings -----------------------------------------------------------------------------------

    def _reader(self, task: _Task) -> Callable[[aiohttp.ClientResponse], Awaitable[Answer]]:
        return partial(
            read_answer,
            task_id=task.task_id,
            target=task.target,
            download_slots=self._download_slots,
            on_download=partial(self._start_download, task),
        )

    def _start_download(self, task: _Task) -> None:
        self._transition(task, Event.DOWNLOAD)

    def _transition(self, task: _Task, event: Event) -> State:
        before = task.machine.state
        after = task.machine.apply(event)
        self._counts[before] -= 1
        self._counts[after] += 1
        return after

    def _conclude(
        self,
        task: _Task,
        event: Event,
        *,
        files: tuple[Path, ...] = (),
        bytes_written: int = 0,
        error: str | None = None,
        result: TaskResult | None = None,
        cause: AiottsError | None = None,
    ) -> Outcome:
        """Apply the final event and record it. Synchronous: nothing can come between the
        transition and the manifest line.

        ``result`` is the server's answer that ended the task: its messages, warnings and
        ``responseStatusCode`` go into the outcome whatever the state, success included."""
        state = self._transition(task, event)
        outcome = Outcome(
            task.task_id,
            state.outcome,
            files=files,
            bytes_written=bytes_written,
            error=error,
            messages=result.messages if result is not None else (),
            warnings=result.warnings if result is not None else (),
            response_code=result.response_code if result is not None else None,
            finished_at=time.time(),
            cause=cause,
        )
        del self._active[task.task_id]
        self._capacity.release()
        self._append(outcome)
        return outcome

    def _conclude_unadmitted(self, task_id: str, state: State, error: str) -> Outcome:
        """Record the end of an id that never became an active task."""
        self._admitting = None
        self._counts[state] += 1
        outcome = Outcome(task_id, state.outcome, error=error, finished_at=time.time())
        self._append(outcome)
        return outcome

    def _append(self, outcome: Outcome) -> None:
        if self._manifest is not None:
            self._manifest.append(outcome)

    async def _finish(self, outcome: Outcome) -> None:
        """Hand over the outcome that ``_conclude`` recorded; stop when it was the last."""
        await self._emit(outcome)
        self._stop_if_finished()

    async def _emit(self, outcome: Outcome) -> None:
        assert self._outcomes is not None
        try:
            self._outcomes.send_nowait(outcome)  # the common case: room in the buffer
            return
        except anyio.WouldBlock:
            pass
        self._sending += 1
        try:
            await self._outcomes.send(outcome)  # the caller reads slowly: wait for room
        finally:
            self._sending -= 1

    def _record_cancelled(self) -> None:
        error = "the batch was cancelled"
        for task in list(self._active.values()):
            self._conclude(task, Event.CANCEL, error=error)
        if self._admitting is not None:
            self._conclude_unadmitted(self._admitting, State.CANCELLED, error)

    def _record_stopped(self, cause: Exception) -> None:
        """Record every id in flight, and the one being admitted, as ``aborted`` by the
        error that stopped the batch (synchronously, like ``_record_cancelled``)."""
        if isinstance(cause, AiottsError):
            error, ours = f"the batch stopped: {cause}", cause
        else:  # not mapped to one of ours: name its type, as the command line does
            error, ours = f"the batch stopped: {type(cause).__name__}: {cause}", None
        for task in list(self._active.values()):
            self._conclude(task, Event.GAVE_UP, error=error, cause=ours)
        if self._admitting is not None:
            self._conclude_unadmitted(self._admitting, State.ABORTED, error)

    async def _expire_everything(self, source: AsyncIterator[object]) -> None:
        """The batch deadline passed: every id in flight, and every id not yet taken in,
        ends as expired."""
        error = "the batch's deadline passed"
        for task in list(self._active.values()):
            await self._emit(self._conclude(task, Event.DEADLINE, error=error))
        if self._admitting is not None:
            await self._emit(self._conclude_unadmitted(self._admitting, State.EXPIRED, error))
        async for raw in source:
            task_id = self._first_sighting(raw)
            if task_id is not None:
                await self._emit(self._conclude_unadmitted(task_id, State.EXPIRED, error))
