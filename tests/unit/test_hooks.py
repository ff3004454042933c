"""The emitter on its own: which entry points exist, how hooks are called, what a failing
or slow hook does, and the structured log records and their JSON form."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
from yarl import URL

from aiotts import (
    FileWritten,
    Hooks,
    Outcome,
    OutcomeState,
    RateChanged,
    TaskStateChanged,
    TokenRefreshed,
    UsageError,
    _hooks,
    _logs,
)
from aiotts._hooks import Emitter
from aiotts._logs import JsonFormatter, configure_from_env, log_levels
from aiotts._ratelimit import RateLimiter
from aiotts._states import State

ENTRY_POINTS = ("moved", "ended", "retry", "throttled", "rate", "token", "response", "file")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_emitter_nobody_listens_to_has_no_entry_point() -> None:
    emitter = Emitter()
    assert [getattr(emitter, name) for name in ENTRY_POINTS] == [None] * len(ENTRY_POINTS)
    assert repr(emitter) == "<Emitter silent dropped=0>"


def test_each_hook_arms_only_its_entry_points() -> None:
    def hook(event: object) -> None:
        pass

    armed = {
        "on_state": {"moved", "ended"},
        "on_file": {"moved", "ended", "file"},
        "on_retry": {"retry"},
        "on_throttle": {"throttled"},
        "on_rate": {"rate"},
        "on_token": {"token"},
        "on_request": {"response"},
    }
    for field_name, expected in armed.items():
        emitter = Emitter([Hooks(**{field_name: hook})])
        on = {name for name in ENTRY_POINTS if getattr(emitter, name) is not None}
        assert on == expected, field_name


def test_log_levels_arm_the_entry_points_of_the_events_logged() -> None:
    emitter = Emitter(log_levels={"retry": logging.INFO})
    assert emitter.retry is not None
    assert emitter.moved is None and emitter.response is None


def test_state_changes_carry_previous_state_and_time_since_taken_in() -> None:
    clock = Clock()
    heard: list[TaskStateChanged] = []
    emitter = Emitter([Hooks(on_state=heard.append)], clock=clock, wall_clock=lambda: 5.0)
    assert emitter.moved is not None and emitter.ended is not None
    emitter.moved("t1", None, State.POLLING, ())
    clock.now += 2.0
    emitter.moved("t1", State.POLLING, State.DOWNLOADING, ())
    clock.now += 1.0
    outcome = Outcome("t1", OutcomeState.DONE, finished_at=7.0)
    emitter.ended(outcome, None)
    assert [(e.previous, e.state, e.elapsed, e.final) for e in heard] == [
        (None, "polling", 0.0, False),
        ("polling", "downloading", 2.0, False),
        ("downloading", "done", 3.0, True),
    ]
    assert heard[-1].outcome is outcome and heard[-1].at == 7.0
    # Ended and forgotten: an ending heard again (a second subscriber) has no start.
    emitter.ended(outcome, None)
    assert heard[-1].elapsed is None and heard[-1].previous is None


def test_an_ending_with_files_reports_each_file(tmp_path: Path) -> None:
    files: list[FileWritten] = []
    emitter = Emitter([Hooks(on_file=files.append)])
    one, two = tmp_path / "a.wav", tmp_path / "a.1.wav"
    one.write_bytes(b"x" * 10)
    two.write_bytes(b"y" * 30)
    assert emitter.ended is not None
    emitter.ended(Outcome("a", OutcomeState.DONE, files=(one,), bytes_written=10), None)
    emitter.ended(Outcome("b", OutcomeState.DONE, files=(one, two), bytes_written=40), None)
    emitter.ended(Outcome("c", OutcomeState.DONE, files=(one,), resumed=True), None)
    assert files == [
        FileWritten("a", one, 10),
        FileWritten("b", one, 10),
        FileWritten("b", two, 30),
    ]


def test_a_failing_sync_hook_is_logged_once_with_its_traceback_and_the_rest_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    heard: list[str] = []

    def broken(event: TaskStateChanged) -> None:
        raise RuntimeError("hook bug")

    emitter = Emitter([Hooks(on_state=broken), Hooks(on_state=lambda e: heard.append(e.state))])
    assert emitter.moved is not None
    with caplog.at_level(logging.DEBUG, logger="aiotts"):
        emitter.moved("t", None, State.POLLING, ())
        emitter.moved("t", State.POLLING, State.DOWNLOADING, ())
    assert heard == ["polling", "downloading"]
    failures = [r for r in caplog.records if getattr(r, "event", None) == "hook_error"]
    assert [r.levelno for r in failures] == [logging.WARNING, logging.DEBUG]
    assert failures[0].exc_info is not None and failures[1].exc_info is None
    assert "broken" in failures[0].getMessage()


def test_a_hook_that_raises_base_exception_is_not_swallowed() -> None:
    def interrupt(event: object) -> None:
        raise KeyboardInterrupt

    emitter = Emitter([Hooks(on_token=interrupt)])
    assert emitter.token is not None
    with pytest.raises(KeyboardInterrupt):
        emitter.token(60.0, 1)


@pytest.mark.anyio
async def test_async_hooks_run_in_order_off_the_caller_and_are_drained_on_close() -> None:
    heard: list[float] = []
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(event: TokenRefreshed) -> None:
        started.set()
        await release.wait()
        heard.append(event.lifetime)

    emitter = Emitter([Hooks(on_token=slow)])
    assert emitter.token is not None
    for lifetime in (1.0, 2.0, 3.0):
        emitter.token(lifetime, 1)  # returns at once: the hook has not even started
    assert heard == []
    await started.wait()
    release.set()
    await emitter.aclose()
    assert heard == [1.0, 2.0, 3.0]


@pytest.mark.anyio
async def test_an_async_hook_that_never_ends_is_cut_off_at_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def stuck(event: object) -> None:
        await asyncio.Event().wait()

    emitter = Emitter([Hooks(on_token=stuck)])
    assert emitter.token is not None
    emitter.token(1.0, 1)
    emitter.token(1.0, 2)
    await emitter.aclose(timeout=0.01)
    assert any("did not finish" in r.getMessage() for r in caplog.records)


@pytest.mark.anyio
async def test_a_failing_async_hook_is_logged_and_the_next_event_still_delivered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    heard: list[int] = []

    async def flaky(event: TokenRefreshed) -> None:
        if event.refreshes == 1:
            raise ValueError("first one fails")
        heard.append(event.refreshes)

    emitter = Emitter([Hooks(on_token=flaky)])
    assert emitter.token is not None
    emitter.token(1.0, 1)
    emitter.token(1.0, 2)
    await emitter.aclose()
    assert heard == [2]
    assert any(getattr(r, "event", None) == "hook_error" for r in caplog.records)


@pytest.mark.anyio
async def test_a_full_backlog_drops_events_and_counts_them(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_hooks, "ASYNC_BACKLOG", 2)
    heard: list[int] = []

    async def hook(event: TokenRefreshed) -> None:
        heard.append(event.refreshes)

    emitter = Emitter([Hooks(on_token=hook)])
    assert emitter.token is not None
    for n in range(5):
        emitter.token(1.0, n)  # nothing runs in between: the consumer has not started
    await emitter.aclose()
    assert heard == [0, 1]
    assert emitter.dropped == 3
    assert sum("events are dropped" in r.getMessage() for r in caplog.records) == 1


def test_an_object_with_an_async_call_is_an_async_hook() -> None:
    class Sink:
        async def __call__(self, event: object) -> None:
            pass

    calls: _hooks._Calls[object] = _hooks._Calls([Sink(), print])
    assert len(calls.asynchronous) == 1 and calls.synchronous == [print]


def test_hooks_refuse_what_cannot_be_called() -> None:
    with pytest.raises(UsageError, match=r"Hooks\.on_state must be a callable"):
        Hooks(on_state="print")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"hooks must be an aiotts\.Hooks"):
        _hooks.hooks_list(print)  # type: ignore[arg-type]
    assert _hooks.hooks_list([Hooks(), Hooks()]) == (Hooks(), Hooks())


def test_a_batch_takes_task_hooks_only() -> None:
    assert Emitter.batch_hooks(Hooks(on_state=print, on_file=print)) == (
        Hooks(on_state=print, on_file=print),
    )
    with pytest.raises(UsageError, match="on_retry is about the whole client"):
        Emitter.batch_hooks([Hooks(on_state=print), Hooks(on_retry=print)])


def test_watching_a_batch_arms_the_task_entry_points() -> None:
    class Batch:
        pass

    class Sub:
        def __init__(self, listener: object) -> None:
            self.listener = listener

    emitter = Emitter()
    batch, other = Batch(), Batch()
    heard: list[str] = []
    emitter.watch(batch, (Hooks(on_state=lambda e: heard.append(e.task_id)),))
    assert emitter.moved is not None and emitter.ended is not None and emitter.file is not None
    emitter.moved("mine", None, State.POLLING, (Sub(batch),))
    emitter.moved("theirs", None, State.POLLING, (Sub(other),))
    emitter.ended(Outcome("mine", OutcomeState.DONE), batch)
    emitter.ended(Outcome("theirs", OutcomeState.DONE), other)
    assert heard == ["mine", "mine"]


def test_the_rate_limiter_reports_each_slowdown() -> None:
    clock = Clock()
    heard: list[RateChanged] = []
    emitter = Emitter([Hooks(on_rate=heard.append)])

    async def sleep(seconds: float) -> None:
        pass

    limiter = RateLimiter(100.0, burst=1, clock=clock, sleep=sleep)
    limiter.on_slowed = emitter.rate
    for _ in range(50):
        limiter.sent()
        limiter.throttled()
    clock.now += 1.0
    limiter.succeeded()  # the next second starts: the last one had only 429s
    assert heard == [RateChanged(25.0, 1)]  # half of the 50 a second it sent


# -- log records -----------------------------------------------------------------------------


def json_lines(emit: Any) -> list[dict[str, Any]]:
    """What the JSON handler writes while ``emit`` runs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("aiotts")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        emit(Emitter(log_levels=log_levels()))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_each_event_is_one_json_line_with_its_fields() -> None:
    def emit(emitter: Emitter) -> None:
        assert emitter.moved is not None and emitter.ended is not None
        assert emitter.token is not None and emitter.response is not None
        emitter.moved("t1", None, State.POLLING, ())
        emitter.ended(Outcome("t1", OutcomeState.FAILED, error="the server said Error"), None)
        emitter.token(3540.0, 1)
        emitter.response("poll", "GET", 200, 0.0, URL("http://127.0.0.1/v5.0/x?id=t1"))

    lines = json_lines(emit)
    assert [line["event"] for line in lines] == ["state", "state", "token", "request"]
    first, failed, token, request = lines
    assert first["task_id"] == "t1" and first["state"] == "polling" and "previous" not in first
    assert first["level"] == "debug" and first["logger"] == "aiotts"
    assert first["time"].endswith("Z")
    assert failed["previous"] == "polling" and failed["state"] == "failed"
    assert failed["error"] == "the server said Error" and isinstance(failed["elapsed"], float)
    assert token == {**token, "lifetime": 3540.0, "refreshes": 1, "level": "info"}
    assert request["kind"] == "poll" and request["status"] == 200 and request["method"] == "GET"
    assert request["path"] == "/v5.0/x" and request["message"].startswith("GET /v5.0/x -> 200")


