"""Hooks: callbacks for what happens inside a client, and the one object that calls them.

A user registers a frozen ``Hooks`` value on the client (``TTSClient(hooks=...)``) or on one
batch (``fetch_many(..., hooks=...)``); each field is a callable taking one event (a frozen
dataclass below), or None. The client turns every ``Hooks`` it was given, and its structured
log records (``_logs``), into one ``Emitter``; the modules where things happen call it.

Invariants:

* **Nothing listens, nothing is paid.** Each call site is one test of an ``Emitter``
  attribute (``if (moved := events.moved) is not None:``): an attribute is None when no hook
  and no log record wants that kind of event, so a client without hooks builds no event
  and calls nothing. Which attributes are set is decided when the client is made (and
  when a batch with hooks of its own starts).
* **A hook never breaks the work.** An exception from a hook is logged (the first from
  each hook as a warning with its traceback, later ones at debug level) and the work goes
  on; only ``BaseException`` (a cancellation, ``KeyboardInterrupt``) passes through.
* **Order.** Sync hooks are called at once, on the event loop, in the order the events
  happen, before the work that caused them goes on (so a slow sync hook slows the
  client): a task's moves in order, its files (``FileWritten``) just before its ending.
  Async hooks are awaited one at a time, in that same order, by one task of the client,
  so they never hold up a poll; at most ``ASYNC_BACKLOG`` events wait for them, and an
  event that finds the backlog full is dropped (counted in ``dropped``, with a warning
  the first time). Between a sync and an async hook there is no order.
  ``TTSClient.aclose`` waits up to ``DRAIN_TIMEOUT`` seconds for the backlog.
* **No secret in an event.** Events carry ids, states, counts, times, paths and error
  texts that were made safe where they entered aiotts (``_redact``); never a token, a
  secret or a request header.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from weakref import WeakKeyDictionary

from aiotts import _redact
from aiotts._context import log_task_id
from aiotts._errors import UsageError
from aiotts._models import Outcome

if TYPE_CHECKING:  # only for annotations: these modules import this one
    from yarl import URL

    from aiotts._retry import Retryable
    from aiotts._states import State

__all__ = [
    "ASYNC_BACKLOG",
    "DRAIN_TIMEOUT",
    "Emitter",
    "FileWritten",
    "Hooks",
    "RateChanged",
    "RequestFinished",
    "RetryScheduled",
    "TaskStateChanged",
    "Throttled",
    "TokenRefreshed",
]

log = logging.getLogger("aiotts")

ASYNC_BACKLOG = 10_000
"""Events waiting for async hooks, at most; more are dropped."""
DRAIN_TIMEOUT = 10.0
"""Seconds ``aclose`` waits for async hooks to take the events already waiting."""

E = TypeVar("E")


# -- the events --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskStateChanged:
    """A task moved to ``state``: ``polling``, ``downloading``, or one of the endings
    (``done``, ``failed``, ``missing``, ``expired``, ``aborted``, ``cancelled``).

    An ending carries its ``outcome``, the same value the batch yields (a task awaited by
    several batches or waits ends once for each of them). ``elapsed`` is the time since
    the client took the task in, or None when it did not (an id skipped on resume)."""

    task_id: str
    state: str
    previous: str | None
    """The state before, or None for a task just taken in."""
    at: float
    """Wall-clock time (``time.time()``)."""
    elapsed: float | None
    outcome: Outcome | None = None

    @property
    def final(self) -> bool:
        return self.outcome is not None


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    """A request failed in a way that may pass; it is sent again after ``delay`` seconds."""

    kind: str
    """What the request was for: ``poll``, ``token``, ``status``, ``fetch``..."""
    task_id: str | None
    attempt: int
    """The attempt that failed (1: the first)."""
    delay: float
    cause: str
    status: int | None
    """The HTTP status of the failed attempt, if an answer came."""


@dataclass(frozen=True, slots=True)
class Throttled:
    """The server answered 429 (too many requests)."""

    kind: str
    task_id: str | None
    retry_after: float | None
    """The server's ``Retry-After``, in seconds, if it sent one."""
    rate: float | None
    """The rate limiter's rate at this moment, requests per second (None: unlimited)."""


@dataclass(frozen=True, slots=True)
class RateChanged:
    """The rate limiter slowed the whole client down, after a second with many 429s."""

    rate: float
    """Requests per second allowed from now on."""
    slowdowns: int
    """How many times this client has slowed down so far."""


