"""``client.with_options(...)``: a view with other timeouts, retries or polls that shares
the client's session, token, limiter, scheduler and lifecycle."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import anyio
import pytest
from aiohttp import web

from aiotts import (
    ClientClosedError,
    Limits,
    PollPolicy,
    RequestTimeout,
    RetryPolicy,
    ServerError,
    Timeouts,
    TTSClient,
    UsageError,
)
from aiotts.emulator import Emulator, EmulatorConfig
from aiotts.sync import TTSClient as BlockingClient
from tests.helpers import client_for
from tests.hostile.servers import HostileServer
from tests.hostile.transport import STATUS_PATH, TASK_ID, TOKEN_PATH, client_of, envelope
from tests.integration.test_sync_client import ThreadedEmulator

pytestmark = pytest.mark.anyio

NEVER = 3600.0


def retries(attempts: int) -> RetryPolicy:
    return RetryPolicy(first_delay=0.001, max_delay=0.002, max_attempts=attempts, max_time=5)


def slow_status(seconds: float, release: asyncio.Event | None = None) -> HostileServer:
    """A server whose status answers take ``seconds``, or until ``release`` is set."""

    async def answer(request: web.Request) -> web.StreamResponse:
        with anyio.move_on_after(seconds):
            await (release or asyncio.Event()).wait()
        return envelope(TASK_ID, "Pending")

    server = HostileServer()
    server.route("GET", STATUS_PATH, answer)
    return server


async def test_a_shorter_call_timeout_expires_where_the_clients_does_not() -> None:
    async with slow_status(0.2) as server, client_of(server) as client:
        hurried = client.with_options(timeouts=Timeouts(call=0.05))
        with pytest.raises(RequestTimeout, match=r"0\.05s"):
            await hurried.status(TASK_ID)
        assert (await client.status(TASK_ID)).task_id == TASK_ID  # the client's is 300 s
        with pytest.raises(RequestTimeout):  # and the view's stays its own
            await hurried.status(TASK_ID)


async def test_a_view_retries_as_its_own_policy_says() -> None:
    async def unavailable(request: web.Request) -> web.StreamResponse:
        return web.Response(status=503)

    async with HostileServer() as server:
        server.route("GET", STATUS_PATH, unavailable)
        async with client_of(server, retry=retries(2)) as client:
            patient = client.with_options(retry=retries(5))
            with pytest.raises(ServerError):
                await patient.status(TASK_ID)
            assert len(server.requests_to(STATUS_PATH)) == 5
            with pytest.raises(ServerError):
                await client.status(TASK_ID)
            assert len(server.requests_to(STATUS_PATH)) == 5 + 2  # the client is unchanged
            assert client.counters["status"] == 7  # one set of counters for both
    assert len(server.requests_to(TOKEN_PATH)) == 1  # and one token


async def test_a_views_read_timeout_applies_to_its_requests() -> None:
    async with slow_status(0.3) as server, client_of(server, retry=retries(1)) as client:
        impatient = client.with_options(timeouts=Timeouts(read=0.05))
        with pytest.raises(RequestTimeout, match="read timeout"):
            await impatient.status(TASK_ID)
        await client.status(TASK_ID)


async def test_a_view_shares_the_session_token_and_scheduler(
    emulator: Emulator, tmp_path: Path
) -> None:
    client = client_for(emulator)
    early = client.with_options(poll=PollPolicy(first_delay=0.01, min_delay=0.01))
    with pytest.raises(ClientClosedError, match="opens with the client"):
        await early.submit("too soon")
    async with client:
        view = early.with_options(timeouts=Timeouts(call=30))  # a view of a view
        assert view._session._session is client._session._session
        task_id = await view.submit("Shared by a view.")
        saved = await view.wait(task_id, tmp_path, timeout=30)
        assert saved.path.exists()
        assert view._scheduler is client._scheduler is not None
        report = await early.fetch_all([task_id], tmp_path / "batch")
        assert len(report.done) == 1
    assert emulator.stats().token_requests == 1


async def test_closing_a_view_closes_nothing(emulator: Emulator) -> None:
    async with client_for(emulator) as client:
        async with client.with_options(timeouts=Timeouts(call=30)) as view:
            task_id = await view.submit("hello")
        await view.aclose()
        await client.status(task_id)  # the client is still open
        await view.status(task_id)  # and so is the view, with it
    with pytest.raises(ClientClosedError):
        await view.status(task_id)


async def test_closing_the_client_ends_the_views_calls(emulator: Emulator, tmp_path: Path) -> None:
    release = asyncio.Event()
    async with slow_status(NEVER, release) as server:
        client = client_of(server, limits=Limits(polls=1, downloads=1))
        await client.__aenter__()
        view = client.with_options(retry=retries(3))
        [pending] = emulator.create_tasks(1, ready_after=NEVER)
        other = client_for(emulator)
        raised: list[BaseException] = []

        async def call(work: object) -> None:
            try:
                await work  # type: ignore[misc]
            except Exception as exc:
                raised.append(exc)

        async with other, anyio.create_task_group() as group:
            waiting = other.with_options(poll=PollPolicy(first_delay=0.01, min_delay=0.01))
            group.start_soon(call, view.status(TASK_ID))
            group.start_soon(call, client.status(TASK_ID))
            group.start_soon(call, waiting.wait(pending, tmp_path, timeout=NEVER))
            # One status call is at the server, the other waits for the one slot: no
            # request of its own to cut, only the close to end it.
            while not server.requests_to(STATUS_PATH) or not emulator.record(pending).fetches:
                await anyio.sleep(0.01)
            await anyio.sleep(0.05)
            await client.aclose()
            await other.aclose()
        release.set()
    assert [type(e) for e in raised] == [ClientClosedError] * 3, raised
    assert "closed while this call was running" in str(raised[0])


def test_bad_options_are_usage_errors() -> None:
    client = TTSClient("id", "secret", base_url="http://127.0.0.1:9")
    with pytest.raises(UsageError, match="timeouts must be a Timeouts"):
        client.with_options(timeouts=5)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="retry must be a RetryPolicy"):
        client.with_options(retry=dataclasses.asdict(RetryPolicy()))  # type: ignore[arg-type]


# -- the blocking client ----------------------------------------------------------------------


def test_the_blocking_clients_view() -> None:
    server = ThreadedEmulator(EmulatorConfig(pending_seconds=0, processing_seconds=0))
    try:
        emu = server.emu
        with BlockingClient(emu.client_id, emu.client_secret, base_url=emu.url) as client:
            view = client.with_options(timeouts=Timeouts(call=30), retry=retries(2))
            task_id = view.submit("From a blocking view.")
            view.close()  # closes nothing
            assert client.status(task_id).task_id == task_id
            assert view.status(task_id).task_id == task_id
        assert view.closed
        with pytest.raises(ClientClosedError):
            view.status(task_id)
    finally:
        server.close()


def test_the_blocking_client_takes_no_session_or_connector() -> None:
    with pytest.raises(UsageError, match="runs its own event loop"):
        BlockingClient("id", "secret", session=object())  # type: ignore[arg-type]
