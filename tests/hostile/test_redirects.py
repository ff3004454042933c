"""Redirects carry what is sent: aiotts follows none, so the token form (client secret
included) and the bearer token never reach the host a ``Location`` names."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from aiotts import AuthenticationError, ResponseError, TTSClient
from tests.hostile.servers import CLIENT_ID, CLIENT_SECRET, HostileServer
from tests.hostile.transport import (
    STATUS_PATH,
    TASK_ID,
    TOKEN_PATH,
    TTS_PATH,
    TlsHostileServer,
    client_of,
    completed,
)

pytestmark = pytest.mark.anyio

REDIRECTS = [301, 302, 303, 307, 308]


def redirect_to(location: str, status: int) -> web.Response:
    return web.Response(status=status, headers={"Location": location})


def send_to(elsewhere: HostileServer, status: int, path: str):  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.StreamResponse:
        return redirect_to(elsewhere.url + path, status)

    return handler


def anything_of(server: HostileServer) -> list[str]:
    return [f"{r.method} {r.path}" for r in server.received]


@pytest.mark.parametrize("status", REDIRECTS)
async def test_the_token_request_follows_no_redirect(status: int) -> None:
    async with HostileServer() as elsewhere, HostileServer() as server:
        server.route("POST", TOKEN_PATH, send_to(elsewhere, status, TOKEN_PATH))
        async with client_of(server) as client:
            with pytest.raises(AuthenticationError) as caught:
                await client.status(TASK_ID)
    message = str(caught.value)
    assert f"HTTP {status}" in message and elsewhere.url in message
    assert caught.value.status == status
    assert anything_of(elsewhere) == []  # the client secret never left for the other host
    assert len(server.requests_to(TOKEN_PATH)) == 1  # refused, not retried
    assert server.requests_to(STATUS_PATH) == []


async def test_the_token_request_follows_no_redirect_on_its_own_host_either() -> None:
    async with HostileServer() as server:
        server.route("POST", TOKEN_PATH, send_to(server, 307, "/other/token"))
        async with client_of(server) as client:
            with pytest.raises(AuthenticationError, match="HTTP 307"):
                await client.status(TASK_ID)
    assert [r.path for r in server.received] == [TOKEN_PATH]


@pytest.mark.parametrize("status", REDIRECTS)
async def test_an_api_redirect_to_another_origin_is_refused(status: int, tmp_path: Path) -> None:
    async with HostileServer() as elsewhere, HostileServer() as server:
        server.route("GET", STATUS_PATH, send_to(elsewhere, status, STATUS_PATH))
        server.route("GET", TTS_PATH, send_to(elsewhere, status, TTS_PATH))
        server.route("DELETE", TTS_PATH, send_to(elsewhere, status, TTS_PATH))
        async with client_of(server) as client:
            for call in (
                client.status(TASK_ID),
                client.fetch(TASK_ID),
                client.cancel(TASK_ID),
                client.download(TASK_ID, tmp_path),
            ):
                with pytest.raises(ResponseError) as caught:
                    await call
                assert f"HTTP {status}" in str(caught.value)
                assert elsewhere.url in str(caught.value)
            report = await client.fetch_all([TASK_ID], tmp_path / "batch")
    assert anything_of(elsewhere) == []  # the bearer token never left for the other host
    assert len(server.requests_to(STATUS_PATH)) == 1  # refused once, not retried
    assert len(server.requests_to(TTS_PATH)) == 4
    assert [o.state.value for o in report.failed] == ["aborted"]
    assert elsewhere.url in (report.failed[0].error or "")
    assert list(tmp_path.rglob("*.wav")) == [] and list(tmp_path.rglob("*.part")) == []


async def test_a_same_origin_redirect_is_refused_too(tmp_path: Path) -> None:
    async with HostileServer() as server:
        server.route("GET", TTS_PATH, send_to(server, 302, "/elsewhere"))
        async with client_of(server) as client:
            with pytest.raises(ResponseError, match="follows no redirects"):
                await client.fetch(TASK_ID)
    assert [r.path for r in server.received] == [TOKEN_PATH, TTS_PATH]


async def test_a_download_redirected_from_https_to_http_is_not_saved(tmp_path: Path) -> None:
    async with HostileServer() as plain, TlsHostileServer() as server:

        async def audio(request: web.Request) -> web.StreamResponse:
            return completed(TASK_ID)

        plain.route("GET", TTS_PATH, audio)
        server.route("GET", TTS_PATH, send_to(plain, 307, TTS_PATH))
        async with TTSClient(
            CLIENT_ID,
            CLIENT_SECRET,
            base_url=server.url,
            ssl_context=server.client_context(),
        ) as client:
            with pytest.raises(ResponseError, match="HTTP 307") as caught:
                await client.download(TASK_ID, tmp_path)
            assert plain.url in str(caught.value)
            # The same answer without the redirect is saved: the refusal is the redirect's.
            server.route("GET", TTS_PATH, lambda request: audio(request))
            saved = await client.download(TASK_ID, tmp_path)
    assert anything_of(plain) == []
    assert list(tmp_path.iterdir()) == [saved.path]
