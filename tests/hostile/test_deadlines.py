"""Deadlines everywhere, and loops that give up: a trickling body cannot hold a call, a
silly ``expires_in`` cannot make every request fetch a token, and a server that refuses
every fresh token stops the batch after a few."""

from __future__ import annotations

import asyncio
import inspect
import sys
from pathlib import Path

import anyio
import pytest
from aiohttp import web

from aiotts import (
    AuthenticationError,
    RequestTimeout,
    SubmitUncertainError,
    Timeouts,
    TTSClient,
    UsageError,
)
from tests.hostile.servers import TOKEN, HostileServer
from tests.hostile.transport import (
    STATUS_PATH,
    TASK_ID,
    TOKEN_PATH,
    TTS_PATH,
    client_of,
    envelope,
)

pytestmark = pytest.mark.anyio

TRICKLE = 0.02  # seconds between bytes: never near the read timeout


async def trickle(request: web.Request) -> web.StreamResponse:
    """Headers at once, then one byte at a time, for at most a few seconds."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    for _ in range(200):
        await response.write(b" ")
        await asyncio.sleep(TRICKLE)
    return response


async def test_a_trickling_body_cannot_hold_a_call_past_its_deadline(tmp_path: Path) -> None:
    async with HostileServer() as server:
        for method, path in (("GET", TTS_PATH), ("DELETE", TTS_PATH), ("GET", STATUS_PATH)):
            server.route(method, path, trickle)
        timeouts = Timeouts(read=5.0, call=0.3)
        async with client_of(server, timeouts=timeouts) as client:
            calls = {
                "status": client.status(TASK_ID),
                "fetch": client.fetch(TASK_ID),
                "cancel": client.cancel(TASK_ID),
                "download": client.download(TASK_ID, tmp_path),
            }
            for name, call in calls.items():
                with pytest.raises(RequestTimeout) as caught:
                    await call
                assert isinstance(caught.value, TimeoutError)
                assert str(caught.value).startswith(f"{name}: ")
                assert "0.3s" in str(caught.value)
            # The call's own timeout overrides Timeouts.call.
            with pytest.raises(RequestTimeout, match=r"0\.1s"):
                await client.status(TASK_ID, timeout=0.1)
            with pytest.raises(UsageError, match="timeout"):
                await client.status(TASK_ID, timeout=-1)
    assert list(tmp_path.iterdir()) == []  # no partial file anywhere


@pytest.mark.parametrize("verb", ["status", "cancel"])
async def test_the_command_line_gives_status_and_cancel_a_deadline(verb: str) -> None:
    async with HostileServer() as server:
        server.route("GET", STATUS_PATH, trickle)
        env = server.cli_env()
        command = [sys.executable, "-m", "aiotts", verb, TASK_ID, "--timeout", "0.5"]
        with anyio.fail_after(30):
            result = await anyio.run_process(command, env=env, check=False)
    assert result.returncode == 4, result.stderr
    assert b"0.5s" in result.stderr
    assert b"Traceback" not in result.stderr


async def test_a_submit_cut_by_its_deadline_after_sending_is_uncertain() -> None:
    async with HostileServer() as server:
        server.route("POST", TTS_PATH, trickle)
        async with client_of(server) as client:
            with pytest.raises(SubmitUncertainError) as caught:
                # The deadline covers the token and the POST going out, then the answer
                # trickles for 4 s: long enough for a busy machine to send it in time.
                await client.submit("hello there", timeout=1.5)
    assert caught.value.text == "hello there"
    assert "1.5s" in str(caught.value)
    assert len(server.requests_to(TTS_PATH)) == 1  # not resent


async def test_a_submit_cut_before_sending_is_a_plain_timeout() -> None:
    async def slow_token(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.6)  # far past the submit's deadline
        return web.json_response({"access_token": TOKEN, "expires_in": 3600})

    async with HostileServer() as server:
        server.route("POST", TOKEN_PATH, slow_token)
        async with client_of(server) as client:
            with pytest.raises(RequestTimeout) as caught:
                await client.submit("hello", timeout=0.2)
    assert not isinstance(caught.value, SubmitUncertainError)
    assert server.requests_to(TTS_PATH) == []


def test_batches_have_a_finite_task_deadline_by_default() -> None:
    for method in (TTSClient.fetch_many,):
        assert inspect.signature(method).parameters["task_timeout"].default == 3600.0
    assert Timeouts().call == 300.0
    with pytest.raises(UsageError, match=r"Timeouts\.call"):
        Timeouts(call=0)


@pytest.mark.parametrize("expires_in", [1e-9, "nan", 0, -5, "soon", None, 1e300, True])
async def test_a_silly_lifetime_costs_a_handful_of_token_requests(expires_in: object) -> None:
    async def issue(request: web.Request) -> web.StreamResponse:
        return web.json_response({"access_token": TOKEN, "expires_in": expires_in})

    async def pending(request: web.Request) -> web.StreamResponse:
        return envelope(request.query["id"], "Pending")

    async with HostileServer() as server:
        server.route("POST", TOKEN_PATH, issue)
        server.route("GET", STATUS_PATH, pending)
        async with client_of(server) as client:
            for _ in range(200):
                await client.status(TASK_ID)
    assert len(server.requests_to(STATUS_PATH)) == 200
    assert len(server.requests_to(TOKEN_PATH)) <= 2


async def test_a_server_refusing_every_fresh_token_stops_the_batch(tmp_path: Path) -> None:
    async def refuse(request: web.Request) -> web.StreamResponse:
        return web.Response(status=401)

    async with HostileServer() as server:
        server.route("GET", TTS_PATH, refuse)
        server.route("GET", STATUS_PATH, refuse)
        async with client_of(server) as client:
            ids = [f"task-{n:04d}" for n in range(2000)]
            with pytest.raises(AuthenticationError, match="permissions"):
                await client.fetch_all(ids, tmp_path / "out")
            asked: list[int] = []
            for _ in range(5):
                with pytest.raises(AuthenticationError, match="freshly issued token"):
                    await client.status(TASK_ID)
                asked.append(len(server.requests_to(TOKEN_PATH)))
            assert len(set(asked[1:])) == 1  # after a few refusals, aiotts stopped asking
    assert len(server.requests_to(TOKEN_PATH)) < 10
    assert len(server.requests_to(TTS_PATH)) < 200
