"""A session or connector given in, the User-Agent, and extra headers.

The client sends through what it is given and never closes it; whatever the given
session's own settings, aiotts's safety settings go with each request (no redirects, its
timeouts, its error handling).
"""

from __future__ import annotations

import asyncio
import platform
import ssl
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web

import aiotts
from aiotts import ServerError, TTSClient, UsageError
from aiotts.emulator import Emulator
from tests.helpers import client_for, tls_server_context
from tests.hostile.servers import HostileServer
from tests.hostile.transport import FEW_RETRIES, STATUS_PATH, TASK_ID, TOKEN_PATH, client_of

pytestmark = pytest.mark.anyio

TTS_PATH = "/v5.0/ocr/ConvertTextToSpeech"


async def accept_submit(request: web.Request) -> web.StreamResponse:
    return web.Response(text="TTSfeed-0000-4000-8000-000000000001")


async def submit_to(server: HostileServer, **options: object) -> None:
    server.route("POST", TTS_PATH, accept_submit)
    async with client_of(server, **options) as client:  # type: ignore[arg-type]
        await client.submit("Who is asking?")


# -- a session given in --------------------------------------------------------------------------


async def test_the_client_uses_a_session_given_in_and_leaves_it_open(
    emulator: Emulator, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as session:
        async with client_for(emulator, session=session) as client:
            assert client._session._session is session
            task_id = await client.submit("Through your own session.")
            await client.wait(task_id, tmp_path, timeout=30)
        assert not session.closed  # the client closes only what it opened
        async with session.post(emulator.url + TOKEN_PATH, data={"grant_type": "x"}) as answer:
            assert answer.status == 400  # still usable
        # A second client may use the same session after the first one closed.
        async with client_for(emulator, session=session) as again:
            await again.status(task_id)


async def test_a_closed_session_is_a_clear_error(emulator: Emulator) -> None:
    session = aiohttp.ClientSession()
    await session.close()
    with pytest.raises(UsageError, match="session given in is closed"):
        async with client_for(emulator, session=session):
            pass


async def test_a_session_from_another_loop_is_a_clear_error(emulator: Emulator) -> None:
    other = asyncio.new_event_loop()
    with ThreadPoolExecutor(1) as thread:  # the other loop runs in a thread of its own
        session = thread.submit(other.run_until_complete, _make_session()).result()
        try:
            with pytest.raises(UsageError, match="another event loop"):
                async with client_for(emulator, session=session):
                    pass
        finally:
            thread.submit(other.run_until_complete, session.close()).result()
            thread.submit(other.close).result()


async def _make_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession()


async def test_a_session_given_in_cannot_reopen_the_redirect_hole() -> None:
    async with HostileServer() as elsewhere, HostileServer() as server:

        async def away(request: web.Request) -> web.StreamResponse:
            return web.Response(status=307, headers={"Location": elsewhere.url + STATUS_PATH})

        server.route("GET", STATUS_PATH, away)
        server.route("POST", TOKEN_PATH, away)
        async with (
            aiohttp.ClientSession() as session,  # follows redirects by default
            client_of(server, session=session) as client,
        ):
            with pytest.raises(aiotts.AuthenticationError, match="HTTP 307"):
                await client.status(TASK_ID)
    assert elsewhere.received == []  # the client secret never left for the other host


async def test_a_session_given_in_keeps_aiotts_timeouts_and_error_handling() -> None:
    async def unavailable(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.05)  # longer than the session's own total timeout
        return web.Response(status=503)

    async with HostileServer() as server:
        server.route("GET", STATUS_PATH, unavailable)
        session = aiohttp.ClientSession(
            raise_for_status=True, timeout=aiohttp.ClientTimeout(total=0.001)
        )
        async with session, client_of(server, session=session, retry=FEW_RETRIES) as client:
            with pytest.raises(ServerError, match="HTTP 503"):
                await client.status(TASK_ID)
    # Retried as aiotts retries a 503: the session's settings changed nothing.
    assert len(server.requests_to(STATUS_PATH)) == FEW_RETRIES.max_attempts


def test_session_and_connector_together_are_refused() -> None:
    with pytest.raises(UsageError, match="not both"):
        TTSClient("id", "secret", session=object(), connector=object())  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"aiohttp\.ClientSession"):
        TTSClient("id", "secret", session="a session")  # type: ignore[arg-type]


