"""A blocking ``TTSClient`` for code that is not async: scripts, notebooks, task queues.

::

    from aiotts.sync import TTSClient

    with TTSClient() as client:                 # ASPOSE_CLIENT_ID / ASPOSE_CLIENT_SECRET
        task_id = client.submit("Read this text aloud")
        print(client.wait(task_id, "audio/").path)
        for outcome in client.fetch_many(ids, "audio/"):
            print(outcome.task_id, outcome.state)

Each client runs one event loop in a thread of its own and drives the async
:class:`aiotts.TTSClient` there: the same calls, the same results, the same exceptions,
blocking the calling thread until the answer is in. Because the loop is another thread, the
client works from any thread, from several at once, and from code that already runs an
event loop (a notebook cell, an ``async def``): nothing waits on the caller's loop.

Invariants:

* Every call runs as one task on the client's loop; ``close()`` cancels every call still
  running (its caller gets ``ClientClosedError``) before it closes the async client, then
  stops the loop, so no caller is ever left waiting on a loop that stopped.
* Calls are taken under one lock that ``close()`` also takes: a call is either refused
  with ``ClientClosedError`` or submitted before the shutdown, never lost in between.
* Nothing blocks on a loop that no thread runs: a blocking call made from the loop's own
  thread, or in a child process forked after the client was made, raises ``UsageError``
  instead of waiting forever.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import ssl
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterator, Mapping
from types import TracebackType
from typing import Any, Final, Protocol, Self, TypeVar

import aiohttp

from aiotts._admission import TaskIds
from aiotts._batch import Batch as AsyncBatch
from aiotts._batch import BatchReport, BatchStatistics
from aiotts._client import SavedAudio
from aiotts._client import TTSClient as AsyncTTSClient
from aiotts._config import (
    DEFAULT_LIMITS,
    DEFAULT_POLL,
    DEFAULT_RETRY,
    DEFAULT_TASK_TIMEOUT,
    DEFAULT_TIMEOUTS,
    Limits,
    PollPolicy,
    RetryPolicy,
    Timeouts,
)
from aiotts._errors import ClientClosedError, UsageError
from aiotts._hooks import HooksArgument
from aiotts._models import Outcome, TaskResult
from aiotts._submit import DEFAULT_SUBMIT_CONCURRENCY, Submitted, Texts
from aiotts._submit import Submissions as AsyncSubmissions
from aiotts._synthesize import Synthesis as AsyncSynthesis

__all__ = ["Batch", "Submissions", "TTSClient"]

T = TypeVar("T")

INTERRUPT_GRACE: Final = 5.0
"""Seconds a blocking call interrupted by Ctrl-C waits for its cancelled work to clean up
(temporary files removed, ids recorded) before ``KeyboardInterrupt`` goes on; a second
Ctrl-C cuts the wait short."""


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed (as the command line uses), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class _LoopThread:
    """One event loop running in a daemon thread, and the calls submitted to it.

    Holds no reference to the blocking client, so a finalizer of that client can use it.
    """

    def __init__(self) -> None:
        self._loop = _new_event_loop()
        self._pid = os.getpid()  # a forked child has the loop but not the thread running it
        self._lock = threading.Lock()
        self._closed = False
        self._calls: set[asyncio.Task[Any]] = set()  # touched on the loop's thread only
        self._thread = threading.Thread(target=self._run, name="aiotts-sync-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def running_calls(self) -> int:
        return len(self._calls)

    def on_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def call(self, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``work()`` on the loop and block until it ends; its result or its exception.

        ``KeyboardInterrupt`` (or any exception) while blocked cancels the work on the
        loop, waits up to ``INTERRUPT_GRACE`` seconds for its clean-up, and is re-raised.
        """
        if self.on_loop_thread():
            raise UsageError(
                "a blocking aiotts.sync call was made from the client's own event loop "
                "thread; it would wait for itself forever"
            )
        if os.getpid() != self._pid:
            raise UsageError(
                "this aiotts.sync client was made in another process, and its loop thread did "
                "not survive the fork: make the client in the process that uses it (for "
                "example inside the task function)"
            )
        ended = threading.Event()
        with self._lock:
            if self._closed:
                raise ClientClosedError("this client is closed; create a new TTSClient")
            future = asyncio.run_coroutine_threadsafe(self._tracked(work, ended), self._loop)
        try:
            return future.result()
        except (concurrent.futures.CancelledError, asyncio.CancelledError):
            # Only close() cancels a call that its caller did not abandon.
            raise ClientClosedError(
                "the client was closed while this call was running; create a new TTSClient"
            ) from None
        except BaseException:
            if not future.done():  # the caller was interrupted, not the work
                future.cancel()  # best effort: the loop cancels the task at its next step
                ended.wait(INTERRUPT_GRACE)
            raise

    async def _tracked(
        self, work: Callable[[], Coroutine[Any, Any, T]], ended: threading.Event
    ) -> T:
        task = asyncio.current_task()
        assert task is not None
        self._calls.add(task)
        try:
            return await work()
        finally:
            self._calls.discard(task)
            ended.set()

    def shut_down(self, client: AsyncTTSClient) -> None:
        """Cancel every running call, close ``client``, stop the loop and join its thread.
        Idempotent; from the loop's own thread it only schedules the same."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._loop.is_closed() or os.getpid() != self._pid:
            return  # no thread runs the loop: a forked child must not wait for it at exit
        done = asyncio.run_coroutine_threadsafe(self._close(client), self._loop)
        if self.on_loop_thread():
            return  # _close stops the loop when it is done; nothing here may wait for it
        try:
            done.result()
        finally:
            self._thread.join()

    async def _close(self, client: AsyncTTSClient) -> None:
        # Every call submitted before ``_closed`` was set is in ``_calls`` by now: the loop
        # runs callbacks in the order they were scheduled, so a call's first step (which
        # adds it) runs before this coroutine's, which was scheduled after it.
        try:
            calls = list(self._calls)
            for task in calls:
                task.cancel()
            await asyncio.gather(*calls, return_exceptions=True)
            await client.aclose()
        finally:
            asyncio.get_running_loop().call_soon(self._loop.stop)

    def schedule(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the loop soon, without waiting; nothing if it stopped."""
        if not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed between the check and the call
                self._loop.call_soon_threadsafe(callback)


