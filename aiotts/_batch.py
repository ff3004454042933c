"""``Batch``: what ``fetch_many`` returns, an async iterator of outcomes.

A batch takes ids in (validating them, dropping duplicates, skipping what an earlier run
finished), subscribes each to the client's scheduler, records every ending in the
manifest, and hands the outcomes to its caller. It runs in a task of its own that the
client keeps, not in the caller's frame, so leaving an ``async for`` early (``break``, an
exception, a cancellation) can never tear down a task group from the wrong task. Instead:

* a cancellation while the caller waits for the next outcome cancels the batch;
* leaving ``async for`` early (``break``, ``return``, an exception) drops the loop's
  ``Reader`` (``_reading.py``), which cancels the batch: the batch itself is held by its
  task, so its own ``__del__`` would never run;
* ``async with client.fetch_many(...) as batch`` cancels on exit *and waits* until every
  id in flight is recorded;
* closing the client cancels and waits for every batch still running.

Invariants:

* Every distinct id taken in ends exactly once: its record is written and committed, then
  its outcome is queued for the caller. Commits are grouped: the outcomes recorded during
  one turn of the event loop are committed together at the end of it (``_save``), and only
  then handed out; the batch's own ending saves synchronously before the record closes.
  On cancellation the ids in flight are recorded as
  ``cancelled`` (synchronously, so the record is whole even then); at the batch deadline
  they and every id not yet taken in end as ``expired``.
* Ids are taken in only while fewer than ``tasks_in_flight`` are in flight *or* waiting to
  be read, so a caller that stops reading slows the batch down instead of letting
  outcomes pile up, and an iterable of a million ids never sits in memory. The batch ends
  only once every outcome was queued: a slow reader loses none. A batch that waited for
  room is woken once the reader made room for a chunk (``_low_water``), not per outcome.
* Ids are taken in chunks (``_admission.chunks``): duplicates and what an earlier run
  finished are answered for a whole chunk at once. An id of a chunk is taken in (and so
  must end) from the moment the chunk's sightings are recorded: until it is subscribed or
  concluded it waits in ``_admitting``, which a cancellation or the deadline concludes.
* An error that no task can get past (the credentials refused, the manifest unwritable)
  stops the batch: every id in flight is recorded with that error as its cause, and the
  caller gets the error itself after the outcomes already queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
from collections import Counter, deque
from collections.abc import AsyncGenerator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Any

import anyio

from aiotts._admission import (
    ProofOf,
    ResumeRules,
    SeenIds,
    Skips,
    TaskIds,
    all_plain,
    chunks,
    id_problem,
)
from aiotts._config import PollPolicy
from aiotts._errors import (
    AiottsError,
    AuthenticationError,
    ConnectError,
    OutputError,
    TokenUnavailableError,
)
from aiotts._files import OutputTarget
from aiotts._manifest import Manifest
from aiotts._models import Outcome, OutcomeState
from aiotts._reading import Reader
from aiotts._scheduler import Scheduler, Subscription
from aiotts._session import HttpSession
from aiotts._sightings import RecordedSightings
from aiotts._states import State
from aiotts._store import OutcomeStore

__all__ = ["STOPS_THE_BATCH", "Batch", "BatchOptions", "BatchReport", "BatchStatistics"]


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


@dataclass(frozen=True, slots=True)
class BatchReport:
    """Every outcome of a batch, the successes and the rest kept apart."""

    done: tuple[Outcome, ...]
    failed: tuple[Outcome, ...]
    statistics: BatchStatistics

    @property
    def ok(self) -> bool:
        return not self.failed


_STATE_OF = {state: State(state.value) for state in OutcomeState}

STOPS_THE_BATCH: tuple[type[AiottsError], ...] = (
    AuthenticationError,
    ConnectError,
    TokenUnavailableError,
)
"""Errors about the service, not about one task: the credentials (or a fresh token) were
refused, or the service (or its token endpoint) cannot be reached or keeps failing even
after the request's retries. Every other
task would meet the same error, so the batch stops at the first one instead of failing
each id in turn (and, for refused credentials, earning the token endpoint's lockout)."""


_NO_SKIPS = Skips()


def _stopped_by(error: AiottsError) -> str:
    return f"the batch stopped: {error}"


@dataclass(frozen=True, slots=True)
class BatchOptions:
    """What ``fetch_many`` was asked for."""

    target_for: Callable[[str], OutputTarget]
    capacity: int
    task_timeout: float = math.inf
    batch_timeout: float = math.inf
    poll: PollPolicy | None = None
    resume: ResumeRules | None = None
    cleanup: Callable[[], object] | None = None
    """Run in a worker thread while the batch runs (the removal of a crashed run's
    temporary files, which reads the whole folder); the batch ends after it."""
    clean_end: Callable[[], str | None] | None = None
    """At a clean end (every id taken in ended through the scheduler or was skipped, no
    error, no cancellation, no deadline, ``cleanup`` done), the mark this returns is
    recorded in the store (``OutcomeStore.record_clean_end``): a later batch into a folder
    that still shows that mark has no leftover temporary file to look for."""


class Batch:
    """A running batch. Iterate it for outcomes as tasks end; ``statistics()`` any time."""

    def __init__(
        self,
        scheduler: Scheduler,
        session: HttpSession,
        ids: TaskIds,
        spawn: Callable[[Coroutine[Any, Any, None]], object],
        options: BatchOptions,
        *,
        manifest: Manifest | OutcomeStore | None = None,
    ) -> None:
        self._scheduler = scheduler
        self._session = session
        self._ids = ids
        self._spawn = spawn
        self._options = options
        self._manifest = manifest
        self._seen: SeenIds | None = None  # made when the batch starts, closed when it ends
        self._sightings: RecordedSightings | None = None  # a resume's, from a store
        self._unsaved: deque[Outcome] = deque()  # recorded, not yet committed nor handed out
        self._save_due = False
        self._active: dict[str, Subscription] = {}
        self._admitting: deque[str] = deque()  # taken in, neither subscribed nor concluded
        self._skips = _NO_SKIPS  # what an earlier run finished, of the chunk being taken in
        self._ready: deque[Outcome] = deque()
        self._held = 0  # ids in flight plus outcomes not yet read: bounded by capacity
        self._room: asyncio.Future[None] | None = None
        # The reader wakes a batch that waits for room once ``_held`` is down to this.
        self._low_water = options.capacity - max(1, min(options.capacity // 4, 512))
        self._news: asyncio.Future[None] | None = None
        self._all_ended: asyncio.Future[None] | None = None
        self._counts: Counter[State] = Counter()
        self._resumed = 0
        self._bytes_written = 0
        self._scope = anyio.CancelScope()
        self._feeding = anyio.CancelScope()
        self._finished = anyio.Event()
        self._started = False
        self._done = False  # every outcome queued (or the batch stopped)
        self._clean = False  # every id ended in the ordinary way, nothing left behind
        self._cleaned_up = False  # the folder holds no crashed run's temporary file
        self._error: AiottsError | None = None
        self._clock = scheduler.clock
        self._started_at = self._clock()
        counters = session.counters
        self._requests_before = Counter(counters.requests)
        self._retries_before = counters.retries
        self._throttled_before = counters.throttled
        self._final: BatchStatistics | None = None  # the snapshot taken when it finished

    def __repr__(self) -> str:
        state = "finished" if self._finished.is_set() else "running" if self._started else "new"
        stats = self.statistics()
        states = " ".join(f"{name}={n}" for name, n in stats.states.items() if n)
        return f"<Batch {state} {states or 'empty'} requests={sum(stats.requests.values())}>"

    def statistics(self) -> BatchStatistics:
        """The batch so far; once it finished, the snapshot taken then (the requests,
        retries and 429s are the client's while the batch ran: shared with any other batch
        or wait running at the same time)."""
        if self._final is not None:
            return self._final
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
            elapsed=self._clock() - self._started_at,
            rate_limit=self._session.limiter.rate,
        )

    # -- the listener of its subscriptions --------------------------------------------------

    def moved(self, before: State | None, after: State) -> None:
        if before is not None:
            self._counts[before] -= 1
        self._counts[after] += 1

    def ended(self, subscription: Subscription, outcome: Outcome) -> None:
        del self._active[subscription.task_id]
        self._held -= 1  # the id's hold passes to its outcome, until the caller reads it
        self._bytes_written += outcome.bytes_written
        cause = outcome.cause
        if isinstance(cause, STOPS_THE_BATCH):
            # Recorded like every other id the stop touches, then the rest are stopped.
            self._record(dataclasses.replace(outcome, error=_stopped_by(cause)))
            self._stop(cause)
        else:
            self._record(outcome)
        self._check_all_ended()

    # -- running -------------------------------------------------------------------------------

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self._started_at = self._clock()
            self._spawn(self._run())

    async def _run(self) -> None:
        source = chunks(self._ids)
        self._seen = SeenIds()
        resume = self._options.resume
        if resume is not None and resume.uses_proofs and isinstance(resume.earlier, OutcomeStore):
            self._sightings = RecordedSightings(resume.earlier, self._seen)
        cleaned = anyio.Event()
        if self._options.cleanup is not None:
            self._spawn(self._clean_up(self._options.cleanup, cleaned))
        else:
            self._cleaned_up = True  # nothing to look for: the folder is as a clean end left it
            cleaned.set()
        try:
            with self._scope:  # catches its own cancellation: the ending is recorded inside
                try:
                    with anyio.move_on_after(self._options.batch_timeout) as batch_deadline:
                        with self._feeding:
                            async for chunk in source:
                                await self._admit(chunk)
                        await self._until_all_ended()
                        # No await since: neither the deadline nor a cancellation struck.
                        self._clean = self._error is None and not self._active
                    if batch_deadline.cancelled_caught:
                        await self._expire_everything(source)
                except BaseException:
                    self._end_active(State.CANCELLED, "the batch was cancelled")
                    raise
        finally:
            try:
                with anyio.CancelScope(shield=True):
                    await source.aclose()
                    await cleaned.wait()
            finally:
                self._save()
                if self._manifest is not None:
                    self._record_clean_end(self._manifest)
                    self._manifest.close()
                self._seen.close()
                self._done = True
                self._final = self.statistics()  # nothing it counts moves after this
                self._finished.set()
                self._tell_reader()

    async def _clean_up(self, cleanup: Callable[[], object], cleaned: anyio.Event) -> None:
        try:
            await anyio.to_thread.run_sync(cleanup)  # never abandoned: it ends first
            self._cleaned_up = True
        finally:
            cleaned.set()

    def _record_clean_end(self, record: Manifest | OutcomeStore) -> None:
        """Mark the store if the batch ended cleanly (see ``BatchOptions.clean_end``);
        called after the last outcome was committed, when nothing of it touches the
        folder any more. Not marking is always safe: the next batch reads the folder."""
        mark_of = self._options.clean_end
        if not (self._clean and self._cleaned_up and self._error is None):
            return
        if mark_of is None or not isinstance(record, OutcomeStore):
            return
        with contextlib.suppress(OutputError):
            record.record_clean_end(mark_of)

    async def _admit(self, chunk: list[object]) -> None:
        """Take in the ids of ``chunk``: each new one is refused, skipped or subscribed."""
        # A duplicate is fetched and reported once.
        fresh, raws, proofs = self._first_sightings(chunk)
        if not fresh:
            return
        pending = self._admitting
        problems: dict[str, str] = {}
        askable = fresh
        pending.extend(fresh)
        if not all_plain(raws):
            askable = []
            for task_id, raw in zip(fresh, raws, strict=True):
                problem = id_problem(raw)
                if problem is None:
                    askable.append(task_id)
                else:
                    problems[task_id] = problem
        resume = self._options.resume
        if resume is None or not askable:
            skips = _NO_SKIPS
        else:
            skips = resume.finished_among(askable, proofs if askable is fresh else None)
        self._skips = skips  # what ``_end_active`` hands out for an id still pending
        skipped = skips.recorded
        if skipped and len(skipped) == len(pending) and not skips.recorded_not_done:
            await self._hand_out_done(skipped)  # every id of the chunk: done before
        else:
            await self._take_in(skips, problems)
        # Every id of the chunk left ``pending``: its outcomes are the reader's alone now
        # (held here, they would outlive the reading and age into the collector's older
        # generations, which it then walks whole, again and again).
        any_skipped = bool(skipped)
        self._skips = _NO_SKIPS
        del skips, skipped
        if any_skipped:
            self._tell_reader()
        if any_skipped or len(chunk) > 1:
            # Taking in needs no I/O, and the chunks of a list come without a wait: the
            # loop gets a turn after each one (the reader its outcomes so far, the workers
            # their first polls, every other coroutine of the process its share). The ids
            # of an async source come one by one, each after its own wait.
            await anyio.lowlevel.checkpoint()

    def _first_sightings(
        self, chunk: list[object]
    ) -> tuple[Sequence[str], Sequence[object], list[ProofOf] | None]:
        """The ids of ``chunk`` not seen before in this batch, their values in the input,
        and the store's file proofs of them when a resume found those on the way."""
        if self._sightings is not None:
            return self._sightings.new_among(chunk)
        assert self._seen is not None
        fresh, raws = self._seen.new_among(chunk)
        return fresh, raws, None

    async def _hand_out_done(self, skipped: dict[str, Outcome]) -> None:
        """Queue the outcomes of ``_admitting``, every one an id an earlier run finished
        ``done``, as room allows: a slice at a time, with no per-id bookkeeping."""
        pending = self._admitting
        capacity = self._options.capacity
        ready = self._ready
        # Ids leave ``pending`` only in the same step (no await in between) that queues
        # their outcomes; ``_end_active`` empties it, which ends this loop.
        while pending:
            room = capacity - self._held
            if room <= 0:
                await self._wait_for_room()
                continue
            if room >= len(pending):
                outcomes = [skipped[task_id] for task_id in pending]
                pending.clear()
            else:
                popleft = pending.popleft
                outcomes = [skipped[popleft()] for _ in range(room)]
            count = len(outcomes)
            self._held += count
            self._count_skipped(count)
            if (ended := self._scheduler.events.ended) is not None:
                for outcome in outcomes:
                    ended(outcome, self)
            ready.extend(outcomes)

    async def _take_in(self, skips: Skips, problems: dict[str, str]) -> None:
        """Take in the ids of ``_admitting`` one by one: each is handed out as an earlier
        run ended it, recorded as a whole file found, refused, or subscribed."""
        pending = self._admitting
        skipped, unrecorded = skips.recorded, skips.unrecorded
        options = self._options
        capacity = options.capacity
        ready = self._ready
        done = OutcomeState.DONE
        ended = self._scheduler.events.ended  # None when nothing listens
        skipped_done = 0  # added to the statistics before any await and at the end
        # Each id leaves ``pending`` only when it is subscribed or concluded in the same
        # step (no await in between); ``_end_active`` empties it, which ends this loop.
        while pending:
            if self._held >= capacity:
                self._count_skipped(skipped_done)
                skipped_done = 0
                await self._wait_for_room()
                if not pending:
                    break
                ended = self._scheduler.events.ended
            task_id = pending.popleft()
            outcome = skipped.get(task_id)
            if outcome is not None:
                if outcome.state is done:
                    skipped_done += 1
                else:
                    self._counts[_STATE_OF[outcome.state]] += 1
                    self._resumed += 1
                if ended is not None:
                    ended(outcome, self)
                ready.append(outcome)
                self._held += 1
                continue
            outcome = unrecorded.get(task_id)
            if outcome is not None:
                self._counts[_STATE_OF[outcome.state]] += 1
                self._resumed += 1
                self._record(outcome)
                continue
            problem = problems.get(task_id)
            if problem is not None:
                self._conclude_unadmitted(task_id, State.ABORTED, problem)
                continue
            self._held += 1
            self._active[task_id] = self._scheduler.subscribe(
                task_id,
                options.target_for(task_id),
                self,
                deadline=self._clock() + options.task_timeout,
                poll=options.poll,
            )
        self._count_skipped(skipped_done)

    def _count_skipped(self, done: int) -> None:
        self._counts[State.DONE] += done
        self._resumed += done

    async def _wait_for_room(self) -> None:
        self._tell_reader()  # outcomes queued without a word to the reader are there
        while self._held >= self._options.capacity:
            self._room = asyncio.get_running_loop().create_future()
            try:
                await self._room
            finally:
                self._room = None

    async def _until_all_ended(self) -> None:
        if self._active:
            self._all_ended = asyncio.get_running_loop().create_future()
            try:
                await self._all_ended
            finally:
                self._all_ended = None

    def _check_all_ended(self) -> None:
        if not self._active and self._all_ended is not None and not self._all_ended.done():
            self._all_ended.set_result(None)

    # -- endings -----------------------------------------------------------------------------

    def _record(self, outcome: Outcome) -> None:
        """Add the outcome to the record; it is handed out after the next commit."""
        self._held += 1  # held from now on: an unsaved outcome counts like a queued one
        self._unsaved.append(outcome)
        if (ended := self._scheduler.events.ended) is not None:
            ended(outcome, self)
        if self._manifest is not None:
            try:
                self._manifest.add(outcome)
            except OutputError as exc:
                self._stop(exc)
        if not self._save_due:
            self._save_due = True
            asyncio.get_running_loop().call_soon(self._save)

    def _save(self) -> None:
        """Commit what was recorded, then queue it for the caller. If the commit fails, the
        batch stops with that error; the outcomes are still handed out, before it."""
        self._save_due = False
        if not self._unsaved:
            return
        if self._manifest is not None:
            try:
                self._manifest.commit()
            except OutputError as exc:
                self._stop(exc)  # may record more: they join ``_unsaved``, below
        self._ready.extend(self._unsaved)
        self._unsaved.clear()
        self._tell_reader()

    def _conclude_unadmitted(self, task_id: str, state: State, error: str) -> None:
        """Record the end of an id that never became a subscription."""
        self._counts[state] += 1
        self._record(
            Outcome(task_id, state.outcome, error=error, finished_at=self._scheduler.wall_clock())
        )

    def _end_active(self, state: State, error: str, cause: AiottsError | None = None) -> None:
        """End every id in flight (and the one being taken in) as ``state``; synchronous,
        so the record is whole even when cancelled."""
        for task_id, subscription in list(self._active.items()):
            if self._scheduler.unsubscribe(subscription):
                del self._active[task_id]
                self._held -= 1
                self.moved(subscription.state, state)
                self._record(
                    Outcome(
                        task_id,
                        state.outcome,
                        error=error,
                        finished_at=self._scheduler.wall_clock(),
                        cause=cause,
                    )
                )
        skips = self._skips
        while self._admitting:
            task_id = self._admitting.popleft()
            # An id an earlier run finished ends as it did: its record stays as it is.
            skipped = skips.recorded.get(task_id)
            unrecorded = skips.unrecorded.get(task_id)
            if skipped is not None:
                self._counts[_STATE_OF[skipped.state]] += 1
                self._resumed += 1
                if (ended := self._scheduler.events.ended) is not None:
                    ended(skipped, self)
                self._ready.append(skipped)
                self._held += 1
            elif unrecorded is not None:
                self._counts[_STATE_OF[unrecorded.state]] += 1
                self._resumed += 1
                self._record(unrecorded)
            else:
                self._conclude_unadmitted(task_id, state, error)
        self._tell_reader()
        self._check_all_ended()

    def _stop(self, error: AiottsError) -> None:
        """No other task can succeed: record the rest with this cause and stop taking ids."""
        if self._error is not None:
            return
        self._error = error
        self._feeding.cancel()
        self._end_active(State.ABORTED, _stopped_by(error), error)

    async def _expire_everything(self, source: AsyncGenerator[list[object], None]) -> None:
        """The batch deadline passed: every id in flight, and every id not yet taken in,
        ends as expired."""
        error = "the batch's deadline passed"
        self._end_active(State.EXPIRED, error)
        self._skips = _NO_SKIPS
        pending = self._admitting  # a cancellation meanwhile concludes what is left in it
        async for chunk in source:
            pending.extend(self._first_sightings(chunk)[0])
            while pending:
                if self._held >= self._options.capacity:
                    await self._wait_for_room()
                    continue
                self._conclude_unadmitted(pending.popleft(), State.EXPIRED, error)

    # -- the caller's side -----------------------------------------------------------------------

    def _tell_reader(self) -> None:
        if self._news is not None and not self._news.done():
            self._news.set_result(None)

    def cancel(self) -> None:
        """Stop the batch. Ids in flight are recorded as cancelled, temporary files removed."""
        self._scope.cancel()

    async def wait_closed(self) -> None:
        """Wait until the batch stopped and cleaned up after itself."""
        if self._started:
            with anyio.CancelScope(shield=True):
                await self._finished.wait()

    def __aiter__(self) -> Reader[Outcome]:
        # What the loop holds: dropped when the loop is left early, it cancels the batch.
        return Reader(self)

    def reader_left(self) -> None:
        """The ``async for`` that read this batch was left: cancel it unless it ended."""
        if not self._done:
            self.cancel()

    async def __anext__(self) -> Outcome:
        ready = self._ready
        if ready:  # the common case of a fast batch: no future, no wait
            outcome = ready.popleft()
            self._held -= 1
            room = self._room
            if room is not None and self._held <= self._low_water and not room.done():
                room.set_result(None)
            return outcome
        self._start()
        try:
            while not self._ready:
                if self._done:
                    if self._error is not None:
                        raise self._error
                    raise StopAsyncIteration
                self._news = asyncio.get_running_loop().create_future()
                try:
                    await self._news
                finally:
                    self._news = None
        except (StopAsyncIteration, AiottsError):
            raise
        except BaseException:
            self.cancel()  # the caller was cancelled or failed: nobody reads any more
            raise
        outcome = self._ready.popleft()
        self._held -= 1
        room = self._room
        if room is not None and self._held <= self._low_water and not room.done():
            room.set_result(None)
        return outcome

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

    def __del__(self) -> None:
        # A started batch is held by its task until it finished: only one made and never
        # iterated can be collected with something to release (what __init__ took).
        if not self._started and self._manifest is not None:
            self._manifest.close()

    async def collect(self) -> BatchReport:
        """Run to the end; every outcome, the done ones apart from the rest."""
        done: list[Outcome] = []
        failed: list[Outcome] = []
        async with self:
            async for outcome in self:
                (done if outcome.ok else failed).append(outcome)
        return BatchReport(tuple(done), tuple(failed), self.statistics())
