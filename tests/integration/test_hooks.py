"""Hooks against the emulator and a misbehaving server: every kind of event, per client and
per batch, sync and async, and a hook that fails never failing the work."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import anyio
import pytest
from aiohttp import web

from aiotts import (
    FileWritten,
    Hooks,
    RequestFinished,
    RetryScheduled,
    TaskStateChanged,
    Throttled,
    TokenRefreshed,
    UsageError,
)
from aiotts.emulator import Emulator, EmulatorConfig
from tests.helpers import client_for
from tests.hostile.servers import HostileServer
from tests.hostile.transport import TASK_ID, TTS_PATH, client_of, completed, envelope
from tests.integration.test_sync_client import ThreadedEmulator, blocking_client

pytestmark = pytest.mark.anyio

E = TypeVar("E")


@pytest.fixture
def server() -> Iterator[ThreadedEmulator]:
    """An emulator on a loop of its own, for the blocking client."""
    emulator = ThreadedEmulator(EmulatorConfig(pending_seconds=0, processing_seconds=0))
    try:
        yield emulator
    finally:
        emulator.close()


class Recorder:
    """Every event of every kind, in the order heard."""

    def __init__(self) -> None:
        self.events: list[object] = []

    def __call__(self, event: object) -> None:
        self.events.append(event)

    def hooks(self) -> Hooks:
        return Hooks(
            on_state=self,
            on_retry=self,
            on_throttle=self,
            on_rate=self,
            on_token=self,
            on_file=self,
            on_request=self,
        )

    def of(self, kind: type[E]) -> list[E]:
        return [event for event in self.events if isinstance(event, kind)]

    def states(self) -> dict[str, list[tuple[str | None, str]]]:
        moves: dict[str, list[tuple[str | None, str]]] = defaultdict(list)
        for event in self.of(TaskStateChanged):
            moves[event.task_id].append((event.previous, event.state))
        return dict(moves)


LIFE_OF_A_DONE_TASK = [(None, "polling"), ("polling", "downloading"), ("downloading", "done")]


async def test_a_batch_reports_state_changes_files_answers_and_the_token(
    emulator: Emulator, tmp_path: Path
) -> None:
    ready = emulator.create_tasks(3, ready_after=0)
    later = emulator.create_tasks(1, ready_after=0.3)  # Pending a few polls: no event for those
    failing = emulator.create_tasks(1, ready_after=0, fail=True)
    heard = Recorder()
    async with client_for(emulator, hooks=heard.hooks()) as client:
        report = await client.fetch_all(ready + later + failing, tmp_path)
        counters = client.counters
    assert len(report.done) == 4
    moves = heard.states()
    assert {task_id: moves[task_id] for task_id in ready + later} == dict.fromkeys(
        ready + later, LIFE_OF_A_DONE_TASK
    )
    assert moves[failing[0]] == [(None, "polling"), ("polling", "failed")]
    endings = [e for e in heard.of(TaskStateChanged) if isinstance(e, TaskStateChanged) and e.final]
    assert {e.task_id: e.outcome for e in endings} == {
        o.task_id: o for o in report.done + report.failed
    }
    assert all(e.elapsed is not None and e.elapsed >= 0 for e in endings)
    files = heard.of(FileWritten)
    assert sorted((f.task_id, f.path, f.bytes_written) for f in files) == sorted(
        (o.task_id, o.files[0], o.bytes_written) for o in report.done
    )
    answers = heard.of(RequestFinished)
    assert len(answers) == sum(counters.values())
    assert {(a.kind, a.method, a.status) for a in answers} == {
        ("token", "POST", 200),
        ("poll", "GET", 200),
    }
    assert {a.task_id for a in answers if a.kind == "poll"} == set(ready + later + failing)
    (token,) = heard.of(TokenRefreshed)
    assert isinstance(token, TokenRefreshed) and token.refreshes == 1 and token.lifetime > 0
    # Each task's file is reported after its last move and before its ending.
    for task_id in ready:
        order = [
            type(e).__name__ + getattr(e, "state", "")
            for e in heard.events
            if getattr(e, "task_id", None) == task_id and not isinstance(e, RequestFinished)
        ]
        assert order == [
            "TaskStateChangedpolling",
            "TaskStateChangeddownloading",
            "FileWritten",
            "TaskStateChangeddone",
        ]


async def test_a_batchs_own_hooks_hear_its_tasks_only(emulator: Emulator, tmp_path: Path) -> None:
    first_ids, second_ids = emulator.create_tasks(2, ready_after=0), emulator.create_tasks(2)
    client_heard, first_heard, second_heard = Recorder(), Recorder(), Recorder()
    async with client_for(emulator, hooks=Hooks(on_state=client_heard)) as client:
        batch_hooks = Hooks(on_state=first_heard, on_file=first_heard)
        first = client.fetch_many(first_ids, tmp_path, hooks=batch_hooks)
        second = client.fetch_many(second_ids, tmp_path, hooks=[Hooks(on_state=second_heard)])
        async with anyio.create_task_group() as group:
            group.start_soon(first.collect)
            group.start_soon(second.collect)
        with pytest.raises(UsageError, match="on_token is about the whole client"):
            client.fetch_many(first_ids, tmp_path, hooks=Hooks(on_token=print))
    assert set(first_heard.states()) == set(first_ids)
    assert set(second_heard.states()) == set(second_ids)
    assert first_heard.states() == dict.fromkeys(first_ids, LIFE_OF_A_DONE_TASK)
    assert len(first_heard.of(FileWritten)) == 2 and second_heard.of(FileWritten) == []
    assert set(client_heard.states()) == set(first_ids + second_ids)


async def test_a_batch_with_hooks_on_a_client_without_any(
    emulator: Emulator, tmp_path: Path
) -> None:
    ids = emulator.create_tasks(2, ready_after=0)
    heard = Recorder()
    async with client_for(emulator) as client:
        await client.fetch_all(ids, tmp_path, hooks=Hooks(on_state=heard))
    assert heard.states() == dict.fromkeys(ids, LIFE_OF_A_DONE_TASK)


async def test_no_hooks_and_no_logging_leave_every_entry_point_empty(
    emulator: Emulator, tmp_path: Path
) -> None:
    logging.getLogger("aiotts").setLevel(logging.WARNING)
    try:
        async with client_for(emulator) as client:
            await client.fetch_all(emulator.create_tasks(1, ready_after=0), tmp_path)
            events = client._events
            assert client._scheduler is not None and client._scheduler.events is events
            assert client._session.events is events
    finally:
        logging.getLogger("aiotts").setLevel(logging.NOTSET)
    assert repr(events) == "<Emitter silent dropped=0>"
    assert client._session.limiter.on_slowed is None and client._session.tokens.on_refresh is None


async def test_a_hook_that_always_raises_breaks_nothing(
    emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = emulator.create_tasks(5, ready_after=0)

    def broken(event: object) -> None:
        raise RuntimeError("a bug in the hook")

    hooks = Hooks(on_state=broken, on_file=broken, on_request=broken, on_token=broken)
    async with client_for(emulator, hooks=hooks) as client:
        report = await client.fetch_all(ids, tmp_path)
        saved = await client.download(ids[0], tmp_path / "again")
    assert len(report.done) == 5 and saved.path.exists()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "a hook" not in warnings[0].getMessage()
    assert "broken" in warnings[0].getMessage() and warnings[0].exc_info is not None


async def test_async_hooks_hear_every_event_in_order_by_the_time_the_client_closed(
    emulator: Emulator, tmp_path: Path
) -> None:
    ids = emulator.create_tasks(4, ready_after=0)
    heard: list[tuple[str, str]] = []

    async def slow_state(event: TaskStateChanged) -> None:
        await anyio.sleep(0.001)  # slower than the polls: the events queue up meanwhile
        heard.append((event.task_id, event.state))

    async with client_for(emulator, hooks=Hooks(on_state=slow_state)) as client:
        report = await client.fetch_all(ids, tmp_path)
    assert len(report.done) == 4
    for task_id in ids:
        assert [state for tid, state in heard if tid == task_id] == [
            "polling",
            "downloading",
            "done",
        ]


async def test_waits_report_their_endings_and_a_cancelled_wait_ends_cancelled(
    emulator: Emulator, tmp_path: Path
) -> None:
    (done_id,) = emulator.create_tasks(1, ready_after=0)
    (slow_id,) = emulator.create_tasks(1, ready_after=3600)
    heard = Recorder()
    async with client_for(emulator, hooks=heard.hooks()) as client:
        saved = await client.wait(done_id, tmp_path)
        with anyio.move_on_after(0.2):
            await client.wait(slow_id, tmp_path)
        single = await client.download(done_id, tmp_path / "single.wav")
    moves = heard.states()
    assert moves[done_id] == LIFE_OF_A_DONE_TASK
    assert moves[slow_id] == [(None, "polling"), ("polling", "cancelled")]
    files = [(f.task_id, f.path) for f in heard.of(FileWritten)]
    assert files == [(done_id, saved.path), (done_id, single.path)]


async def test_resumed_ids_end_without_a_file_event(emulator: Emulator, tmp_path: Path) -> None:
    ids = emulator.create_tasks(2, ready_after=0)
    manifest = tmp_path / "record.jsonl"
    async with client_for(emulator) as client:
        await client.fetch_all(ids, tmp_path, manifest=manifest)
    heard = Recorder()
    async with client_for(emulator, hooks=heard.hooks()) as client:
        report = await client.fetch_all(ids, tmp_path, manifest=manifest, resume=True)
    assert report.statistics.resumed == 2
    endings = heard.of(TaskStateChanged)
    assert [(e.state, e.elapsed, e.outcome is not None and e.outcome.resumed) for e in endings] == [
        ("done", None, True),
        ("done", None, True),
    ]
    assert heard.of(FileWritten) == []


async def test_retries_and_429s_name_the_task_the_attempt_and_the_cause(tmp_path: Path) -> None:
    answers = iter(
        [
            web.Response(status=503, reason="Busy"),
            web.Response(status=429, headers={"Retry-After": "0"}),
            None,
        ]
    )

    async def flaky(request: web.Request) -> web.StreamResponse:
        answer = next(answers, None)
        return answer if answer is not None else completed(request.query["id"])

    heard = Recorder()
    async with HostileServer() as server:
        server.route("GET", TTS_PATH, flaky)
        async with client_of(server, hooks=heard.hooks()) as client:
            report = await client.fetch_all([TASK_ID], tmp_path)
    assert len(report.done) == 1
    retries = heard.of(RetryScheduled)
    assert [(r.kind, r.task_id, r.attempt, r.status) for r in retries] == [
        ("poll", TASK_ID, 1, 503),
        ("poll", TASK_ID, 2, 429),
    ]
    assert "HTTP 503 Busy" in retries[0].cause
    (throttled,) = heard.of(Throttled)
    assert throttled == Throttled("poll", TASK_ID, retry_after=0.0, rate=None)
    statuses = [a.status for a in heard.of(RequestFinished) if a.kind == "poll"]
    assert statuses == [503, 429, 200]


async def test_a_single_call_reports_its_answers_and_the_token_between(tmp_path: Path) -> None:
    heard = Recorder()

    async def pending(request: web.Request) -> web.StreamResponse:
        return envelope(request.query["id"], "Pending")

    async with HostileServer() as server:
        server.route("GET", TTS_PATH, pending)
        async with client_of(server, hooks=heard.hooks()) as client:
            await client.fetch(TASK_ID)
    token_answer, token, fetch_answer = heard.events
    assert isinstance(token_answer, RequestFinished)
    assert token_answer == RequestFinished(
        "token", "POST", "/connect/token", 200, token_answer.seconds, None
    )
    assert isinstance(token, TokenRefreshed) and token.refreshes == 1
    assert isinstance(fetch_answer, RequestFinished) and fetch_answer.kind == "fetch"
    assert fetch_answer.path == TTS_PATH


def test_the_blocking_client_takes_the_same_hooks(server: ThreadedEmulator, tmp_path: Path) -> None:
    ids = server.create_tasks(2, ready_after=0)
    heard = Recorder()
    with blocking_client(server, hooks=heard.hooks()) as client:
        for _ in client.fetch_many(ids, tmp_path, hooks=Hooks(on_file=heard)):
            pass
    assert heard.states() == dict.fromkeys(ids, LIFE_OF_A_DONE_TASK)
    # The batch's on_file and the client's both heard each file.
    assert sorted(f.task_id for f in heard.of(FileWritten)) == sorted(ids + ids)