@dataclass(frozen=True, slots=True)
class TokenRefreshed:
    """A new bearer token was received (the token itself is never in an event)."""

    lifetime: float
    """Seconds it is used for (the declared lifetime, clamped)."""
    refreshes: int
    """Token requests this client has sent so far."""


@dataclass(frozen=True, slots=True)
class FileWritten:
    """A result file took its final name: it is whole."""

    task_id: str
    path: Path
    bytes_written: int


@dataclass(frozen=True, slots=True)
class RequestFinished:
    """An answer came (any status). Requests that got no answer show up as retries."""

    kind: str
    method: str
    path: str
    """The URL's path (the endpoint), without the query."""
    status: int
    seconds: float
    """From sending the request to its status line."""
    task_id: str | None


# -- what a user registers ---------------------------------------------------------------------

Hook = Callable[[E], Any]
"""A callable taking one event: a plain function, or an async one (awaited by the client)."""


@dataclass(frozen=True, slots=True)
class Hooks:
    """Callbacks for a client's events, each a sync or async callable or None.

    ``on_state`` and ``on_file`` are about tasks, and work per batch too
    (``fetch_many(..., hooks=...)``); the others are about the client as a whole (every
    batch and call of it share its requests, token and rate limiter), so on a batch they
    are refused."""

    on_state: Hook[TaskStateChanged] | None = None
    on_retry: Hook[RetryScheduled] | None = None
    on_throttle: Hook[Throttled] | None = None
    on_rate: Hook[RateChanged] | None = None
    on_token: Hook[TokenRefreshed] | None = None
    on_file: Hook[FileWritten] | None = None
    on_request: Hook[RequestFinished] | None = None

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if value is not None and not callable(value):
                raise UsageError(
                    f"Hooks.{item.name} must be a callable taking one event, or None; "
                    f"got {type(value).__name__}"
                )


HooksArgument = Hooks | Sequence[Hooks] | None
"""What ``hooks=`` accepts: one ``Hooks``, several (each called in turn), or None."""

_TASK_FIELDS = ("on_state", "on_file")


def hooks_list(hooks: HooksArgument, *, name: str = "hooks") -> tuple[Hooks, ...]:
    """``hooks`` as a tuple; a clear error for anything else."""
    if hooks is None:
        return ()
    if isinstance(hooks, Hooks):
        return (hooks,)
    if isinstance(hooks, Sequence):
        items = tuple(hooks)
        if all(isinstance(item, Hooks) for item in items):
            return items
    raise UsageError(
        f"{name} must be an aiotts.Hooks, a list of them, or None; got {type(hooks).__name__}"
    )


def _is_async(function: Callable[..., Any]) -> bool:
    call = getattr(type(function), "__call__", None)  # noqa: B004 -- an instance with async __call__
    return inspect.iscoroutinefunction(function) or (
        call is not None and inspect.iscoroutinefunction(call)
    )


class _Calls(Generic[E]):
    """The callables of one kind of event, split into sync and async once."""

    __slots__ = ("asynchronous", "synchronous")

    def __init__(self, functions: Iterable[Callable[[E], Any]]) -> None:
        self.synchronous: list[Callable[[E], Any]] = []
        self.asynchronous: list[Callable[[E], Any]] = []
        for function in functions:
            (self.asynchronous if _is_async(function) else self.synchronous).append(function)

    def __bool__(self) -> bool:
        return bool(self.synchronous or self.asynchronous)


@dataclass(frozen=True, slots=True)
class _TaskCalls:
    """A batch's own hooks."""

    on_state: _Calls[TaskStateChanged]
    on_file: _Calls[FileWritten]


_ENTRY_POINTS = ("moved", "ended", "retry", "throttled", "rate", "token", "response", "file")


class _Seen:
    """What the emitter remembers of a task in flight: when it was taken in, its state."""

    __slots__ = ("since", "state")

    def __init__(self, since: float, state: str) -> None:
        self.since = since
        self.state = state


# -- the emitter -----------------------------------------------------------------------------


