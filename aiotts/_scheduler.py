"""The client's scheduler: every task the client waits for, polled by one set of workers.

Shape::

    batches, waiters ──subscribe──▶ one task per id ──▶ Pacer: first polls, due polls,
                                                         deadlines, the poll budget
                                                              │ decide(now)
                                                              ▼
                               workers ── GET result ──▶ state machine (after the I/O)
                                                              │
                          not ready: back to the pacer      final: one outcome for each
                                                            subscriber, through its listener

The pacing (which task, when) is decided by the pure ``Pacer``; this module is the thin
async shell around it: it sleeps until the pacer's next time, hands due tasks to idle
workers, and feeds the pacer and the state machine what each answer said once the request
is over. A worker that finished a poll asks the pacer itself for the next due task, and
goes idle only when none is due: in a bulk fetch, polls follow each other without a trip
through the dispatcher.

Invariants:

* One task per id, however many subscribe (batches, single waits): it is polled by one
  loop and downloaded once. Each subscriber gets its own outcome, and its own files (the
  download itself, or hard links to it, or copies where links cannot be made).
* A task is waiting in the pacer or handed to exactly one worker: never polled twice at
  once. A task nobody subscribes to any more is forgotten by the pacer, so its polling
  stops (a poll already out finishes, and its answer is discarded).
* Every subscription ends exactly once: by the task's ending, by its own deadline, or by
  ``unsubscribe`` (its owner records that ending itself).
* State changes happen after the I/O returns, in the worker that did it; nothing changes
  state from inside a request. Listeners are called synchronously and must not raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Protocol

import anyio
import yarl

from aiotts._config import Limits, PollPolicy
from aiotts._context import log_task_id
from aiotts._errors import (
    AiottsError,
    ClientClosedError,
    OutputError,
    ResponseError,
    UnexpectedStatusError,
)
from aiotts._files import OutputTarget, share_file
from aiotts._hooks import SILENT, Emitter
from aiotts._models import Outcome, OutcomeState, TaskResult, TaskStatus
from aiotts._pacing import Pacer, Poll, Sleep, Timing
from aiotts._readiness import Readiness
from aiotts._session import HttpSession
from aiotts._slots import Slots
from aiotts._states import Event, State, TaskMachine
from aiotts._transfer import Answer, read_answer

__all__ = ["Listener", "Scheduler", "Subscription"]

_DEADLINE_PASSED = "the task's deadline passed"
_EXPIRED_AT_ONCE = 256
"""Tasks whose deadline came that one look for the next due task ends before the event
loop gets a turn: a batch's ids often share a deadline, and ending ten thousand in one go
held every other coroutine of the process back for a quarter of a second."""
_OUTCOMES: dict[State, OutcomeState] = {state: state.outcome for state in State if state.is_final}
"""The outcome each final state reports (``State.outcome``, looked up once)."""


class Listener(Protocol):
    """Who hears about a subscription: a batch, or one waiting call."""

    def moved(self, before: State | None, after: State) -> None:
        """The task moved from ``before`` (None: newly subscribed) to ``after``."""

    def ended(self, subscription: Subscription, outcome: Outcome) -> None:
        """The subscription ended with ``outcome``. Called once; must not raise."""


class Subscription:
    """One subscriber's interest in one task: where its files go, until when it waits."""

    __slots__ = ("deadline", "listener", "target", "task", "timer")

    def __init__(
        self, task: _Task, target: OutputTarget, deadline: float, listener: Listener
    ) -> None:
        self.task = task
        self.target = target
        self.deadline = deadline
        self.listener = listener
        self.timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<Subscription {self.task.task_id} {self.state.value}>"

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def state(self) -> State:
        return self.task.machine.state

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class _Task:
    """One task id the client is waiting for. Only the scheduler touches it."""

    __slots__ = ("download_target", "machine", "subscriptions", "task_id", "timing", "url")

    def __init__(self, task_id: str, url: yarl.URL) -> None:
        self.task_id = task_id
        # Built once: every poll of the task asks for the same URL, and parsing and encoding
        # it again for each request would cost more than the rest of a poll's own work.
        self.url = url
        self.machine = TaskMachine()
        self.subscriptions: list[Subscription] = []
        self.timing: Timing[_Task] | None = None
        self.download_target: OutputTarget | None = None

    def __repr__(self) -> str:
        return f"<_Task {self.task_id} {self.machine.state.value} x{len(self.subscriptions)}>"


