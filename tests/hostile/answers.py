"""Hostile answers to result requests: bodies served whole or cut into pieces, and
compressed bodies that inflate far beyond their size on the wire.

The client side of the memory tests runs in a subprocess (``run_client``) so that its peak
RSS is its own; the server stays in the test process.
"""

from __future__ import annotations

import base64
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
from aiohttp import web

from aiotts.emulator._audio import wav_header
from tests.hostile.servers import CLIENT_ID, CLIENT_SECRET, Handler

FETCH_PATH = "/v5.0/ocr/ConvertTextToSpeech"
TRIAL_PATH = "/v5.0/ocr/ConvertTextToSpeechTrial"
STATUS_PATH = "/v5.0/ocr/Utilities/GetTaskStatus"
TASK_ID = "TTSb4705-728d-4258-8cca-b49fb7921aa1"


def wav(data_bytes: int, seed: int = 0) -> bytes:
    """A whole WAV file of ``data_bytes`` bytes of (non-silent) PCM data."""
    pattern = bytes((seed + i * 7) % 256 for i in range(251))
    data = (pattern * (data_bytes // len(pattern) + 1))[:data_bytes]
    return wav_header(data_bytes) + data


def b64(audio: bytes) -> str:
    return base64.b64encode(audio).decode()


def envelope(
    results: Any = None,
    *,
    task_status: str = "Completed",
    code: str = "Ok",
    task_id: Any = TASK_ID,
    error: Any = None,
) -> bytes:
    return orjson.dumps(
        {
            "id": task_id,
            "responseStatusCode": code,
            "taskStatus": task_status,
            "results": results,
            "error": error,
        }
    )


def serve(body: bytes, chunk: int | None = None, **headers: str) -> Handler:
    """A handler that answers ``body``: whole with its Content-Length (``chunk=None``), or
    in chunked encoding, ``chunk`` bytes per write."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if chunk is None:
            return web.Response(body=body, content_type="application/json", headers=headers)
        response = web.StreamResponse(headers={"Content-Type": "application/json", **headers})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(body), chunk):
            await response.write(body[start : start + chunk])
        await response.write_eof()
        return response

    return handler


def gzip_pieces(prefix: bytes, filler: bytes, inflated: int, suffix: bytes) -> Iterator[bytes]:
    """A gzip stream of ``prefix``, ``filler`` repeated to ``inflated`` bytes, ``suffix``:
    yielded in small pieces, computed once per distinct block (so a gigabyte costs little
    to serve). After a full flush the compressor forgets its history, so the same block
    compresses to the same bytes every time."""
    block = (filler * (1024 * 1024 // len(filler) + 1))[: 1024 * 1024]
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    yield compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    for _ in range(inflated // len(block)):
        yield repeated
    yield compressor.compress(suffix) + compressor.flush(zlib.Z_FINISH)


def serve_gzip(prefix: bytes, filler: bytes, inflated: int, suffix: bytes = b"") -> Handler:
    """A handler whose gzip body inflates to about ``inflated`` bytes, sent in pieces; it
    stops quietly when the client hangs up."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for piece in gzip_pieces(prefix, filler, inflated, suffix):
                await response.write(piece)
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client stopped reading: that is the point
        return response

    return handler


def serve_pieces(pieces: Callable[[], Iterable[bytes]]) -> Handler:
    """A handler streaming an uncompressed body made of ``pieces()`` (chunked encoding),
    anew for every request."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for piece in pieces():
                await response.write(piece)
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass
        return response

    return handler


CLIENT = r"""
import sys, anyio, orjson

def peak_kib():
    # VmHWM: the peak RSS of this program; ru_maxrss would keep the parent's across exec.
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1])

from aiotts import AiottsError, RetryPolicy, TTSClient

async def main(url, out, task_id, client_id, client_secret):
    retry = RetryPolicy(max_attempts=2, first_delay=0.01, max_delay=0.01)
    outcomes, stopped = [], None
    async with TTSClient(client_id, client_secret, base_url=url, retry=retry) as client:
        try:
            async for outcome in client.fetch_many([task_id], out, task_timeout=60):
                outcomes.append(outcome)
        except AiottsError as exc:  # an error no task can get past stops the batch
            stopped = str(exc)
    outcome = outcomes[0] if outcomes else None
    print(orjson.dumps({
        "state": outcome.state.value if outcome else None,
        "error": outcome.error if outcome else None,
        "stopped": stopped,
        "files": [str(f) for f in outcome.files] if outcome else [],
        "peak_kib": peak_kib(),
    }).decode())

anyio.run(main, *sys.argv[1:])
"""


def client_command(url: str, out: str, task_id: str = TASK_ID) -> list[str]:
    """The command line of a subprocess that fetches ``task_id`` into ``out`` and prints its
    outcome and its peak RSS as JSON."""
    return [sys.executable, "-c", CLIENT, url, out, task_id, CLIENT_ID, CLIENT_SECRET]
