"""Reading response bodies within limits that aiotts decides, whatever the server sends.

A server's ``Content-Length`` says nothing about the size of a compressed body once it is
inflated, so every limit here counts INFLATED bytes. aiohttp inflates ``gzip`` and
``deflate`` bodies in bounded steps (each step yields at most one read buffer and pauses
the connection until it is consumed), so reading in ``READ_CHUNK`` pieces and stopping at
a cap bounds both the memory and the CPU spent inflating by that cap.

Every answer that is not audio has a hard cap (``TOKEN_ANSWER_LIMIT``,
``ID_ANSWER_LIMIT``, ``ERROR_BODY_LIMIT``, ``SMALL_ANSWER_LIMIT``); a result envelope is
never read whole past ``SMALL_BODY`` but streamed through the scanner, which caps the
non-audio part itself (``aiotts._decode.MAX_FIELD_BYTES``, ``MAX_RESULTS``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

import aiohttp

from aiotts._errors import ResponseError

__all__ = [
    "ENCODINGS",
    "ERROR_BODY_LIMIT",
    "ID_ANSWER_LIMIT",
    "SMALL_ANSWER_LIMIT",
    "TOKEN_ANSWER_LIMIT",
    "body_chunks",
    "check_encoding",
    "drain",
    "read_prefix",
]

READ_CHUNK: Final = 256 * 1024
"""Bytes per read of a response body (inflated), and aiohttp's read buffer: measured here,
256 KiB halves the CPU per MB of 64 KiB, and larger buffers gain nothing."""

TOKEN_ANSWER_LIMIT: Final = 64 * 1024
"""The largest token answer read; a real one is under 2 KiB."""

ID_ANSWER_LIMIT: Final = 200
"""The largest submit answer (a bare task id) read."""

ERROR_BODY_LIMIT: Final = 64 * 1024
"""How much of an error body (4xx) is read for its messages; the rest is left unread."""

SMALL_ANSWER_LIMIT: Final = 64 * 1024
"""The largest answer read whole for a cancel; anything longer is left unread."""


ENCODINGS: Final = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})
"""The ``Content-Encoding`` values aiotts reads (aiohttp inflates them in bounded steps)."""


def check_encoding(response: aiohttp.ClientResponse, what: str) -> None:
    """Refuse, by name, a body compressed in a way aiotts does not read."""
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ENCODINGS:
        shown = encoding[:40].encode("ascii", "backslashreplace").decode()
        raise ResponseError(
            f"{what}: the server compressed its answer as {shown!r}, which aiotts does not "
            "read (it asks for gzip or deflate)"
        )


async def body_chunks(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The body, inflated, in pieces of at most ``READ_CHUNK`` bytes."""
    check_encoding(response, "result")
    content = response.content
    while True:
        chunk = await content.read(READ_CHUNK)
        if not chunk:
            return
        yield chunk


async def read_prefix(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` inflated bytes of the body, and whether the body went on past them.

    Never reads more than ``limit + 1`` bytes, so memory and inflation are bounded by it.
    """
    check_encoding(response, "answer")
    parts: list[bytes] = []
    size = 0
    content = response.content
    while size <= limit:
        chunk = await content.read(min(READ_CHUNK, limit + 1 - size))
        if not chunk:
            return b"".join(parts), False
        parts.append(chunk)
        size += len(chunk)
    body = b"".join(parts)
    return body[:limit], True


async def drain(response: aiohttp.ClientResponse, limit: int = SMALL_ANSWER_LIMIT) -> None:
    """Read and drop an answer whose content does not matter, at most ``limit`` bytes; a
    longer one is left unread (the connection is then closed rather than reused)."""
    _, more = await read_prefix(response, limit)
    if more:
        response.close()
