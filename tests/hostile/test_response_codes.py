"""What the API says is kept: responseStatusCode, NotExist without an id, and a trial
status that never holds the audio."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import orjson
import pytest

from aiotts import OutcomeState, RetryPolicy, TaskStatus, TTSClient
from tests.hostile.answers import (
    FETCH_PATH,
    TASK_ID,
    TRIAL_PATH,
    envelope,
    serve,
    serve_pieces,
)
from tests.hostile.servers import CLIENT_ID, CLIENT_SECRET, HostileServer

pytestmark = pytest.mark.anyio

RETRY = RetryPolicy(max_attempts=3, first_delay=0.01, max_delay=0.01)


@pytest.mark.parametrize("code", ["ResultDataLost", "NoAnyResultData"])
@pytest.mark.parametrize("results", [None, []])
async def test_completed_without_a_result_the_server_says_is_gone_ends_failed_at_once(
    code: str, results: object, tmp_path: Path
) -> None:
    body = envelope(results, code=code, error={"messages": ["storage hiccup"], "warnings": []})
    async with HostileServer() as server:
        server.route("GET", FETCH_PATH, serve(body))
        async with TTSClient(CLIENT_ID, CLIENT_SECRET, base_url=server.url, retry=RETRY) as client:
            report = await client.fetch_all([TASK_ID], tmp_path)
    (outcome,) = report.failed
    assert outcome.state is OutcomeState.FAILED
    assert code in (outcome.error or "")
    assert "storage hiccup" in (outcome.error or "")
    assert len(server.requests_to(FETCH_PATH)) == 1  # a definite answer: not retried
    assert not list(tmp_path.iterdir())


async def test_completed_without_results_and_no_such_code_is_a_bad_body(tmp_path: Path) -> None:
    async with HostileServer() as server:
        server.route("GET", FETCH_PATH, serve(envelope([], code="Ok")))
        async with TTSClient(CLIENT_ID, CLIENT_SECRET, base_url=server.url, retry=RETRY) as client:
            report = await client.fetch_all([TASK_ID], tmp_path)
    (outcome,) = report.failed
    assert outcome.state is OutcomeState.ABORTED
    assert len(server.requests_to(FETCH_PATH)) == RETRY.max_attempts


@pytest.mark.parametrize("answered_id", ["", None])
async def test_not_exist_without_an_id_ends_missing(answered_id: object, tmp_path: Path) -> None:
    body = envelope(None, task_status="NotExist", code="TaskNotFound", task_id=answered_id)
    async with HostileServer() as server:
        server.route("GET", FETCH_PATH, serve(body))
        async with TTSClient(CLIENT_ID, CLIENT_SECRET, base_url=server.url, retry=RETRY) as client:
            report = await client.fetch_all([TASK_ID], tmp_path)
    (outcome,) = report.failed
    assert outcome.state is OutcomeState.MISSING


async def test_status_names_a_lost_result() -> None:
    async with HostileServer() as server:
        server.route("GET", TRIAL_PATH, serve(envelope(None, code="ResultDataLost")))
        async with TTSClient(base_url=server.url, trial=True, retry=RETRY) as client:
            result = await client.status(TASK_ID)
    assert result.status is TaskStatus.ERROR
    assert "ResultDataLost" in result.messages[0]


AUDIO_MB = 160

STATUS_CLIENT = r"""
import sys, anyio, orjson
from aiotts import TTSClient

def peak_kib():
    # VmHWM: the peak RSS of this program; ru_maxrss would keep the parent's across exec.
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1])

async def main(url, task_id):
    async with TTSClient(base_url=url, trial=True) as client:
        result = await client.status(task_id)
    print(orjson.dumps({
        "status": result.status.value,
        "results": None if result.results is None else len(result.results),
        "peak_kib": peak_kib(),
    }).decode())

anyio.run(main, *sys.argv[1:])
"""


async def test_a_trial_status_never_holds_the_audio() -> None:
    # The trial mode has no status endpoint: status() asks the trial fetch, whose answer
    # carries the audio. It is scanned and dropped, never held.
    def body() -> Iterator[bytes]:
        yield b'{"id":"%s","taskStatus":"Completed","results":[{"data":"' % TASK_ID.encode()
        block = b"A" * (1024 * 1024)
        for _ in range(AUDIO_MB):
            yield block
        yield b'","type":"WavFile"}],"error":null}'

    async with HostileServer() as server:
        server.route("GET", TRIAL_PATH, serve_pieces(body))
        command = [sys.executable, "-c", STATUS_CLIENT, server.url, TASK_ID]
        with anyio.fail_after(60):
            result = await anyio.run_process(command, check=False)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    figures = orjson.loads(result.stdout)
    assert figures["peak_kib"] / 1024 < 150
    assert figures["status"] == "Completed"
    assert figures["results"] is None
