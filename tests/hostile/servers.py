"""Misbehaving servers for the hostile-server tests: real aiohttp servers on 127.0.0.1.

``HostileServer`` serves whatever its handlers answer and records every request it
received (method, path, headers, body), so a test can assert both what the client did and
what it sent. It speaks just enough of the API (a token endpoint) for the client to get
going; each test replaces the routes it needs to break.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType

from aiohttp import web

from tests.helpers import cli_env

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CLIENT_ID = "hostile-client-id"
CLIENT_SECRET = "hostile-SECRET-5f2b7c9e"  # a test asserts this never leaves for the wrong place
TOKEN = "hostile-TOKEN-a81c44d0"


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


async def issue_token(request: web.Request) -> web.StreamResponse:
    """A well-behaved token endpoint."""
    return web.json_response({"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"})


@dataclass
class HostileServer:
    """A server on 127.0.0.1 with a case-insensitive table of ``(method, path) -> handler``.

    Unknown routes answer 404. ``received`` lists every request in order.
    """

    routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    port: int = 0

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method.upper(), path.lower())] = handler

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli_env(self, **extra: str) -> dict[str, str]:
        """The environment of an ``aiotts`` subprocess pointed at this server with the test
        credentials, then ``extra``."""
        return cli_env(
            None,
            ASPOSE_CLIENT_ID=CLIENT_ID,
            ASPOSE_CLIENT_SECRET=CLIENT_SECRET,
            AIOTTS_BASE_URL=self.url,
            **extra,
        )

    def requests_to(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path.lower() == path.lower()]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(
            Received(
                request.method, request.path, request.query_string, dict(request.headers), body
            )
        )
        handler = self.routes.get((request.method, request.path.lower()))
        if handler is None:
            return web.Response(status=404)
        return await handler(request)

    async def __aenter__(self) -> HostileServer:
        if ("POST", "/connect/token") not in self.routes:
            self.route("POST", "/connect/token", issue_token)
        server = web.Server(self._dispatch)
        self._runner = web.ServerRunner(server)  # type: ignore[assignment]
        assert self._runner is not None
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
