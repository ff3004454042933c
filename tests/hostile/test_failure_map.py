"""Every failure ends as an aiotts error: a token that cannot be sent, a socket closed in
the middle of the headers, a status line that is not HTTP. Nothing foreign escapes."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from aiotts import (
    AiottsError,
    AuthenticationError,
    ConnectError,
    RequestTimeout,
    ResponseError,
    ServerError,
    TransientError,
    TTSClient,
    UsageError,
)
from aiotts._retry import Retryable
from aiotts._session import foreign_error
from tests.hostile.servers import HostileServer
from tests.hostile.transport import (
    FEW_RETRIES,
    STATUS_PATH,
    TASK_ID,
    TOKEN_PATH,
    RawServer,
    answer_with,
    client_of,
    envelope,
)

pytestmark = pytest.mark.anyio

BAD_TOKENS = [
    "abc\r\nX-Injected: 1",
    "abc def",
    "tok\x00en",
    "tökén",
    "",
    "x" * 10_000,
    12345,
    None,
]


@pytest.mark.parametrize("token", BAD_TOKENS, ids=repr)
async def test_a_token_that_cannot_be_sent_is_an_authentication_error(
    token: object, tmp_path: Path
) -> None:
    async def issue(request: web.Request) -> web.StreamResponse:
        return web.json_response({"access_token": token, "expires_in": 3600})

    async def pending(request: web.Request) -> web.StreamResponse:
        return envelope(request.query["id"], "Pending")

    async with HostileServer() as server:
        server.route("POST", TOKEN_PATH, issue)
        server.route("GET", STATUS_PATH, pending)
        async with client_of(server) as client:
            with pytest.raises(AuthenticationError, match="token endpoint answered") as caught:
                await client.status(TASK_ID)
            with pytest.raises(AuthenticationError):  # the batch stops with the true cause
                await client.fetch_all([TASK_ID, "another-id"], tmp_path)
    assert server.requests_to(STATUS_PATH) == []  # nothing was sent with it
    assert len(server.requests_to(TOKEN_PATH)) == 1  # remembered, not asked again at once
    if isinstance(token, str) and token:
        assert token not in str(caught.value)


async def _cut_mid_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: applic")
    await writer.drain()


RAW_ANSWERS = {
    "closed mid-headers": _cut_mid_headers,
    "closed before any byte": answer_with(b""),
    "malformed status line": answer_with(b"HTTP/1.1 TWO-HUNDRED OK\r\n\r\n"),
    "not HTTP at all": answer_with(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"),
    "header without a colon": answer_with(b"HTTP/1.1 200 OK\r\nbroken header\r\n\r\n"),
    "bad content length": answer_with(b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n"),
}


@pytest.mark.parametrize("answer", RAW_ANSWERS.values(), ids=RAW_ANSWERS.keys())
async def test_a_broken_http_answer_is_an_aiotts_error(answer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    async with (
        RawServer(answer) as server,
        client_of(server, trial=True, retry=FEW_RETRIES) as client,  # type: ignore[arg-type]
    ):
        for call in (
            client.status(TASK_ID),
            client.fetch(TASK_ID),
            client.cancel(TASK_ID),
            client.download(TASK_ID, tmp_path),
        ):
            with pytest.raises(TransientError) as caught:
                await call
            assert not isinstance(caught.value.__cause__, AiottsError)
            assert str(caught.value).split(":")[0] in ("status", "fetch", "cancel", "download")
        report = await client.fetch_all([TASK_ID], tmp_path)
        with pytest.raises(AiottsError):
            await client.submit("hello")
    assert [o.state.value for o in report.failed] == ["aborted"]
    assert server.connections >= 2 * 4  # each call was retried once, as transient
    assert list(tmp_path.iterdir()) == []


async def test_a_closed_port_is_a_connect_error_that_was_never_sent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with TTSClient(
        trial=True, base_url=f"http://127.0.0.1:{port}", retry=FEW_RETRIES
    ) as client:
        with pytest.raises(ConnectError, match="cannot connect") as caught:
            await client.status(TASK_ID)
        with pytest.raises(ConnectError):  # provably not sent, so even a submit is retried
            await client.submit("hello")
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectorError)


@pytest.mark.parametrize(
    ("exc", "expected", "retry", "sent"),
    [
        (aiohttp.ConnectionTimeoutError(), RequestTimeout, True, False),
        (aiohttp.SocketTimeoutError(), RequestTimeout, True, True),
        (TimeoutError(), RequestTimeout, True, True),
        (aiohttp.ServerDisconnectedError(), ServerError, True, True),
        (aiohttp.ClientPayloadError("cut"), ServerError, True, True),
        (ConnectionResetError(104, "reset"), ServerError, True, True),
        (aiohttp.InvalidURL("nope"), UsageError, False, False),
        (ValueError("Newline or carriage return character detected"), ResponseError, False, True),
        (TypeError("bad header"), ResponseError, False, True),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else None,
)
def test_the_table_maps_each_foreign_failure(
    exc: BaseException, expected: type[AiottsError], retry: bool, sent: bool
) -> None:
    mapped = foreign_error("poll", exc)
    if retry:
        assert isinstance(mapped, Retryable)
        assert mapped.sent is sent
        error = mapped.error
    else:
        assert isinstance(mapped, AiottsError)
        error = mapped
    assert type(error) is expected
    assert str(error).startswith("poll: ")
    assert type(exc).__name__ in str(error)
