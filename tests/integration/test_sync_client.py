"""``aiotts.sync.TTSClient``: the blocking client, over real HTTP to an emulator.

The emulator runs on an event loop in a thread of its own, so the test's thread is free to
block in the client's calls (and, in the notebook tests, to run a loop of its own).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

import aiotts
from aiotts import (
    ClientClosedError,
    CredentialsError,
    OutcomeState,
    TaskFailedError,
    TaskNotReadyError,
    TaskStatus,
    UsageError,
    read_manifest,
)
from aiotts.emulator import Emulator, EmulatorConfig
from aiotts.sync import Batch, TTSClient
from tests.helpers import FAST_POLL, FAST_RETRY, temp_files

T = TypeVar("T")

NEVER = 3600.0  # seconds a task stays Pending: longer than any test


class ThreadedEmulator:
    """An ``Emulator`` serving from an event loop in a background thread."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.emu = Emulator(config)
        self.run(self.emu.start)

    def run(self, work: Callable[[], Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(work(), self.loop).result(timeout=30)

    def on_loop(self, read: Callable[[Emulator], T]) -> T:
        """``read(emulator)`` on the emulator's own thread."""

        async def call() -> T:
            return read(self.emu)

        result: T = self.run(call)
        return result

    def create_tasks(self, count: int, **options: Any) -> list[str]:
        return self.on_loop(lambda emu: emu.create_tasks(count, **options))

    def fetches(self, task_id: str) -> int:
        return self.on_loop(lambda emu: emu.record(task_id).fetches)

    def until_fetched(self, task_id: str) -> None:
        """Block until the emulator answered at least one fetch of ``task_id``."""
        while self.fetches(task_id) < 1:
            threading.Event().wait(0.005)

    def close(self) -> None:
        self.run(self.emu.aclose)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture
def server() -> Iterator[ThreadedEmulator]:
    emulator = ThreadedEmulator(EmulatorConfig(pending_seconds=0, processing_seconds=0))
    try:
        yield emulator
    finally:
        emulator.close()


def blocking_client(server: ThreadedEmulator, **options: Any) -> TTSClient:
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("poll", FAST_POLL)
    emu = server.emu
    return TTSClient(emu.client_id, emu.client_secret, base_url=emu.url, **options)


@pytest.fixture
def client(server: ThreadedEmulator) -> Iterator[TTSClient]:
    with blocking_client(server) as client:
        yield client


def loop_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "aiotts-sync-loop"}


# -- the calls ---------------------------------------------------------------------------------


def test_every_single_task_call(
    client: TTSClient, server: ThreadedEmulator, tmp_path: Path
) -> None:
    task_id = client.submit("Read this text aloud")
    saved = client.wait(task_id, tmp_path / "waited", timeout=30)
    audio = server.on_loop(lambda emu: emu.audio(task_id))
    assert saved.path.read_bytes() == audio
    assert client.status(task_id).status is TaskStatus.COMPLETED
    fetched = client.fetch(task_id)
    assert fetched.status is TaskStatus.COMPLETED
    assert fetched.results[0].data == audio
    downloaded = client.download(task_id, tmp_path / "downloaded")
    assert downloaded.path.read_bytes() == audio
    client.cancel(task_id)
    assert client.status(task_id).status is TaskStatus.NOT_EXIST
    assert client.counters["submit"] == 1
    assert client.trial is False
    assert "calls running" in repr(client)
    assert "open" in repr(client)


def test_fetch_many_is_a_plain_iterator_with_statistics(
    client: TTSClient, server: ThreadedEmulator, tmp_path: Path
) -> None:
    ids = server.create_tasks(5, ready_after=0)
    batch = client.fetch_many(ids, tmp_path, manifest=tmp_path / "manifest.jsonl")
    assert isinstance(batch, Batch)
    outcomes = list(batch)
    assert sorted(o.task_id for o in outcomes) == sorted(ids)
    assert all(o.state is OutcomeState.DONE for o in outcomes)
    for outcome in outcomes:
        assert outcome.files[0].read_bytes() == server.on_loop(
            lambda emu, o=outcome: emu.audio(o.task_id)
        )
    stats = batch.statistics()
    assert stats.states["done"] == 5
    assert stats.bytes_written == sum(o.bytes_written for o in outcomes)
    client.close()
    after = batch.statistics()  # reachable after the client closed
    assert (after.states, after.bytes_written) == (stats.states, stats.bytes_written)
    assert "done=5" in repr(batch)


def test_fetch_all_reports_every_outcome(
    client: TTSClient, server: ThreadedEmulator, tmp_path: Path
) -> None:
    done = server.create_tasks(3, ready_after=0)
    failed = server.create_tasks(2, ready_after=0, fail=True)
    report = client.fetch_all(done + failed, tmp_path)
    assert sorted(o.task_id for o in report.done) == sorted(done)
    assert sorted(o.task_id for o in report.failed) == sorted(failed)
    assert report.statistics.states["failed"] == 2


def test_leaving_the_loop_early_cancels_the_batch_and_waits_for_it(
    client: TTSClient, server: ThreadedEmulator, tmp_path: Path
) -> None:
    ready = server.create_tasks(1, ready_after=0, audio_bytes=50_000)
    waiting = server.create_tasks(6, ready_after=NEVER)
    manifest = tmp_path / "manifest.jsonl"
    batch = client.fetch_many(ready + waiting, tmp_path, manifest=manifest)
    for outcome in batch:
        assert outcome.task_id == ready[0]
        break
    # No wait here: leaving the loop already waited for the batch's clean-up.
    recorded = read_manifest(manifest)
    assert {i: e.state for i, e in recorded.items()} == {
        ready[0]: OutcomeState.DONE,
        **dict.fromkeys(waiting, OutcomeState.CANCELLED),
    }
    assert temp_files(tmp_path) == []
    assert batch.statistics().states["cancelled"] == len(waiting)
    assert "0 calls running" in repr(client)


def test_a_with_block_cancels_the_batch_on_exit(
    client: TTSClient, server: ThreadedEmulator, tmp_path: Path
) -> None:
    waiting = server.create_tasks(3, ready_after=NEVER)
    manifest = tmp_path / "manifest.jsonl"
    with client.fetch_many(waiting, tmp_path, manifest=manifest) as batch:
        server.until_fetched(waiting[0])
    assert {e.state for e in read_manifest(manifest).values()} == {OutcomeState.CANCELLED}
    assert len(read_manifest(manifest)) == 3
    assert batch.statistics().states["cancelled"] == 3


# -- threads and loops -------------------------------------------------------------------------


def test_eight_threads_share_one_client(
    client: TTSClient, server: ThreadedEmulator, tmp_path: Path
) -> None:
    start = threading.Barrier(8)

    def work(n: int) -> tuple[str, bytes]:
        start.wait(timeout=30)
        task_id = client.submit(f"Thread number {n}.")
        saved = client.wait(task_id, tmp_path / str(n), timeout=30)
        assert client.status(task_id).status is TaskStatus.COMPLETED
        return task_id, saved.path.read_bytes()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    assert len({task_id for task_id, _ in results}) == 8
    for task_id, data in results:
        assert data == server.on_loop(lambda emu, t=task_id: emu.audio(t))
    counters = client.counters
    assert counters["submit"] == 8
    assert counters["token"] == 1  # one client: one token for every thread


def test_works_inside_a_running_asyncio_loop(server: ThreadedEmulator, tmp_path: Path) -> None:
    # A notebook cell runs inside a loop: blocking calls there must neither deadlock nor
    # complain that an event loop is running.
    async def cell() -> list[OutcomeState]:
        with blocking_client(server) as client:
            task_id = client.submit("From inside a running loop.")
            client.wait(task_id, tmp_path, timeout=30)
            ids = server.create_tasks(2, ready_after=0)
            return [o.state for o in client.fetch_many(ids, tmp_path / "many")]

    assert asyncio.run(cell()) == [OutcomeState.DONE, OutcomeState.DONE]


def test_works_inside_an_anyio_task(server: ThreadedEmulator, tmp_path: Path) -> None:
    states: list[TaskStatus] = []

    async def main() -> None:
        with blocking_client(server) as client:

            async def check() -> None:
                task_id = client.submit("From an anyio task.")
                states.append(client.wait(task_id, tmp_path, timeout=30).result.status)

            async with anyio.create_task_group() as group:
                group.start_soon(check)

    anyio.run(main)
    assert states == [TaskStatus.COMPLETED]


# -- lifecycle ---------------------------------------------------------------------------------


def test_close_is_idempotent_and_use_after_close_is_refused(
    server: ThreadedEmulator, tmp_path: Path
) -> None:
    before = loop_threads()
    client = blocking_client(server)
    assert len(loop_threads() - before) == 1
    client.close()
    client.close()
    assert loop_threads() == before  # the loop thread stopped
    assert client.closed
    assert "closed" in repr(client)
    calls: list[Callable[[], object]] = [
        lambda: client.submit("too late"),
        lambda: client.status("TTS00000-0000-4000-8000-000000000000"),
        lambda: client.wait("TTS00000-0000-4000-8000-000000000000", tmp_path),
        lambda: client.fetch_many(["TTS00000-0000-4000-8000-000000000000"], tmp_path),
        lambda: client.counters,
        client.__enter__,
    ]
    for call in calls:
        with pytest.raises(ClientClosedError, match="create a new TTSClient"):
            call()


def test_closing_ends_a_call_running_in_another_thread(
    server: ThreadedEmulator, tmp_path: Path
) -> None:
    [task_id] = server.create_tasks(1, ready_after=NEVER)
    client = blocking_client(server)
    raised: list[BaseException] = []

    def wait() -> None:
        try:
            client.wait(task_id, tmp_path, timeout=NEVER)
        except BaseException as exc:
            raised.append(exc)

    waiting = threading.Thread(target=wait, daemon=True)  # a daemon: a failure cannot hang
    waiting.start()
    server.until_fetched(task_id)
    client.close()
    waiting.join(timeout=30)
    assert len(raised) == 1
    assert isinstance(raised[0], ClientClosedError)
    assert "closed while this call was running" in str(raised[0])
    assert temp_files(tmp_path) == []


def test_a_client_that_cannot_open_raises_and_leaves_no_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ASPOSE_CLIENT_ID", raising=False)
    monkeypatch.delenv("ASPOSE_CLIENT_SECRET", raising=False)
    before = loop_threads()
    with pytest.raises(UsageError, match="no credentials"):
        TTSClient(base_url="http://127.0.0.1:9")
    assert loop_threads() == before


def test_the_constructor_takes_what_the_async_one_takes() -> None:
    blocking = inspect.signature(TTSClient.__init__).parameters
    asynchronous = inspect.signature(aiotts.TTSClient.__init__).parameters
    assert [(p.name, p.kind, p.default) for p in blocking.values()] == [
        (p.name, p.kind, p.default) for p in asynchronous.values()
    ]


# -- errors and interrupts ---------------------------------------------------------------------


def test_exceptions_cross_as_the_same_type(
    client: TTSClient, server: ThreadedEmulator, tmp_path: Path
) -> None:
    [pending] = server.create_tasks(1, ready_after=NEVER)
    with pytest.raises(TaskNotReadyError) as not_ready:
        client.download(pending, tmp_path)
    assert type(not_ready.value) is TaskNotReadyError
    assert not_ready.value.task_id == pending

    [failed] = server.create_tasks(1, ready_after=0, fail=True)
    with pytest.raises(TaskFailedError) as failure:
        client.wait(failed, tmp_path, timeout=30)
    assert type(failure.value) is TaskFailedError
    assert failure.value.messages

    with pytest.raises(UsageError, match="empty"):
        client.submit("   ")

    emu = server.emu
    with (
        TTSClient(emu.client_id, "not-the-secret", base_url=emu.url, retry=FAST_RETRY) as wrong,
        pytest.raises(CredentialsError),
    ):
        wrong.submit("Refused.")
    assert temp_files(tmp_path) == []


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX signals")
def test_ctrl_c_cancels_the_call_in_the_background_loop(
    client: TTSClient, server: ThreadedEmulator, tmp_path: Path
) -> None:
    assert threading.current_thread() is threading.main_thread()
    [task_id] = server.create_tasks(1, ready_after=NEVER)
    main = threading.main_thread().ident
    assert main is not None

    def press_ctrl_c() -> None:
        server.until_fetched(task_id)  # the wait is polling: the main thread is blocked
        signal.pthread_kill(main, signal.SIGINT)

    interrupter = threading.Thread(target=press_ctrl_c)
    interrupter.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            client.wait(task_id, tmp_path, timeout=NEVER)
    finally:
        interrupter.join()
    # The wait was cancelled on the client's loop before KeyboardInterrupt went on.
    assert "0 calls running" in repr(client)
    assert temp_files(tmp_path) == []
    assert client.status(task_id).status is TaskStatus.PENDING  # the client still works
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_is_told_to_make_its_own_client(client: TTSClient) -> None:
    # A Celery prefork worker inherits a client made before the fork, without its thread.
    child = os.fork()
    if child == 0:  # pragma: no cover -- the child reports through its exit status only
        signal.alarm(20)  # a call that waited forever would end the child here
        try:
            client.status("TTS00000-0000-4000-8000-000000000000")
        except UsageError as exc:
            if "another process" not in str(exc):
                os._exit(2)
        except BaseException:
            os._exit(3)
        else:
            os._exit(1)
        client.close()  # what exiting the child does: it must not wait for the parent's loop
        os._exit(0)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert client.status("TTS00000-0000-4000-8000-000000000000").status is TaskStatus.NOT_EXIST


def test_cancel_stops_a_batch_whose_outcomes_can_still_be_read(
    client: TTSClient, server: ThreadedEmulator, tmp_path: Path
) -> None:
    waiting = server.create_tasks(3, ready_after=NEVER)
    # The batch deadline only bounds the test if cancel() did nothing.
    with client.fetch_many(waiting, tmp_path, batch_timeout=10) as batch:
        server.until_fetched(waiting[0])
        batch.cancel()  # does not wait: the outcomes arrive through the iterator
        states = [o.state for o in batch]
    assert states == [OutcomeState.CANCELLED] * 3
    assert temp_files(tmp_path) == []