class Scheduler:
    """Polls every task of one client. ``run`` works until it is cancelled (the client
    closes); ``subscribe`` and ``unsubscribe`` may be called any time, from the loop."""

    events: Emitter = SILENT
    """Where state changes are reported (the client's hooks and log records)."""

    def __init__(
        self,
        session: HttpSession,
        *,
        fetch_url: str,
        authorised: bool,
        poll: PollPolicy,
        limits: Limits,
        download_slots: Slots,
        durable: bool,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        readiness: Readiness | None = None,
    ) -> None:
        self._session = session
        self._fetch_url = yarl.URL(fetch_url)
        self._authorised = authorised
        self._limits = limits
        self._download_slots = download_slots
        self._durable = durable
        self.clock = clock
        self.wall_clock = wall_clock
        # What every answer said is fed to ``readiness`` (``_after``), which the pacer asks
        # when to poll the tasks the client submitted; ``clock`` must be the one the client
        # stamps its submits with.
        self._readiness = readiness
        self._pacer: Pacer[_Task] = Pacer(
            poll, now=clock(), planner=None if readiness is None else _Forecasts(readiness)
        )
        self._tasks: dict[str, _Task] = {}
        self._woken: asyncio.Future[None] | None = None
        self._sleeping_until = math.inf
        # The hand-off from the dispatcher to the workers. Plain asyncio primitives: taking a
        # free worker or a queued task costs no trip through the event loop, which matters
        # at thousands of polls a second. ``_idle`` counts workers waiting for a task, so
        # the dispatcher takes a task from the pacer only when a worker is free for it.
        self._idle = Slots(limits.polls)
        self._due: asyncio.Queue[_Task] = asyncio.Queue()
        self.bytes_written = 0
        self._stopped: AiottsError | None = None  # why ``run`` ended, once it has

    def __repr__(self) -> str:
        return f"<Scheduler tasks={len(self._tasks)} {self._pacer!r}>"

    # -- subscribers ---------------------------------------------------------------------

    def subscribe(
        self,
        task_id: str,
        target: OutputTarget,
        listener: Listener,
        *,
        deadline: float = math.inf,
        poll: PollPolicy | None = None,
    ) -> Subscription:
        """Wait for ``task_id`` until ``deadline`` (on ``clock``); its files go to
        ``target``. A task already being polled is joined, not polled again; ``poll`` only
        applies to a task that is new."""
        if self._stopped is not None:
            raise self._stopped
        now = self.clock()
        task = self._tasks.get(task_id)
        new = task is None
        if task is None:
            task = _Task(task_id, self._fetch_url.with_query(id=task_id))
            self._tasks[task_id] = task
        subscription = Subscription(task, target, deadline, listener)
        if new:
            task.subscriptions.append(subscription)
            task.machine.apply(Event.ADMIT)
            listener.moved(None, task.machine.state)
            if (moved := self.events.moved) is not None:
                moved(task_id, None, task.machine.state, task.subscriptions)
            task.timing = self._pacer.admit(task, now=now, deadline=deadline, policy=poll)
            self._wake(now)
            return subscription
        timing = task.timing
        assert timing is not None
        if deadline > timing.deadline:
            # The task waits as long as its most patient subscriber; the others end at
            # their own deadlines through timers.
            for earlier in task.subscriptions:
                self._arm(earlier, now)
            self._pacer.extend(timing, deadline)
        task.subscriptions.append(subscription)
        self._arm(subscription, now)
        listener.moved(None, task.machine.state)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> bool:
        """Stop waiting: the listener hears nothing more of it (its owner records how it
        ended). False if it had already ended. The last subscriber leaving stops the
        task's polling."""
        task = subscription.task
        try:
            task.subscriptions.remove(subscription)
        except ValueError:
            return False
        subscription.stop_timer()
        if not task.subscriptions:
            self._drop(task)
        return True

    def _arm(self, subscription: Subscription, now: float) -> None:
        timing = subscription.task.timing
        assert timing is not None
        if subscription.timer is None and subscription.deadline < timing.deadline:
            subscription.timer = asyncio.get_running_loop().call_later(
                max(subscription.deadline - now, 0.0), self._expire_one, subscription
            )

    def _expire_one(self, subscription: Subscription) -> None:
        """A subscriber's deadline came before its task's: it alone ends as expired."""
        subscription.timer = None
        task = subscription.task
        if subscription not in task.subscriptions:
            return
        task.subscriptions.remove(subscription)
        outcome = Outcome(
            task.task_id,
            State.EXPIRED.outcome,
            error=_DEADLINE_PASSED,
            finished_at=self.wall_clock(),
        )
        subscription.listener.moved(task.machine.state, State.EXPIRED)
        subscription.listener.ended(subscription, outcome)
        if not task.subscriptions:
            self._drop(task)

    def _drop(self, task: _Task) -> None:
        """Nobody waits for ``task`` any more: the pacer forgets it. A poll of it that is
        out finishes, and the worker discards its answer; a new subscriber for the same id
        starts a task of its own."""
        if task.timing is not None:
            self._pacer.forget(task.timing)
            task.timing = None  # no cycle through the pacer's entry outlives the task
        self._let_go(task)

    def _let_go(self, task: _Task) -> None:
        if self._tasks.get(task.task_id) is task:
            del self._tasks[task.task_id]
            if self._readiness is not None:
                self._readiness.forget(task.task_id)

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Dispatch and poll until cancelled (the client closes). However it stops, every
        task still subscribed to ends then, so no waiter is left waiting."""
        try:
            async with anyio.create_task_group() as workers:
                for _ in range(self._limits.polls):
                    workers.start_soon(self._work)
                await self._dispatch()
        except BaseException as exc:
            if isinstance(exc, Exception):  # a bug: say so to every subscriber
                error: AiottsError = ResponseError(f"the scheduler stopped: {exc!r}")
                event = Event.GAVE_UP
            else:
                error, event = ClientClosedError("the client was closed"), Event.CANCEL
            self._stopped = error
            for task in list(self._tasks.values()):
                if task.subscriptions and not task.machine.state.is_final:
                    self._end(task, event, error=str(error), cause=error)
            raise

    async def _dispatch(self) -> None:
        """Hand due tasks to idle workers, as the pacer decides."""
        while True:
            await self._idle.acquire()  # a worker is free
            while isinstance(due := self._take_due(), Sleep):
                await self._sleep_until(due.until)
            self._due.put_nowait(due)

    def _wake(self, due: float) -> None:
        if due < self._sleeping_until and self._woken is not None and not self._woken.done():
            self._woken.set_result(None)

    async def _sleep_until(self, when: float) -> None:
        """Sleep until ``when``, or until a task becomes due earlier (``_wake``)."""
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()
        self._woken = woken
        self._sleeping_until = when
        timer = None
        if when < math.inf:
            timer = loop.call_later(max(when - self.clock(), 0.0), _resolve, woken)
        try:
            await woken
        finally:
            self._sleeping_until = -math.inf
            self._woken = None
            if timer is not None:
                timer.cancel()

    async def _work(self) -> None:
        worker = asyncio.current_task()
        assert worker is not None
        while True:
            due: _Task | Sleep = await self._due.get()
            while not isinstance(due, Sleep):
                await self._poll(due, worker)
                due = self._take_due()  # no finished task kept while idle
            self._idle.release()

    def _take_due(self) -> _Task | Sleep:
        """The next task due now, or until when nothing is; the tasks whose deadline came
        are ended on the way (``_EXPIRED_AT_ONCE`` at most: then a sleep until now, so the
        loop gets its turn before the rest). Asked by the dispatcher for an idle worker,
        and by a worker that just finished a poll: a busy worker goes on at once, and the
        dispatcher's hand-off (a wake-up, a queue) is only for idle ones."""
        pacer = self._pacer
        for _ in range(_EXPIRED_AT_ONCE):
            decision = pacer.decide(self.clock())
            if isinstance(decision, Poll):
                return decision.key
            if isinstance(decision, Sleep):
                return decision
            self._end(decision.key, Event.DEADLINE, error=_DEADLINE_PASSED)
        # The rest after the loop's turn: a sleep of no time, and the dispatcher woken in
        # case it sleeps longer (a worker that gets this goes idle and hands over to it).
        now = self.clock()
        self._wake(now)
        return Sleep(now)

    # -- one poll ----------------------------------------------------------------------------

    async def _poll(self, task: _Task, worker: asyncio.Task[None]) -> None:
        timing = task.timing
        if timing is None or not task.subscriptions:
            return  # everyone left after the pacer handed it out
        target = task.download_target = task.subscriptions[0].target
        log_task_id.set(task.task_id)  # this worker's log lines name the task it polls
        answer: Answer | None = None
        failure: tuple[Event, AiottsError] | None = None
        now = self.clock()  # when the poll was sent: what the readiness model learns from
        # Only the request and the files' settling run under the task's deadline; the
        # ending is recorded outside it, so a deadline can never cut a recording short.
        # No deadline, no timer: most tasks have none.
        limit = None if timing.deadline == math.inf else _Deadline(worker, timing.deadline - now)
        cut = False
        try:
            try:
                answer = await self._session.request(
                    "poll",
                    "GET",
                    task.url,
                    partial(
                        read_answer,
                        task_id=task.task_id,
                        target=target,
                        download_slots=self._download_slots,
                    ),
                    authorised=self._authorised,
                )
                if not task.subscriptions:
                    answer.discard()  # everyone left while the poll was out
                elif answer.result.status is TaskStatus.COMPLETED:
                    self._move(task, Event.DOWNLOAD)
                    await answer.settle(durable=self._durable)
            except UnexpectedStatusError as exc:
                failure = (Event.UNKNOWN_STATUS, exc)
            except AiottsError as exc:  # retries ran out, or the answer was unusable
                failure = (Event.GAVE_UP, exc)
            except Exception as exc:  # a bug must not leave the task's subscribers waiting
                bug = ResponseError(f"task {task.task_id}: internal error: {exc!r}")
                bug.__cause__ = exc
                failure = (Event.GAVE_UP, bug)
        except asyncio.CancelledError:
            if limit is None or not limit.disarm():
                raise  # not the deadline: the client is closing, or the batch cancelled
            cut = True
        finally:
            if limit is not None:
                limit.disarm()
        if not task.subscriptions:
            pass  # dropped while its poll was out
        elif failure is not None:
            event, error = failure
            self._end(task, event, error=str(error), cause=error)
        elif answer is None or cut:
            if answer is not None:
                answer.discard()
            self._end(task, Event.DEADLINE, error=_DEADLINE_PASSED)
        else:
            self._after(task, answer, sent=now)

    def _after(self, task: _Task, answer: Answer, *, sent: float) -> None:
        """Feed what the answer to the poll sent at ``sent`` said to the readiness model,
        the task's machine and the pacer."""
        result = answer.result
        status = result.status
        answered = self.clock()  # one moment for the model, the replan and the next poll
        readiness = self._readiness
        if readiness is not None:
            fitted = readiness.fitted
            readiness.observe(task.task_id, status, sent=sent, answered=answered)
            if readiness.fitted and not fitted:  # forecasts from now on: for every task
                self._pacer.replan(answered)
                self._wake(-math.inf)
        if status is TaskStatus.COMPLETED:
            self.bytes_written += answer.bytes_written
            self._end(task, Event.SAVED, answer=answer)
        elif status is TaskStatus.ERROR:
            self._end(task, Event.SERVER_ERROR, result=result, error=result.why_no_audio)
        elif status is TaskStatus.NOT_EXIST:
            self._end(task, Event.NOT_FOUND, result=result, error=result.why_no_audio)
        else:
            self._move(task, Event.NOT_READY)
            assert task.timing is not None
            due = self._pacer.not_ready(
                task.timing, now=answered, processing=status is TaskStatus.PROCESSING
            )
            self._wake(due)

    # -- endings -----------------------------------------------------------------------------

    def _move(self, task: _Task, event: Event) -> State:
        before = task.machine.state
        after = task.machine.apply(event)
        if after is not before:
            for subscription in task.subscriptions:
                subscription.listener.moved(before, after)
            if (moved := self.events.moved) is not None:
                moved(task.task_id, before, after, task.subscriptions)
        return after

    def _end(
        self,
        task: _Task,
        event: Event,
        *,
        answer: Answer | None = None,
        result: TaskResult | None = None,
        error: str | None = None,
        cause: AiottsError | None = None,
    ) -> None:
        """Apply the final event and tell every subscriber. Synchronous: nothing can come
        between the transition and the listeners' records.

        ``result`` (or the answer's) is the server's answer that ended the task: its
        messages, warnings and ``responseStatusCode`` go into every outcome, success
        included."""
        before = task.machine.state
        after = task.machine.apply(event)
        self._let_go(task)
        if task.timing is not None:
            self._pacer.forget(task.timing)
            task.timing = None  # no cycle through the pacer's entry outlives the task
        subscriptions, task.subscriptions = task.subscriptions, []
        if answer is not None:
            result = answer.result
        downloaded = answer.pending if answer is not None else ()
        kept = False
        for subscription in subscriptions:
            subscription.stop_timer()
            files: tuple[Path, ...] = ()
            state, failure, failed_because = after, error, cause
            if downloaded:
                try:
                    files = self._files_for(subscription, answer)  # type: ignore[arg-type]
                    kept = kept or _same_place(subscription.target, task.download_target)
                except OutputError as exc:
                    state, failure, failed_because = State.ABORTED, str(exc), exc
            outcome = Outcome(
                task.task_id,
                _OUTCOMES[state],
                files=files,
                bytes_written=answer.bytes_written if files and answer is not None else 0,
                error=failure,
                messages=result.messages if result is not None else (),
                warnings=result.warnings if result is not None else (),
                response_code=result.response_code if result is not None else None,
                finished_at=self.wall_clock(),
                cause=failed_because,
            )
            subscription.listener.moved(before, state)
            subscription.listener.ended(subscription, outcome)
        if downloaded and not kept:
            for file in downloaded:  # its subscriber left: nobody wants this copy
                with contextlib.suppress(OSError):
                    file.final.unlink()

    def _files_for(self, subscription: Subscription, answer: Answer) -> tuple[Path, ...]:
        """The subscriber's own files: the download itself if they asked for that place,
        else links to it (copies across file systems) at their own target."""
        task = subscription.task
        if _same_place(subscription.target, task.download_target):
            return answer.files
        return tuple(
            share_file(
                file.final,
                subscription.target.path(index, file.result_type),
                task_id=task.task_id,
            )
            for index, file in enumerate(answer.pending)
        )