def test_aiotts_log_names_the_values_it_accepts() -> None:
    with pytest.raises(UsageError, match="AIOTTS_LOG='loud' is not understood: use json, debug"):
        configure_from_env({"AIOTTS_LOG": "loud"})
    assert configure_from_env({}) is None


def test_aiotts_log_json_configures_the_logger_once(monkeypatch: pytest.MonkeyPatch) -> None:
    logger = logging.getLogger("aiotts")
    monkeypatch.setattr(_logs, "_configured", False)
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "level", logging.NOTSET)
    monkeypatch.setattr(logger, "propagate", True)
    assert configure_from_env({"AIOTTS_LOG": "JSON"}) == "json"
    assert configure_from_env({"AIOTTS_LOG": "debug"}) is None  # once per process
    assert len(logger.handlers) == 1
    assert isinstance(logger.handlers[0].formatter, JsonFormatter)
    assert logger.level == logging.DEBUG and not logger.propagate


def test_a_task_id_is_shown_escaped_in_log_records() -> None:
    hostile = "TTS\x1b[31mred"

    def emit(emitter: Emitter) -> None:
        assert emitter.ended is not None
        emitter.ended(Outcome(hostile, OutcomeState.ABORTED, error="bad id"), None)

    (line,) = json_lines(emit)
    assert line["task_id"] == "TTS\\x1b[31mred"
    assert "\x1b" not in line["message"] and "TTS\\x1b[31mred" in line["message"]
