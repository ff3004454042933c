"""A token endpoint that keeps failing (5xx, a hang, an answer without a token) is about the
service, not about one task: the first token request that runs out of retries stops the
batch or the submit run with ``TokenUnavailableError``, every id touched recorded with it,
instead of each task asking for a token in turn and failing on its own."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import anyio
import pytest
from aiohttp import web

from aiotts import OutcomeState, Timeouts, TokenUnavailableError, TransientError, read_manifest
from aiotts._store import OutcomeStore
from aiotts.cli import ExitCode
from tests.hostile.servers import HostileServer
from tests.hostile.transport import FEW_RETRIES, TOKEN_PATH, TTS_PATH, client_of

pytestmark = pytest.mark.anyio

IDS = [f"7d3c6c1e-0000-4000-8000-{n:012d}" for n in range(30)]


async def unavailable(request: web.Request) -> web.StreamResponse:
    return web.Response(status=503, reason="Service Unavailable")


async def not_a_token(request: web.Request) -> web.StreamResponse:
    return web.json_response({"error": "temporarily_unavailable"})


async def hangs(request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(30)
    return web.Response(status=500)


FAILURES = [
    pytest.param(unavailable, "HTTP 503", id="503"),
    pytest.param(not_a_token, "no access_token", id="no-token"),
    pytest.param(hangs, "read timeout", id="hang"),
]
QUICK = Timeouts(connect=1.0, read=0.2)


@pytest.mark.parametrize(("handler", "said"), FAILURES)
async def test_a_failing_token_endpoint_stops_the_batch(
    tmp_path: Path, handler: object, said: str
) -> None:
    async with HostileServer() as server:
        server.route("POST", TOKEN_PATH, handler)  # type: ignore[arg-type]
        manifest = tmp_path / "m.jsonl"
        async with client_of(server, retry=FEW_RETRIES, timeouts=QUICK) as client:
            with pytest.raises(TokenUnavailableError, match=said) as caught:
                await client.fetch_all(IDS, tmp_path / "out", manifest=manifest)
        # One token request's retries, not one run of them per id.
        assert len(server.requests_to(TOKEN_PATH)) <= 2 * FEW_RETRIES.max_attempts
        assert server.requests_to(TTS_PATH) == []  # no poll went out without a token
    assert isinstance(caught.value, TransientError)
    assert "no token: the token endpoint kept failing" in str(caught.value)
    entries = read_manifest(manifest)
    assert entries  # every id taken in so far is recorded, none dropped
    for entry in entries.values():
        assert entry.state is OutcomeState.ABORTED
        assert entry.error is not None and entry.error.startswith("the batch stopped: no token")


async def test_a_failing_token_endpoint_stops_a_submit_run_and_sends_nothing(
    tmp_path: Path,
) -> None:
    ledger = tmp_path / "ledger.db"
    texts = [(f"k{n}", f"Text {n}.") for n in range(20)]
    async with HostileServer() as server:
        server.route("POST", TOKEN_PATH, unavailable)
        async with client_of(server, retry=FEW_RETRIES) as client:
            with pytest.raises(TokenUnavailableError):
                async for _ in client.submit_many(texts, ledger=ledger, concurrency=4):
                    pass
        assert len(server.requests_to(TOKEN_PATH)) <= 2 * FEW_RETRIES.max_attempts
        assert server.requests_to(TTS_PATH) == []
    with OutcomeStore(ledger) as store:
        entries = list(store.ledger())
    assert entries  # the texts taken in are recorded as provably not sent
    assert {entry.state for entry in entries} == {"unsent"}


async def test_fetch_exits_4_naming_the_token_endpoint(tmp_path: Path) -> None:
    async with HostileServer() as server:
        server.route("POST", TOKEN_PATH, unavailable)
        env = server.cli_env()
        args = [sys.executable, "-m", "aiotts", "fetch", *IDS[:5], "--out", str(tmp_path)]
        done = await anyio.run_process([*args, "--retries", "1"], env=env, check=False)
    stderr = done.stderr.decode()
    assert done.returncode == ExitCode.SERVICE, stderr
    assert "Traceback" not in stderr
    said = [line for line in stderr.splitlines() if line.startswith("aiotts:")]
    assert len(said) == 1 and "no token: the token endpoint kept failing" in said[0], stderr