class TTSClient:
    """A blocking client for the text-to-speech queue.

    Takes the same arguments as :class:`aiotts.TTSClient` and offers the same calls, each
    blocking until it is done and returning the same results or raising the same
    exceptions. Open on construction; ``close()`` (or leaving ``with``) cancels whatever
    is still running, waits for its clean-up and stops the client's loop thread. Safe to
    call from several threads at once and from inside a running event loop.

    ``session=`` and ``connector=`` are refused (``UsageError``): aiohttp's sessions and
    connectors belong to the loop they were made in, and this client's loop is its own.
    ``proxy=``, ``trust_env=`` and ``headers=`` work as in the async client.
    """

    def __init__(
        self,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        trial: bool = False,
        base_url: str | None = None,
        token_url: str | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        retry: RetryPolicy = DEFAULT_RETRY,
        poll: PollPolicy = DEFAULT_POLL,
        limits: Limits = DEFAULT_LIMITS,
        ca_file: str | os.PathLike[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        allow_insecure_http: bool = False,
        durable: bool = False,
        proxy: str | None = None,
        proxy_auth: aiohttp.BasicAuth | tuple[str, str] | None = None,
        trust_env: bool = False,
        headers: Mapping[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
        connector: aiohttp.BaseConnector | None = None,
        hooks: HooksArgument = None,
    ) -> None:
        if session is not None or connector is not None:
            # Both belong to the loop they were made in; this client's loop is its own.
            raise UsageError(
                "the blocking client runs its own event loop, so it cannot use an aiohttp "
                "session or connector made in yours: pass proxy=..., trust_env=True or "
                "headers=... instead, or use aiotts.TTSClient in your loop"
            )

        async def open_client() -> AsyncTTSClient:
            # Made and opened on the loop: its pool belongs to that loop.
            client = AsyncTTSClient(
                client_id,
                client_secret,
                trial=trial,
                base_url=base_url,
                token_url=token_url,
                timeouts=timeouts,
                retry=retry,
                poll=poll,
                limits=limits,
                ca_file=ca_file,
                ssl_context=ssl_context,
                allow_insecure_http=allow_insecure_http,
                durable=durable,
                proxy=proxy,
                proxy_auth=proxy_auth,
                trust_env=trust_env,
                headers=headers,
                hooks=hooks,
            )
            await client.__aenter__()
            return client

        runner = _LoopThread()
        try:
            self._client = runner.call(open_client)
        except BaseException:
            runner.shut_down(_NOT_OPENED)
            raise
        self._runner = runner
        self._parent: TTSClient | None = None
        # Closes a client nobody closed when it is collected, or at interpreter exit.
        self._finalizer = weakref.finalize(self, runner.shut_down, self._client)

    def with_options(
        self,
        *,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
    ) -> TTSClient:
        """This client with other options, as :meth:`aiotts.TTSClient.with_options`: a
        view sharing its loop thread, session, token, scheduler and lifecycle. Closing the
        view closes nothing; closing this client ends the view's calls too."""
        view = object.__new__(TTSClient)
        view._client = self._client.with_options(timeouts=timeouts, retry=retry, poll=poll)
        view._runner = self._runner
        view._parent = self._parent or self  # keeps the client (and its loop) alive
        return view

    def __repr__(self) -> str:
        inner = repr(self._client).removeprefix("<TTSClient ").removesuffix(">")
        return f"<aiotts.sync.TTSClient {inner}, {self._runner.running_calls} calls running>"

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Self:
        if self._runner.closed:
            raise ClientClosedError("this client was closed; create a new TTSClient")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Cancel running calls and batches (waiting for their clean-up), close the pool
        and stop the loop thread. Safe to call more than once, from any thread. On a view
        (``with_options``) it does nothing: the client it was made from owns all that."""
        if self._parent is None:
            self._finalizer()

    @property
    def closed(self) -> bool:
        return self._runner.closed

    @property
    def trial(self) -> bool:
        return self._client.trial

    @property
    def counters(self) -> dict[str, int]:
        """Requests sent so far, by kind (``token``, ``submit``, ``poll``, ...)."""

        async def read() -> dict[str, int]:
            return self._client.counters

        return self._runner.call(read)

    # -- one task ------------------------------------------------------------------------------

    def submit(self, text: str, *, timeout: float | None = None) -> str:
        """Send ``text`` for conversion; return its task id. As
        :meth:`aiotts.TTSClient.submit`: never retried once it may have reached the server
        (``SubmitUncertainError`` carries the text)."""
        return self._runner.call(lambda: self._client.submit(text, timeout=timeout))

    def fetch(self, task_id: str, *, timeout: float | None = None) -> TaskResult:
        """The task's whole result envelope, any audio decoded in memory."""
        return self._runner.call(lambda: self._client.fetch(task_id, timeout=timeout))

    def status(self, task_id: str, *, timeout: float | None = None) -> TaskResult:
        """The task's status without its audio (``Utilities/GetTaskStatus``)."""
        return self._runner.call(lambda: self._client.status(task_id, timeout=timeout))

    def cancel(self, task_id: str, *, timeout: float | None = None) -> None:
        """Ask the server to drop the task; it becomes ``NotExist``."""
        self._runner.call(lambda: self._client.cancel(task_id, timeout=timeout))

    def download(
        self, task_id: str, to: str | os.PathLike[str], *, timeout: float | None = None
    ) -> SavedAudio:
        """Stream a completed task's audio to disk (``to``: a folder or a file name)."""
        return self._runner.call(lambda: self._client.download(task_id, to, timeout=timeout))

    def wait(
        self,
        task_id: str,
        to: str | os.PathLike[str],
        *,
        timeout: float = 600.0,
        poll: PollPolicy | None = None,
    ) -> SavedAudio:
        """Poll the task until it ends (at most ``timeout`` seconds), then save its audio.
        Ctrl-C stops the polling and removes any partial file before it goes on."""
        return self._runner.call(lambda: self._client.wait(task_id, to, timeout=timeout, poll=poll))

    # -- many tasks ---------------------------------------------------------------------------

    def fetch_many(
        self,
        ids: TaskIds,
        out_dir: str | os.PathLike[str],
        *,
        task_timeout: float | None = DEFAULT_TASK_TIMEOUT,
        batch_timeout: float | None = None,
        manifest: str | os.PathLike[str] | None = None,
        resume: bool = False,
        retry_failed: bool = False,
        poll: PollPolicy | None = None,
        hooks: HooksArgument = None,
    ) -> Batch:
        """Fetch every task in ``ids`` into ``out_dir``; iterate for outcomes as tasks end.

        The options are those of :meth:`aiotts.TTSClient.fetch_many`. ``ids`` is read on
        the client's loop thread as capacity frees, so a generator of ids must not block
        for long. Leaving the ``for`` loop early (``break``, an exception, Ctrl-C) cancels
        the batch and waits until every id in flight is recorded as ``cancelled``.
        """

        async def start() -> AsyncBatch:
            return self._client.fetch_many(
                ids,
                out_dir,
                task_timeout=task_timeout,
                batch_timeout=batch_timeout,
                manifest=manifest,
                resume=resume,
                retry_failed=retry_failed,
                poll=poll,
                hooks=hooks,
            )

        return Batch(self, self._runner, self._runner.call(start))

    def fetch_all(
        self, ids: TaskIds, out_dir: str | os.PathLike[str], **options: Any
    ) -> BatchReport:
        """Like ``fetch_many``, but return every outcome at once, the failures kept apart."""
        return self._runner.call(lambda: self._client.fetch_all(ids, out_dir, **options))

    # -- from texts -----------------------------------------------------------------------------

    def submit_many(
        self,
        texts: Texts,
        *,
        ledger: str | os.PathLike[str] | None = None,
        resume: bool = False,
        resubmit_uncertain: bool = False,
        concurrency: int = DEFAULT_SUBMIT_CONCURRENCY,
    ) -> Submissions:
        """Submit every text; iterate for one ``Submitted`` per text as each submit ends.

        The options are those of :meth:`aiotts.TTSClient.submit_many`. ``texts`` is read
        on the client's loop thread, so a generator of texts must not block for long.
        Leaving the ``for`` loop early sends no further text and waits (a few seconds at
        most) for the POSTs already out to bring their ids back.
        """

        async def start() -> AsyncSubmissions:
            return self._client.submit_many(
                texts,
                ledger=ledger,
                resume=resume,
                resubmit_uncertain=resubmit_uncertain,
                concurrency=concurrency,
            )

        return Submissions(self, self._runner, self._runner.call(start))

    def synthesize(
        self,
        texts: Texts,
        out_dir: str | os.PathLike[str],
        *,
        ledger: str | os.PathLike[str] | None = None,
        resume: bool = False,
        resubmit_uncertain: bool = False,
        resubmit_missing: bool = False,
        task_timeout: float | None = DEFAULT_TASK_TIMEOUT,
        poll: PollPolicy | None = None,
        concurrency: int = DEFAULT_SUBMIT_CONCURRENCY,
    ) -> Batch:
        """Turn every text into a WAV file in ``out_dir`` named after its key; iterate for
        one ``Outcome`` per text (with its ``key``). The options are those of
        :meth:`aiotts.TTSClient.synthesize`; leaving the ``for`` loop early cancels the
        rest and waits until it is recorded."""

        async def start() -> AsyncSynthesis:
            return self._client.synthesize(
                texts,
                out_dir,
                ledger=ledger,
                resume=resume,
                resubmit_uncertain=resubmit_uncertain,
                resubmit_missing=resubmit_missing,
                task_timeout=task_timeout,
                poll=poll,
                concurrency=concurrency,
            )

        return Batch(self, self._runner, self._runner.call(start))


class _Outcomes(Protocol):
    """What ``Batch`` drives on the loop: an async batch, or a synthesis."""

    def statistics(self) -> BatchStatistics: ...
    def cancel(self) -> None: ...
    async def wait_closed(self) -> None: ...
    async def __anext__(self) -> Outcome: ...
    async def __aenter__(self) -> Any: ...


class Batch:
    """A running batch of the blocking client: iterate it for one ``Outcome`` per id.

    ``statistics()`` works any time, also after the client was closed. ``with
    client.fetch_many(...) as batch:`` cancels the batch on exit and waits for its
    clean-up, as does leaving a ``for`` loop over it early.
    """

    def __init__(self, owner: TTSClient, runner: _LoopThread, batch: _Outcomes) -> None:
        self._owner = owner  # keeps the client (and its loop) alive while the batch is used
        self._runner = runner
        self._batch = batch

    def __repr__(self) -> str:
        return "<aiotts.sync." + self._on_loop(lambda: repr(self._batch)).removeprefix("<")

    def _on_loop(self, read: Callable[[], T]) -> T:
        """``read()`` on the loop thread while the client runs, else here: the loop that
        could change the batch has stopped."""

        async def run() -> T:
            return read()

        if self._runner.closed or self._runner.on_loop_thread():
            return read()
        try:
            return self._runner.call(run)
        except ClientClosedError:  # closed in the meantime
            return read()

    def statistics(self) -> BatchStatistics:
        """A frozen snapshot: tasks per state, requests, retries, bytes written."""
        return self._on_loop(self._batch.statistics)

    def __iter__(self) -> Iterator[Outcome]:
        finished = False
        try:
            while True:
                outcome = self._runner.call(self._next)
                if outcome is None:
                    finished = True
                    return
                yield outcome
        finally:
            if not finished:
                self.close()

    async def _next(self) -> Outcome | None:
        try:
            return await self._batch.__anext__()
        except StopAsyncIteration:
            return None

    def cancel(self) -> None:
        """Stop the batch without waiting: ids in flight end ``cancelled``."""
        self._runner.schedule(self._batch.cancel)

    def close(self) -> None:
        """Cancel the batch and wait until every id in flight is recorded and its
        temporary files removed. Closing the client does the same for every batch."""
        if self._runner.closed:
            return
        if self._runner.on_loop_thread():
            self._batch.cancel()
            return
        # ClientClosedError: the client's close cancelled the batch and waited for it.
        with contextlib.suppress(ClientClosedError):
            self._runner.call(self._batch_closed)

    async def _batch_closed(self) -> None:
        self._batch.cancel()
        await self._batch.wait_closed()

    def __enter__(self) -> Self:
        async def start() -> None:
            await self._batch.__aenter__()

        self._runner.call(start)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class Submissions:
    """The texts of a blocking ``submit_many``: iterate for one ``Submitted`` per text.
    ``with client.submit_many(...) as submissions:`` cancels what is in flight on exit
    and waits for it, as does leaving a ``for`` loop over it early."""

    def __init__(self, owner: TTSClient, runner: _LoopThread, run: AsyncSubmissions) -> None:
        self._owner = owner  # keeps the client (and its loop) alive while it is used
        self._runner = runner
        self._run = run

    def __repr__(self) -> str:
        return "<aiotts.sync." + repr(self._run).removeprefix("<")

    def __iter__(self) -> Iterator[Submitted]:
        finished = False
        try:
            while True:
                submitted = self._runner.call(self._next)
                if submitted is None:
                    finished = True
                    return
                yield submitted
        finally:
            if not finished:
                self.close()

    async def _next(self) -> Submitted | None:
        try:
            return await self._run.__anext__()
        except StopAsyncIteration:
            return None

    def close(self) -> None:
        """Cancel the submits in flight and wait until the ledger records them."""
        if self._runner.closed or self._runner.on_loop_thread():
            return
        with contextlib.suppress(ClientClosedError):
            self._runner.call(self._run.aclose)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _NeverOpened:
    """Stands for the async client when making it failed: nothing to close."""

    async def aclose(self) -> None:
        pass


_NOT_OPENED: Any = _NeverOpened()