class Emitter:
    """Calls every hook and writes every log record for one client's events.

    The public attributes are the call sites' entry points, each None when nothing wants
    that kind of event (see the module docstring):

    * ``moved(task_id, before, after, subscriptions)``: a task changed state (not an
      ending); ``subscriptions`` are the task's, for the hooks of their batches;
    * ``ended(outcome, listener)``: one subscriber's outcome (a batch, or None for a wait);
    * ``retry(failure, delay, kind)``, ``throttled(kind, retry_after, rate)``,
      ``rate(rate, slowdowns)``, ``token(lifetime, refreshes)``,
      ``response(kind, method, status, started, url)``, ``file(task_id, files, total)``.
    """

    __slots__ = (
        "_backlog",
        "_batch_hooks",
        "_calls",
        "_clock",
        "_consumer",
        "_failed",
        "_log_levels",
        "_seen",
        "_wall_clock",
        "dropped",
        "ended",
        "file",
        "moved",
        "rate",
        "response",
        "retry",
        "throttled",
        "token",
    )

    def __init__(
        self,
        hooks: Sequence[Hooks] = (),
        *,
        log_levels: dict[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._wall_clock = wall_clock
        self._log_levels = log_levels or {}
        self._calls: dict[str, _Calls[Any]] = {
            name: _Calls(getattr(h, name) for h in hooks if getattr(h, name) is not None)
            for name in (f.name for f in fields(Hooks))
        }
        # Per batch with hooks of its own: its task hooks, split once (the batch is the key,
        # so a batch that is gone takes its entry with it).
        self._batch_hooks: WeakKeyDictionary[object, _TaskCalls] = WeakKeyDictionary()
        self._seen: dict[str, _Seen] = {}
        self._failed: set[int] = set()  # ids of hooks whose first failure was logged
        self._backlog: asyncio.Queue[tuple[Callable[[Any], Any], Any]] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self.dropped = 0
        self.moved: Callable[[str, State | None, State, Sequence[Any]], None] | None = None
        self.ended: Callable[[Outcome, object | None], None] | None = None
        self.retry: Callable[[Retryable, float, str], None] | None = None
        self.throttled: Callable[[str, float | None, float], None] | None = None
        self.rate: Callable[[float, int], None] | None = None
        self.token: Callable[[float, int], None] | None = None
        self.response: Callable[[str, str, int, float, URL], None] | None = None
        self.file: Callable[[str, Sequence[Path], int], None] | None = None
        self._arm()

    def __repr__(self) -> str:
        wanted = [name for name in _ENTRY_POINTS if getattr(self, name) is not None]
        return f"<Emitter {' '.join(wanted) or 'silent'} dropped={self.dropped}>"

    def _wants(self, hook: str, log_key: str) -> bool:
        return bool(self._calls[hook]) or log_key in self._log_levels

    def _arm(self) -> None:
        """Set each entry point that someone listens to; the others stay None."""
        batches = len(self._batch_hooks) > 0
        tasks = self._wants("on_state", "state") or self._wants("on_file", "file") or batches
        self.moved = self._moved if tasks else None
        self.ended = self._ended if tasks else None
        self.file = self._file if self._wants("on_file", "file") or batches else None
        self.retry = self._retry if self._wants("on_retry", "retry") else None
        self.throttled = self._throttled if self._wants("on_throttle", "throttle") else None
        self.rate = self._rate if self._wants("on_rate", "rate") else None
        self.token = self._token if self._wants("on_token", "token") else None
        self.response = self._response if self._wants("on_request", "request") else None

    def attach(self, session: Any) -> None:
        """Report ``session``'s answers, retries and 429s, and its rate limiter's and token
        manager's news."""
        session.events = self
        session.limiter.on_slowed = self.rate
        session.tokens.on_refresh = self.token

    @staticmethod
    def batch_hooks(hooks: HooksArgument) -> tuple[Hooks, ...]:
        """A batch's ``hooks=`` checked: task events only."""
        checked = hooks_list(hooks)
        for item in checked:
            for name in (f.name for f in fields(Hooks)):
                if name not in _TASK_FIELDS and getattr(item, name) is not None:
                    raise UsageError(
                        f"a batch's hooks take task events only (on_state, on_file); "
                        f"{name} is about the whole client: pass it as TTSClient(hooks=...)"
                    )
        return checked

    def watch(self, listener: object, hooks: Sequence[Hooks]) -> None:
        """Call ``hooks`` (their task events) for the tasks ``listener`` (a batch) awaits,
        besides the client's own."""
        if hooks:
            self._batch_hooks[listener] = _TaskCalls(
                on_state=_Calls(h.on_state for h in hooks if h.on_state is not None),
                on_file=_Calls(h.on_file for h in hooks if h.on_file is not None),
            )
            self._arm()

    # -- delivery --------------------------------------------------------------------------

    def _deliver(self, calls: _Calls[E], event: E) -> None:
        for function in calls.synchronous:
            self._call(function, event)
        for function in calls.asynchronous:
            self._enqueue(function, event)

    def _call(self, function: Callable[[E], Any], event: E) -> None:
        try:
            function(event)
        except Exception as exc:
            self._hook_failed(function, exc)

    def _hook_failed(self, function: Callable[..., Any], exc: Exception) -> None:
        first = id(function) not in self._failed
        self._failed.add(id(function))
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "the hook %s raised %s; the work goes on",
            getattr(function, "__qualname__", repr(function)),
            type(exc).__name__,
            exc_info=exc if first else None,
            extra={"event": "hook_error"},
        )

    def _enqueue(self, function: Callable[[E], Any], event: E) -> None:
        if self._backlog is None:
            self._backlog = asyncio.Queue(ASYNC_BACKLOG)
        try:
            self._backlog.put_nowait((function, event))
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1:
                log.warning(
                    "async hooks are %d events behind: events are dropped until they catch up",
                    ASYNC_BACKLOG,
                    extra={"event": "hook_backlog"},
                )
            return
        if self._consumer is None or self._consumer.done():
            self._consumer = asyncio.get_running_loop().create_task(self._consume())

    async def _consume(self) -> None:
        backlog = self._backlog
        assert backlog is not None
        while True:
            function, event = await backlog.get()
            try:
                await function(event)
            except Exception as exc:
                self._hook_failed(function, exc)
            finally:
                backlog.task_done()

    async def aclose(self, timeout: float = DRAIN_TIMEOUT) -> None:  # noqa: ASYNC109
        """Let async hooks take the events waiting (at most ``timeout`` seconds), then stop."""
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        backlog = self._backlog
        assert backlog is not None
        if not consumer.done():
            try:
                await asyncio.wait_for(backlog.join(), timeout)
            except TimeoutError:
                log.warning(
                    "async hooks did not finish within %gs of closing; %d events left",
                    timeout,
                    backlog.qsize(),
                    extra={"event": "hook_backlog"},
                )
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)

    def _log(self, key: str, message: str, *args: object, **fields: object) -> None:
        """One record of an event of kind ``key``; callers test ``key in _log_levels``
        first, so an event nobody logs builds no record nor its arguments."""
        fields["event"] = key
        log.log(self._log_levels[key], message, *args, extra=fields)

    # -- the entry points ----------------------------------------------------------------

    def _moved(
        self, task_id: str, before: State | None, after: State, subscriptions: Sequence[Any]
    ) -> None:
        now = self._clock()
        state = after.value
        seen = self._seen.get(task_id)
        if before is None or seen is None:
            seen = self._seen[task_id] = _Seen(now, state)
            previous = None if before is None else before.value
        else:
            previous, seen.state = seen.state, state
        event = TaskStateChanged(task_id, state, previous, self._wall_clock(), now - seen.since)
        self._tell_task("on_state", event, subscriptions)
        if "state" in self._log_levels:
            self._log(
                "state",
                "task %s: %s -> %s",
                _shown(task_id),
                previous or "new",
                state,
                task_id=_shown(task_id),
                state=state,
                previous=previous,
                elapsed=round(event.elapsed or 0.0, 6),
            )

    def _ended(self, outcome: Outcome, listener: object | None) -> None:
        task_id = outcome.task_id
        seen = self._seen.pop(task_id, None)
        elapsed = None if seen is None else self._clock() - seen.since
        previous = None if seen is None else seen.state
        state = outcome.state.value
        event = TaskStateChanged(
            task_id, state, previous, outcome.finished_at or self._wall_clock(), elapsed, outcome
        )
        batch = self._batch_hooks.get(listener) if listener is not None else None
        if outcome.files and not outcome.resumed:  # the files first, then the ending
            self._files(task_id, outcome.files, outcome.bytes_written, batch)
        self._deliver(self._calls["on_state"], event)
        if batch is not None:
            self._deliver(batch.on_state, event)
        if "state" in self._log_levels:
            self._log(
                "state",
                "task %s: %s -> %s%s",
                _shown(task_id),
                previous or "new",
                state,
                f" ({outcome.error})" if outcome.error else "",
                task_id=_shown(task_id),
                state=state,
                previous=previous,
                elapsed=None if elapsed is None else round(elapsed, 6),
                error=outcome.error,
                resumed=outcome.resumed or None,
            )

    def _tell_task(self, name: str, event: Any, subscriptions: Sequence[Any]) -> None:
        self._deliver(self._calls[name], event)
        if self._batch_hooks:
            for subscription in subscriptions:
                batch = self._batch_hooks.get(subscription.listener)
                if batch is not None:
                    self._deliver(getattr(batch, name), event)

    def _file(self, task_id: str, files: Sequence[Path], total: int) -> None:
        self._files(task_id, files, total, None)

    def _files(
        self, task_id: str, files: Sequence[Path], total: int, batch: _TaskCalls | None
    ) -> None:
        for path in files:
            size = total
            if len(files) > 1:  # the total is known, each file's size is its own
                try:
                    size = path.stat().st_size
                except OSError:
                    size = 0
            event = FileWritten(task_id, path, size)
            self._deliver(self._calls["on_file"], event)
            if batch is not None:
                self._deliver(batch.on_file, event)
            if "file" in self._log_levels:
                self._log(
                    "file",
                    "task %s: wrote %s (%d bytes)",
                    _shown(task_id),
                    path,
                    size,
                    task_id=_shown(task_id),
                    path=str(path),
                    bytes=size,
                )

    def _retry(self, failure: Retryable, delay: float, kind: str) -> None:
        task_id = _current_task()
        error = failure.error
        event = RetryScheduled(
            kind, task_id, getattr(failure, "attempt", 1), delay, str(error), error.status
        )
        self._deliver(self._calls["on_retry"], event)
        if "retry" in self._log_levels:
            self._log(
                "retry",
                "%s: attempt %d failed, retrying in %.2fs: %s",
                kind,
                event.attempt,
                delay,
                event.cause,
                task_id=_shown(task_id),
                kind=kind,
                attempt=event.attempt,
                delay=round(delay, 6),
                cause=event.cause,
                status=event.status,
            )

    def _throttled(self, kind: str, retry_after: float | None, rate: float) -> None:
        task_id = _current_task()
        shown = None if math.isinf(rate) else rate
        event = Throttled(kind, task_id, retry_after, shown)
        self._deliver(self._calls["on_throttle"], event)
        if "throttle" in self._log_levels:
            self._log(
                "throttle",
                "%s: the server answered 429 (too many requests)",
                kind,
                task_id=_shown(task_id),
                kind=kind,
                status=429,
                retry_after=retry_after,
                rate=shown,
            )

    def _rate(self, rate: float, slowdowns: int) -> None:
        event = RateChanged(rate, slowdowns)
        self._deliver(self._calls["on_rate"], event)
        if "rate" in self._log_levels:
            self._log(
                "rate",
                "too many 429s: the client slows down to %.1f requests/s",
                rate,
                rate=round(rate, 3),
                slowdowns=slowdowns,
            )

    def _token(self, lifetime: float, refreshes: int) -> None:
        event = TokenRefreshed(lifetime, refreshes)
        self._deliver(self._calls["on_token"], event)
        if "token" in self._log_levels:
            self._log(
                "token",
                "new token, used for %.0fs",
                lifetime,
                lifetime=lifetime,
                refreshes=refreshes,
            )

    def _response(self, kind: str, method: str, status: int, started: float, url: URL) -> None:
        seconds = self._clock() - started
        task_id = _current_task()
        event = RequestFinished(kind, method, url.path, status, seconds, task_id)
        self._deliver(self._calls["on_request"], event)
        if "request" in self._log_levels:
            self._log(
                "request",
                "%s %s -> %d in %.1f ms",
                method,
                event.path,
                status,
                seconds * 1000,
                task_id=_shown(task_id),
                kind=kind,
                method=method,
                path=event.path,
                status=status,
                elapsed=round(seconds, 6),
            )


def _shown(task_id: str | None) -> str | None:
    """A task id as a log record may show it: an id is input, so control characters are
    escaped and a very long one is cut."""
    return None if task_id is None else _redact.server_text(task_id, limit=100)


def _current_task() -> str | None:
    task_id = log_task_id.get()
    return None if task_id == "-" else task_id


SILENT = Emitter()
"""An emitter nobody listens to: every entry point None."""
