"""Writing bodies: in chunks, slowly (trickle), cut short (dropped connection), or truncated.

The bytes are written from the caller's buffers through ``memoryview`` slices, so a 30 MB
body is never copied or re-serialised here; only the transport buffers what the socket has
not taken yet, and ``write`` waits for it to drain.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from dataclasses import dataclass

from aiohttp import web

from aiotts.emulator._audio import Runs

__all__ = [
    "HTML",
    "JSON",
    "PROBLEM_JSON",
    "TEXT",
    "Delivery",
    "retry_after_value",
    "send_runs",
]

JSON = "application/json; charset=utf-8"
PROBLEM_JSON = "application/problem+json; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"


def retry_after_value(seconds: float, *, http_date: bool) -> str:
    """A ``Retry-After`` value: whole seconds (rounded up), or an HTTP date that far ahead."""
    if http_date:
        return email.utils.formatdate(time.time() + seconds, usegmt=True)
    return str(max(0, math.ceil(seconds)))


@dataclass(frozen=True, slots=True)
class Delivery:
    """How a body goes out. The defaults send it whole, in ``chunk_bytes`` writes.

    ``truncate``: declare and send only the first half (complete at the HTTP level, broken
    as JSON). ``cut_at``: declare the full length, send that fraction, then drop the
    connection. ``trickle``: ``(bytes per write, seconds between writes)``.
    """

    chunk_bytes: int = 256 * 1024
    truncate: bool = False
    cut_at: float | None = None
    trickle: tuple[int, float] | None = None


async def send_runs(
    request: web.BaseRequest,
    runs: Runs,
    *,
    status: int = 200,
    content_type: str,
    delivery: Delivery,
) -> tuple[web.StreamResponse, bool]:
    """Stream the byte string ``runs`` stands for (never joined) as the response; return it
    and whether the whole declared body reached the transport and the response finished.

    A client that goes away mid-body ends the write quietly (``False``), as does a cut.
    """
    total = sum(len(piece) * times for piece, times in runs)
    length = max(1, total // 2) if delivery.truncate and total > 1 else total
    send = length if delivery.cut_at is None else int(length * delivery.cut_at)
    step = delivery.chunk_bytes
    pause = 0.0
    if delivery.trickle is not None:
        step, pause = delivery.trickle
    resp = web.StreamResponse(status=status, headers={"Content-Type": content_type})
    resp.content_length = length
    try:
        await resp.prepare(request)
        sent = 0
        for piece, times in runs:
            view = memoryview(piece)
            for _ in range(times):
                pos = 0
                while pos < len(view) and sent < send:
                    n = min(step, len(view) - pos, send - sent)
                    await resp.write(view[pos : pos + n])
                    pos += n
                    sent += n
                    if pause and sent < send:
                        await asyncio.sleep(pause)
                if sent >= send:
                    break
            if sent >= send:
                break
        if delivery.cut_at is not None:
            # Everything written is already in the transport; closing it flushes that much
            # and then ends the connection, so the client sees fewer bytes than declared.
            request.protocol.force_close()
            return resp, False
        await resp.write_eof()
    except ConnectionError:
        return resp, False
    return resp, True