# -- a connector given in ------------------------------------------------------------------------


async def test_the_client_uses_a_connector_given_in_and_leaves_it_open(emulator: Emulator) -> None:
    connector = aiohttp.TCPConnector(limit=4)
    try:
        async with client_for(emulator, connector=connector) as client:
            http = client._session._session
            assert http is not None and http.connector is connector
            await client.status(await client.submit("Through your own connector."))
        assert http.closed and not connector.closed
        async with (
            aiohttp.ClientSession(connector=connector, connector_owner=False) as mine,
            mine.get(emulator.url + TTS_PATH, params={"id": "x"}) as answer,
        ):
            assert answer.status == 401  # the connector still works
    finally:
        await connector.close()
    with pytest.raises(UsageError, match="connector given in is closed"):
        async with client_for(emulator, connector=connector):
            pass


# -- who is asking -------------------------------------------------------------------------------


async def test_every_request_names_aiotts_aiohttp_and_python() -> None:
    async with HostileServer() as server:
        await submit_to(server)
    expected = (
        f"aiotts/{aiotts.__version__} aiohttp/{aiohttp.__version__} "
        f"python/{platform.python_version()}"
    )
    assert [r.path for r in server.received] == [TOKEN_PATH, TTS_PATH]
    assert {r.headers["User-Agent"] for r in server.received} == {expected}


async def test_headers_given_in_go_with_every_request_and_may_replace_the_user_agent() -> None:
    async with HostileServer() as server:
        await submit_to(server, headers={"User-Agent": "pipeline/2.1", "X-Team": "audio"})
    assert len(server.received) == 2
    for received in server.received:
        assert received.headers["User-Agent"] == "pipeline/2.1"
        assert received.headers["X-Team"] == "audio"


async def test_a_session_given_in_keeps_its_own_user_agent_unless_headers_say_otherwise() -> None:
    async with HostileServer() as server:
        async with aiohttp.ClientSession(headers={"User-Agent": "mine/1"}) as session:
            await submit_to(server, session=session, headers={"X-Team": "audio"})
        async with aiohttp.ClientSession() as plain:
            await submit_to(server, session=plain)
        async with aiohttp.ClientSession(headers={"User-Agent": "mine/1"}) as session:
            await submit_to(server, session=session, headers={"User-Agent": "pipeline/2.1"})
    agents = [r.headers["User-Agent"] for r in server.received]
    assert agents[:2] == ["mine/1", "mine/1"]
    assert all(a.startswith("aiotts/") for a in agents[2:4])
    assert agents[4:] == ["pipeline/2.1", "pipeline/2.1"]
    assert [r.headers.get("X-Team") for r in server.received[:2]] == ["audio", "audio"]


@pytest.mark.parametrize("name", ["Authorization", "content-type", "Host", "Proxy-Authorization"])
def test_headers_aiotts_sets_itself_are_refused(name: str) -> None:
    with pytest.raises(UsageError, match=f"may not set {name}"):
        TTSClient("id", "secret", headers={name: "x"})


def test_a_header_with_a_line_break_is_refused() -> None:
    with pytest.raises(UsageError, match="line break"):
        TTSClient("id", "secret", headers={"X-Team": "a\r\nInjected: yes"})


async def test_certificate_settings_apply_to_a_session_given_in() -> None:
    ca = trustme.CA()
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    async with Emulator(ssl_context=tls_server_context(ca)) as emu:
        async with (
            aiohttp.ClientSession() as session,  # trusts only the system's authorities
            client_for(emu, session=session, ssl_context=trusted) as client,
        ):
            await client.status(TASK_ID)
        connector = aiohttp.TCPConnector()
        try:
            async with client_for(emu, connector=connector, ssl_context=trusted) as client:
                await client.status(TASK_ID)
        finally:
            await connector.close()