class _Forecasts:
    """The pacer's planner: the client's readiness model, asked by task id."""

    __slots__ = ("_readiness",)

    def __init__(self, readiness: Readiness) -> None:
        self._readiness = readiness

    def next_poll(self, key: _Task, *, now: float) -> float | None:
        return self._readiness.next_poll(key.task_id, now=now)


class _Deadline:
    """A task's deadline over one poll: past it, the worker's poll is cancelled.

    What ``asyncio.timeout`` does, at a fraction of its cost per poll: one timer, no
    context manager. The cancellation is the worker's own, counted like any other
    (``Task.cancel``/``uncancel``), so a cancellation from outside that comes at the same
    time (the client closing, a batch cancelled) is never taken for the deadline.
    """

    __slots__ = ("_armed", "_cancelling", "_timer", "_worker", "passed")

    def __init__(self, worker: asyncio.Task[None], delay: float) -> None:
        self._worker = worker
        self._cancelling = worker.cancelling()
        self._armed = True
        self.passed = False
        self._timer = worker.get_loop().call_later(max(delay, 0.0), self._pass)

    def _pass(self) -> None:
        self.passed = True
        self._worker.cancel()

    def disarm(self) -> bool:
        """Stop the timer (idempotent). True if the deadline passed and its cancellation
        was the only one: it is taken back, and the caller ends the poll as expired."""
        if not self._armed:
            return False
        self._armed = False
        self._timer.cancel()
        return self.passed and self._worker.uncancel() <= self._cancelling


def _same_place(target: OutputTarget, other: OutputTarget | None) -> bool:
    """``target == other``, without comparing fields when they are one object (the
    common case: the task's only subscriber)."""
    return target is other or target == other


def _resolve(woken: asyncio.Future[None]) -> None:
    if not woken.done():
        woken.set_result(None)
