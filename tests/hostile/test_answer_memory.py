"""Memory is bounded by what aiotts decides, not by what the server sends.

Each attack is served by a hostile server in this process to a client in a subprocess,
whose peak RSS must stay under ``PEAK_MIB`` while the task ends as it should.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import orjson
import pytest

from aiotts._decode import MAX_FIELD_BYTES, MAX_RESULTS
from tests.hostile.answers import (
    FETCH_PATH,
    TASK_ID,
    client_command,
    serve_gzip,
    serve_pieces,
)
from tests.hostile.servers import HostileServer

pytestmark = pytest.mark.anyio

PEAK_MIB = 150


async def fetch_in_subprocess(server: HostileServer, out: Path) -> dict[str, object]:
    with anyio.fail_after(60):
        result = await anyio.run_process(client_command(server.url, str(out)), check=False)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    figures: dict[str, object] = orjson.loads(result.stdout)
    peak = int(figures["peak_kib"]) / 1024  # type: ignore[call-overload]
    print(f"\npeak RSS {peak:.1f} MiB: {figures['state']}: {figures['error']}")
    assert peak < PEAK_MIB
    return figures


def head(status: str = "Pending") -> bytes:
    return b'{"id":"%s","taskStatus":"%s","padding":"' % (TASK_ID.encode(), status.encode())


async def test_a_gzip_poll_answer_inflating_to_64_mb_is_refused_within_its_cap(
    tmp_path: Path,
) -> None:
    async with HostileServer() as server:
        server.route("GET", FETCH_PATH, serve_gzip(head(), b" ", 64 * 1024 * 1024, b'"}'))
        figures = await fetch_in_subprocess(server, tmp_path)
    assert figures["state"] == "aborted"
    assert f"more than {MAX_FIELD_BYTES} bytes" in str(figures["error"])
    assert "MAX_FIELD_BYTES" in str(figures["error"])


async def test_a_gzip_token_answer_inflating_to_1_5_gb_is_refused_within_its_cap(
    tmp_path: Path,
) -> None:
    bomb = serve_gzip(b'{"access_token":"', b"A", 1536 * 1024 * 1024, b'"}')
    async with HostileServer() as server:
        server.route("POST", "/connect/token", bomb)
        figures = await fetch_in_subprocess(server, tmp_path)
    # No task can get past a token endpoint that answers nonsense: the batch stops
    assert "token" in str(figures["stopped"])
    assert "longer than 64 KiB" in str(figures["stopped"])
    assert "MemoryError" not in str(figures["stopped"])


def many_keys(count: int, value: bytes) -> Iterator[bytes]:
    yield head() + b'"'
    for index in range(count):
        yield b',"k%d":' % index + value
    yield b"}"


async def test_250_top_level_keys_of_4_mb_each_are_not_kept(tmp_path: Path) -> None:
    value = b'"' + b"x" * (4 * 1024 * 1024) + b'"'
    async with HostileServer() as server:
        server.route("GET", FETCH_PATH, serve_pieces(lambda: many_keys(250, value)))
        figures = await fetch_in_subprocess(server, tmp_path)
    assert figures["state"] == "aborted"
    assert "MAX_FIELD_BYTES" in str(figures["error"])


async def test_keys_full_of_empty_arrays_are_not_kept(tmp_path: Path) -> None:
    value = b"[" + b"[]," * (1024 * 1024) + b"[]]"
    async with HostileServer() as server:
        server.route("GET", FETCH_PATH, serve_pieces(lambda: many_keys(40, value)))
        figures = await fetch_in_subprocess(server, tmp_path)
    assert figures["state"] == "aborted"
    assert "MAX_FIELD_BYTES" in str(figures["error"])


async def test_ten_million_empty_results_are_not_kept(tmp_path: Path) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"id":"%s","taskStatus":"Completed","results":[{}' % TASK_ID.encode()
        block = b",{}" * 100_000
        for _ in range(100):
            yield block
        yield b"]}"

    async with HostileServer() as server:
        server.route("GET", FETCH_PATH, serve_pieces(body))
        figures = await fetch_in_subprocess(server, tmp_path)
    assert figures["state"] == "aborted"
    assert f"more than {MAX_RESULTS} elements (MAX_RESULTS)" in str(figures["error"])
    assert not list(tmp_path.iterdir())
