"""A small HTTP proxy on 127.0.0.1 for the proxy tests, written on asyncio streams.

It speaks both forms a client uses: an absolute-form request (``GET http://host/path``),
which it forwards one per connection (``Connection: close`` both ways), and ``CONNECT
host:port``, which it answers 200 and then pipes bytes both ways (the TLS inside is the
client's and the server's). It records every request head it received, and can refuse:
with a status (407, 502...) for everything, or with 407 when the credentials it wants
are missing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import urllib.parse
from dataclasses import dataclass, field
from types import TracebackType

PHRASES = {407: "Proxy Authentication Required", 502: "Bad Gateway", 503: "Service Unavailable"}


@dataclass(frozen=True, slots=True)
class Seen:
    """One request head the proxy received."""

    method: str
    target: str
    headers: dict[str, str]  # names in lower case


@dataclass
class LocalProxy:
    refuse: int | None = None
    """Answer every request with this status instead of forwarding it."""
    credentials: tuple[str, str] | None = None
    """Wanted in ``Proxy-Authorization``; without them, 407."""
    seen: list[Seen] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def targets(self) -> list[str]:
        return [f"{s.method} {s.target}" for s in self.seen]

    async def __aenter__(self) -> LocalProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._one(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        first, *lines = head.decode("latin-1").split("\r\n")
        method, target, _ = first.split(" ")
        headers = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        self.seen.append(Seen(method, target, headers))
        if self.refuse is not None:
            await self._answer(writer, self.refuse)
            return
        if self.credentials is not None:
            wanted = "Basic " + base64.b64encode(":".join(self.credentials).encode()).decode()
            if headers.get("proxy-authorization") != wanted:
                await self._answer(writer, 407, echo=headers.get("proxy-authorization", ""))
                return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            return
        await self._forward(method, target, headers, reader, writer)

    async def _forward(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        url = urllib.parse.urlsplit(target)
        assert url.scheme == "http" and url.hostname, f"not an absolute-form target: {target}"
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        path = url.path + (f"?{url.query}" if url.query else "")
        kept = [
            f"{name}: {value}"
            for name, value in headers.items()
            if not name.startswith("proxy-") and name != "connection"
        ]
        request = "\r\n".join([f"{method} {path} HTTP/1.1", *kept, "Connection: close", "", ""])
        up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port)
        try:
            up_writer.write(request.encode("latin-1") + body)
            await up_writer.drain()
            answer = await up_reader.read()  # until the server closes: one request only
        finally:
            up_writer.close()
        answer_head, _, answer_body = answer.partition(b"\r\n\r\n")
        kept_head = [
            line
            for line in answer_head.split(b"\r\n")
            if not line.lower().startswith(b"connection:")
        ]
        writer.write(b"\r\n".join([*kept_head, b"Connection: close", b"", b""]) + answer_body)
        await writer.drain()

    async def _answer(self, writer: asyncio.StreamWriter, status: int, *, echo: str = "") -> None:
        # A careless proxy echoes what it was sent: the client must scrub it.
        body = f"refused; you sent {echo!r}".encode()
        head = (
            f"HTTP/1.1 {status} {PHRASES.get(status, 'Refused')}\r\n"
            f'Proxy-Authenticate: Basic realm="test"\r\n'
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.close()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
