"""``submit_many``: many texts submitted at once, each recorded in a ledger around its POST.

Every POST goes through ``TTSClient.submit`` (the same session, rate limiter and token as
every other request), at most ``concurrency`` at a time. The texts are streamed: taken in
only as submits finish, so memory does not grow with their number (keys seen in this run
are kept on disk: ``SeenIds``).

The ledger (the record store's ``ledger`` table) holds, per key, the digest of its text and
what became of it. Invariants:

* A text's row is committed as ``sending`` before its POST can leave, and as
  ``submitted`` with its task id as soon as the POST returns, before the id is handed
  out. So a crash at any moment loses no id the server gave: a text is either
  ``submitted`` (its id is known), ``sending`` (the uncertain window: the POST may or may
  not have reached the server), or was never sent.
* A text with an id is never sent again. A text in the uncertain window (``sending`` left
  by a crash, or ``uncertain``: the POST failed after it may have been delivered) is
  reported as uncertain and sent again only with ``resubmit_uncertain``. A text the
  server refused, or that never left (``unsent``), is sent again on resume: nothing was
  created for it.
* A key whose text changed since the ledger recorded it is refused (an error for that
  text, naming the key), unless its earlier text created nothing: its task, if any, was
  made from the other text, and may have been billed.
* A 429 on a submit is a definite refusal (nothing was created): the text waits (the
  shared rate limiter has slowed the whole client already; at least the answer's
  ``Retry-After``, when it has one) and is sent again, for up to ``THROTTLE_PATIENCE``
  seconds, before it fails. A ``Retry-After`` that reaches past that fails it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from asyncio import FIRST_COMPLETED
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from aiotts._admission import SeenIds
from aiotts._config import RetryPolicy
from aiotts._errors import (
    AiottsError,
    ApiError,
    AuthenticationError,
    ClientClosedError,
    OutputError,
    SubmitUncertainError,
    TokenUnavailableError,
    TrialLimitError,
    UsageError,
)
from aiotts._store import OutcomeStore
from aiotts._texts import MAX_KEY_LENGTH, file_stem, shown_key, text_digest

if TYPE_CHECKING:
    from aiotts._client import TTSClient

__all__ = [
    "DEFAULT_SUBMIT_CONCURRENCY",
    "THROTTLE_PATIENCE",
    "Submissions",
    "Submitted",
    "Texts",
]

Texts = Iterable[str | tuple[str, str]] | AsyncIterable[str | tuple[str, str]]
"""Texts alone (each known by its position, ``"0"``, ``"1"``, ...) or ``(key, text)``
pairs, from any iterable or async iterable."""

DEFAULT_SUBMIT_CONCURRENCY = 16
"""Submits in flight at once, by default."""

STOP_GRACE = 5.0
"""When a run stops early, how long the POSTs already out may take to bring their ids
back before they are cancelled (and left in the uncertain window)."""

THROTTLE_PATIENCE = 600.0
"""How long one text keeps being sent again after 429 answers before it fails."""

_END = object()
"""The end of the input."""

_STOPS_THE_RUN: tuple[type[AiottsError], ...] = (
    AuthenticationError,
    ClientClosedError,
    OutputError,
    TokenUnavailableError,
)
"""Errors no other text can get past: the run stops with them (the ledger keeps what
each text reached)."""


@dataclass(frozen=True, slots=True)
class Submitted:
    """What became of one text: its task id, or why it has none.

    ``uncertain`` is True when its POST may have reached the server without an id coming
    back (it may be billed): it is not sent again unless asked. ``resumed`` is True when
    the id comes from the ledger of an earlier run (nothing was sent). ``messages`` are
    the server's own words when it refused the text."""

    key: str
    task_id: str | None
    error: str | None = None
    uncertain: bool = False
    resumed: bool = False
    messages: tuple[str, ...] = ()
    cause: AiottsError | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when the text has its task id (sent now, or resumed) and no error."""
        return self.task_id is not None and self.error is None


@dataclass(frozen=True, slots=True)
class _Send:
    """A text to send (decided by ``Submissions._decide``)."""

    key: str
    text: str
    digest: bytes


async def _each(texts: Texts) -> AsyncGenerator[object, None]:
    """The items of an iterable or an async iterable, one at a time. Closing this closes
    an async generator it reads, at once (its clean-up runs when the run stops, not
    whenever it is collected)."""
    if isinstance(texts, AsyncIterable):
        try:
            async for item in texts:
                yield item
        finally:
            if isinstance(texts, AsyncGenerator):
                await texts.aclose()
    else:
        for item in texts:
            yield item


def _item(raw: object, position: int) -> tuple[str, str | None, str | None]:
    """(key, text, problem) of one input item."""
    if isinstance(raw, str):
        return str(position), raw, None
    if isinstance(raw, tuple) and len(raw) == 2:
        key, text = raw
        if not isinstance(key, str):
            return str(position), None, f"item {position}: keys are strings, got {key!r}"
        if not key or len(key) > MAX_KEY_LENGTH:
            return key, None, f"the key {shown_key(key)} is empty or over {MAX_KEY_LENGTH} chars"
        if not isinstance(text, str):
            return key, None, f"the text of key {shown_key(key)} is not a string"
        return key, text, None
    what = type(raw).__name__
    return (
        str(position),
        None,
        f"item {position}: expected a text or a (key, text) pair, got {what}",
    )


class Submissions:
    """The texts of one ``submit_many``, submitted as they are read: iterate it for one
    ``Submitted`` per text, in the order they finish. Leave the loop early inside
    ``async with`` (or call ``aclose()``): no further text is sent, the POSTs already out
    get ``STOP_GRACE`` seconds to bring their ids back (recorded), and one still out after
    that stays ``sending`` in the ledger, so a resume reports it uncertain."""

    def __init__(
        self,
        client: TTSClient,
        texts: Texts,
        *,
        ledger: OutcomeStore | None,
        owns_ledger: bool,
        resume: bool,
        resubmit_uncertain: bool,
        concurrency: int,
        retry: RetryPolicy,
        resubmit: Callable[[str], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._run: AsyncGenerator[Submitted, None] | None = None
        self._ledger = ledger
        self._owns_ledger = owns_ledger  # set first: ``__del__`` reads them
        if resume and ledger is None:
            raise UsageError("resume needs a ledger: pass ledger=PATH (a .db store)")
        if not (isinstance(concurrency, int) and concurrency >= 1):
            raise UsageError(
                f"concurrency must be a whole number of at least 1, got {concurrency!r}"
            )
        self._client = client
        self._texts = texts
        self._resume = resume
        self._resubmit_uncertain = resubmit_uncertain
        self._concurrency = concurrency
        self._retry = retry
        self._resubmit = resubmit
        self._clock = clock
        self._stopping = False
        self._backing_off: set[asyncio.Task[Any]] = set()  # waiting out a 429: not sent
        self.sent = 0
        self.resumed = 0
        self.throttled = 0

    def __repr__(self) -> str:
        return (
            f"<Submissions sent={self.sent} resumed={self.resumed} throttled={self.throttled}"
            f" ledger={self._ledger!r}>"
        )

    def __aiter__(self) -> Submissions:
        return self

    async def __anext__(self) -> Submitted:
        if self._run is None:
            self._run = self._submit_all()
        return await self._run.__anext__()

    async def aclose(self) -> None:
        """Cancel the submits in flight and wait for them; close the ledger if it was
        opened here. Idempotent."""
        if self._run is not None:
            await self._run.aclose()
        elif self._owns_ledger and self._ledger is not None:
            self._ledger.close()

    async def __aenter__(self) -> Submissions:
        return self

    def __del__(self) -> None:
        # Made, never iterated: release the ledger's lock (a started run closes it in its
        # own clean-up, which the event loop runs when the run is collected).
        if self._run is None and self._owns_ledger and self._ledger is not None:
            self._ledger.close()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the run ---------------------------------------------------------------------------

    async def _submit_all(self) -> AsyncGenerator[Submitted, None]:
        """Take texts in while fewer than ``concurrency`` submits are in flight; hand out
        each result as soon as it is known. An async source is read in a task of its own,
        so a source that waits (for more input, or for outcomes the caller has not seen
        yet) never holds back the results already in."""
        texts = self._texts
        source: AsyncGenerator[object, None] | None = None
        items: Iterator[object] | None = None
        if isinstance(texts, AsyncIterable):
            source = _each(texts)
        else:
            items = iter(texts)
        seen = SeenIds()
        running: set[asyncio.Task[Submitted]] = set()
        pull: asyncio.Future[Any] | None = None
        position = 0
        exhausted = False
        try:
            while True:
                for task in [t for t in running if t.done()]:
                    running.discard(task)
                    yield task.result()  # a run-stopping error is raised here
                if not exhausted and len(running) < self._concurrency:
                    if items is not None:
                        raw = next(items, _END)
                    else:
                        assert source is not None
                        if pull is None:
                            pull = asyncio.ensure_future(source.__anext__())
                        if not pull.done():
                            await asyncio.wait({*running, pull}, return_when=FIRST_COMPLETED)
                            continue
                        taken, pull = pull, None
                        try:
                            raw = taken.result()
                        except StopAsyncIteration:
                            raw = _END
                    if raw is _END:
                        exhausted = True
                        continue
                    decided = self._decide(raw, position, seen)
                    position += 1
                    if isinstance(decided, Submitted):
                        yield decided
                    else:
                        running.add(asyncio.create_task(self._send(decided)))
                    continue
                if not running:
                    return
                await asyncio.wait(running, return_when=FIRST_COMPLETED)
        finally:
            # Stopping early (Ctrl-C, ``break`` then ``aclose``, an error): the POSTs out
            # get up to ``STOP_GRACE`` seconds to bring their ids back, so that a stop
            # leaves as few texts as possible in the uncertain window; texts waiting out
            # a 429 were not sent, and are not.
            self._stopping = True
            if pull is not None:
                pull.cancel()
            for task in self._backing_off:
                task.cancel()
            with anyio.CancelScope(shield=True):
                if running:
                    with anyio.move_on_after(STOP_GRACE):
                        await asyncio.wait(running)
                    waiting: set[asyncio.Future[Any]] = set(running)
                    if pull is not None:
                        waiting.add(pull)
                    for future in waiting:
                        future.cancel()
                    await asyncio.gather(*waiting, return_exceptions=True)
                elif pull is not None:
                    await asyncio.gather(pull, return_exceptions=True)
                if source is not None:
                    await source.aclose()
            seen.close()
            if self._owns_ledger and self._ledger is not None:
                self._ledger.close()

    def _decide(self, raw: object, position: int, seen: SeenIds) -> Submitted | _Send:
        """What to do with one text, from the ledger alone (no I/O but the store's)."""
        key, text, problem = _item(raw, position)
        if problem is not None or text is None:
            return Submitted(key, None, error=problem)
        if seen.first_sighting(key) is None:
            return Submitted(
                key,
                None,
                error=f"the key {shown_key(key)} appears twice in the input: give each text "
                "its own key (the first was submitted)",
            )
        if not text.strip():
            return Submitted(key, None, error=f"the text of key {shown_key(key)} is empty")
        digest = text_digest(text)
        ledger = self._ledger
        entry = None if ledger is None else ledger.ledger_entry(key)
        if entry is None or entry.state == "unsent":
            return _Send(key, text, digest)
        if entry.digest is not None and entry.digest != digest:
            return Submitted(
                key,
                entry.task_id,
                error=f"the text of key {shown_key(key)} differs from the one the ledger "
                f"recorded ({entry.state}{' as ' + entry.task_id if entry.task_id else ''}): "
                "give the new text a new key, or use a new ledger",
            )
        if not self._resume:
            return Submitted(
                key,
                entry.task_id,
                error=f"the ledger already holds key {shown_key(key)} ({entry.state}): "
                "pass resume=True (CLI: --resume) to continue that run",
            )
        if entry.state == "submitted" and entry.task_id is not None:
            if self._resubmit is not None and self._resubmit(entry.task_id):
                return _Send(key, text, digest)
            self.resumed += 1
            return Submitted(key, entry.task_id, resumed=True)
        if self._resubmit_uncertain:
            return _Send(key, text, digest)
        error = (
            entry.error
            or "an earlier run was sending this text when it stopped: the server may have "
            "it (it may be billed)"
        ) + "; sent again only with resubmit_uncertain=True (CLI: --resubmit-uncertain)"
        return Submitted(
            key,
            None,
            uncertain=True,
            resumed=True,
            error=error,
            cause=SubmitUncertainError(error, text=text),
        )

    async def _send(self, item: _Send) -> Submitted:
        """Submit one text, recording it around its POST. Returns its ``Submitted``;
        raises only what stops the whole run."""
        ledger, key = self._ledger, item.key
        if ledger is not None:
            ledger.record_sending(key, item.digest, file_stem(key))
        may_be_out = True  # from here a cancellation leaves the row ``sending``
        give_up_at = self._clock() + THROTTLE_PATIENCE
        delays = self._retry.delays()
        try:
            while True:
                try:
                    may_be_out = True
                    task_id = await self._client.submit(item.text)
                except ApiError as exc:
                    may_be_out = False  # a 4xx answer: nothing was created
                    if exc.status == 429 and not isinstance(exc, TrialLimitError):
                        self.throttled += 1
                        delay = next(delays)
                        if exc.retry_after is not None:  # the server's own word, if longer
                            delay = max(delay, exc.retry_after)
                        if self._clock() + delay <= give_up_at and not self._stopping:
                            me = asyncio.current_task()
                            assert me is not None
                            self._backing_off.add(me)
                            try:
                                await anyio.sleep(delay)
                            finally:
                                self._backing_off.discard(me)
                            continue
                    raise
                self.sent += 1
                if ledger is not None:
                    ledger.record_submitted(key, task_id)
                return Submitted(key, task_id)
        except SubmitUncertainError as exc:
            return self._no_id(item, exc, uncertain=True)
        except _STOPS_THE_RUN as exc:
            self._forget(item, exc)
            raise
        except AiottsError as exc:
            # Refused (4xx), refused by the client (empty, too long for trial), or never
            # sent (connect failures): nothing was created.
            return self._no_id(item, exc, uncertain=False)
        except BaseException:
            if not may_be_out and ledger is not None:
                # Cancelled while waiting out a 429: provably not sent.
                ledger.record_unsent(key, "cancelled before it was sent", uncertain=False)
            raise

    def _no_id(self, item: _Send, error: AiottsError, *, uncertain: bool) -> Submitted:
        if self._ledger is not None:
            self._ledger.record_unsent(item.key, str(error), uncertain=uncertain)
        messages = error.messages if isinstance(error, ApiError) else ()
        return Submitted(
            item.key, None, error=str(error), uncertain=uncertain, messages=messages, cause=error
        )

    def _forget(self, item: _Send, error: AiottsError) -> None:
        """A run-stopping error before any id: credentials and a closed client refuse
        before anything is created, so the text is ``unsent``."""
        if self._ledger is not None and not isinstance(error, OutputError):
            with contextlib.suppress(OutputError):
                self._ledger.record_unsent(item.key, str(error), uncertain=False)
