"""Shared pieces of the transport tests: a client of a hostile server, a TLS variant of
that server, result envelopes, and a raw TCP server that breaks HTTP itself."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import trustme
from aiohttp import web

from aiotts import RetryPolicy, TTSClient
from aiotts.emulator._audio import synthesize
from tests.helpers import FAST_POLL, FAST_RETRY, tls_server_context
from tests.hostile.servers import CLIENT_ID, CLIENT_SECRET, HostileServer, issue_token

TTS_PATH = "/v5.0/ocr/ConvertTextToSpeech"
STATUS_PATH = "/v5.0/ocr/Utilities/GetTaskStatus"
TOKEN_PATH = "/connect/token"
TASK_ID = "7d3c6c1e-0000-4000-8000-00000000abcd"
FEW_RETRIES = RetryPolicy(first_delay=0.01, max_delay=0.02, max_attempts=2, max_time=5)


def client_of(server: HostileServer, **options: Any) -> TTSClient:
    """A client of ``server`` with the shared credentials and fast retries and polls."""
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("poll", FAST_POLL)
    if options.get("trial"):
        return TTSClient(base_url=server.url, **options)
    return TTSClient(CLIENT_ID, CLIENT_SECRET, base_url=server.url, **options)


def envelope(task_id: str, status: str, **fields: Any) -> web.Response:
    body: dict[str, Any] = {
        "id": task_id,
        "responseStatusCode": "Ok",
        "taskStatus": status,
        "results": None,
        "error": None,
    }
    body.update(fields)
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def completed(task_id: str, **fields: Any) -> web.Response:
    audio = base64.b64encode(synthesize("hello")).decode()
    return envelope(task_id, "Completed", results=[{"type": "WavFile", "data": audio}], **fields)


@dataclass
class TlsHostileServer(HostileServer):
    """``HostileServer`` over https, with a certificate for 127.0.0.1 signed by ``ca``."""

    ca: trustme.CA = field(default_factory=trustme.CA)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    async def __aenter__(self) -> TlsHostileServer:
        if ("POST", TOKEN_PATH) not in self.routes:
            self.route("POST", TOKEN_PATH, issue_token)
        self._runner = web.ServerRunner(web.Server(self._dispatch))  # type: ignore[assignment]
        assert self._runner is not None
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=tls_server_context(self.ca))
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self


RawAnswer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A TCP server on 127.0.0.1 that answers every connection with ``answer``: for
    answers no HTTP server library would send. ``connections`` counts what it served."""

    def __init__(self, answer: RawAnswer) -> None:
        self._answer = answer
        self._server: asyncio.Server | None = None
        self.connections = 0
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await reader.readuntil(b"\r\n\r\n")  # the request head; no body is expected
            await self._answer(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


def answer_with(raw: bytes) -> RawAnswer:
    """A raw answer: ``raw`` as the whole answer, then the connection closes."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        await writer.drain()

    return answer
