"""File descriptors: one answer with many results holds one open file at a time, so it
cannot starve healthy tasks; running out of descriptors is said plainly and retried."""

from __future__ import annotations

import errno
import sys
from pathlib import Path

import anyio
import orjson
import pytest
from aiohttp import web

from aiotts._files import output_error
from tests.hostile.answers import FETCH_PATH, b64, envelope, wav
from tests.hostile.servers import CLIENT_ID, CLIENT_SECRET, HostileServer

pytestmark = pytest.mark.anyio

GREEDY = "TTSgreedy-0000"
HEALTHY = [f"TTShealthy-{n:04d}" for n in range(40)]
RESULTS = 900  # below MAX_RESULTS, far above the descriptors the client may open
NOFILE = 160

CLIENT = r"""
import resource, sys, anyio, orjson
from aiotts import Limits, RetryPolicy, TTSClient

resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[5]), int(sys.argv[5])))

async def main(url, out, client_id, client_secret, _, *ids):
    retry = RetryPolicy(max_attempts=2, first_delay=0.01, max_delay=0.01)
    async with TTSClient(
        client_id, client_secret, base_url=url, retry=retry, limits=Limits(polls=64)
    ) as client:
        report = await client.fetch_all(list(ids), out, task_timeout=60)
    print(orjson.dumps([
        {"id": o.task_id, "state": o.state.value, "error": o.error, "files": len(o.files)}
        for o in report.done + report.failed
    ]).decode())

anyio.run(main, *sys.argv[1:])
"""


async def test_one_answer_with_900_results_starves_no_healthy_task(tmp_path: Path) -> None:
    greedy = envelope(
        [{"type": "WavFile", "data": b64(wav(60, seed=n))} for n in range(RESULTS)],
        task_id=GREEDY,
    )

    async def answer(request: web.Request) -> web.StreamResponse:
        task_id = request.query["id"]
        if task_id == GREEDY:
            body = greedy
        else:
            body = envelope([{"type": "WavFile", "data": b64(wav(100))}], task_id=task_id)
        return web.Response(body=body, content_type="application/json")

    async with HostileServer() as server:
        server.route("GET", FETCH_PATH, answer)
        command = [sys.executable, "-c", CLIENT, server.url, str(tmp_path)]
        command += [CLIENT_ID, CLIENT_SECRET, str(NOFILE), GREEDY, *HEALTHY]
        with anyio.fail_after(60):
            result = await anyio.run_process(command, check=False)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    outcomes = {o["id"]: o for o in orjson.loads(result.stdout)}
    assert {o["state"] for o in outcomes.values()} == {"done"}, [
        o for o in outcomes.values() if o["state"] != "done"
    ]
    assert outcomes[GREEDY]["files"] == RESULTS
    assert (tmp_path / f"{GREEDY}.{RESULTS - 1}.wav").read_bytes() == wav(60, seed=RESULTS - 1)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE])
def test_running_out_of_descriptors_does_not_blame_the_output_folder(code: int) -> None:
    error = output_error(OSError(code, "Too many open files"), Path("out/x.wav"), "TTSx")
    assert "check the output folder" not in str(error)
    assert "ulimit -n" in str(error)
