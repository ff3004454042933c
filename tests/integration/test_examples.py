"""Every example runs as a user would run it, against the emulator, with no account."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anyio
import pytest

from aiotts.emulator import Emulator, EmulatorConfig, ManualClock

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example_env(scratch: Path) -> dict[str, str]:
    """The environment without credentials or aiotts settings; the temporary folders an
    example makes for itself go under ``scratch``, so the test leaves none behind."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASPOSE_", "AIOTTS_"))}
    return {**env, "TMPDIR": str(scratch)}


async def run_example(name: str, *args: str, cwd: Path, scratch: Path | None = None) -> str:
    env = example_env(scratch or cwd)
    result = await anyio.run_process(
        [sys.executable, str(EXAMPLES / name), *args], cwd=cwd, env=env, check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


async def test_bulk_fetch_resumes_without_asking_again(tmp_path: Path) -> None:
    output = await run_example("bulk_fetch.py", "ids.txt", "audio", cwd=tmp_path)
    first, second = output.splitlines()[-2:]
    assert "{'done': 50}" in first
    assert "50 from the manifest, 0 polls sent" in second
    assert len(list((tmp_path / "audio").glob("*.wav"))) == 50
    assert len((tmp_path / "ids.txt").read_text().split()) == 50


async def test_bulk_fetch_without_arguments_writes_into_a_folder_it_names(
    tmp_path: Path,
) -> None:
    cwd, scratch = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    scratch.mkdir()
    output = await run_example("bulk_fetch.py", cwd=cwd, scratch=scratch)
    assert list(cwd.iterdir()) == []  # nothing in the current directory
    where = Path(output.splitlines()[0].split("audio and manifest: ")[1])
    assert where.parent.parent == scratch  # a folder of its own, where temporary ones go
    assert len(list(where.glob("*.wav"))) == 50


async def test_pipeline_yields_whole_files_as_they_land(tmp_path: Path) -> None:
    output = await run_example("pipeline.py", cwd=tmp_path)
    lines = output.splitlines()
    assert len([line for line in lines if line.endswith("s of audio")]) == 5
    folder = Path(lines[-1].split(" in ")[-1])
    assert folder.parent == tmp_path  # where temporary folders go: nothing left behind
    for path in folder.glob("*.wav"):
        with wave.open(str(path)) as wav:
            assert wav.getnframes() > 0


@contextlib.asynccontextmanager
async def web_backend(cwd: Path, env: dict[str, str]) -> AsyncIterator[str]:
    """The web example running in a process of its own; yields its base URL once it
    answers (a non-JSON POST, which asks nothing of the service)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with await anyio.open_process(
        [sys.executable, str(EXAMPLES / "web_backend.py"), str(port)], cwd=cwd, env=env
    ) as server:
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as http:
                with anyio.fail_after(30):
                    while True:
                        try:
                            async with http.post(base + "/speak", data=b"not json") as r:
                                assert r.status == 400
                                break
                        except aiohttp.ClientConnectorError:
                            await anyio.sleep(0.1)
            yield base
        finally:
            server.terminate()
            await server.wait()


async def test_web_backend_answers_202_then_streams_the_wav(tmp_path: Path) -> None:
    async with (
        web_backend(tmp_path, example_env(tmp_path)) as base,
        aiohttp.ClientSession() as http,
    ):
        async with http.post(base + "/speak", json={"text": "Hello, web"}) as r:
            assert r.status == 201
            task_id = (await r.json())["id"]
        statuses = []
        with anyio.fail_after(30):
            while True:
                async with http.get(f"{base}/audio/{task_id}") as response:
                    statuses.append(response.status)
                    if response.status == 200:
                        assert response.content_type == "audio/wav"
                        body = await response.read()
                        break
                await anyio.sleep(0.1)
        assert statuses[0] == 202
        assert body[:4] == b"RIFF"
        async with http.get(f"{base}/audio/TTS00000-0000-4000-8000-000000000000") as r:
            assert r.status == 404
        async with http.get(f"{base}/audio/..%2F..%2Fetc%2Fpasswd") as r:
            assert r.status == 404
        async with http.post(base + "/speak", json={"text": ""}) as r:
            assert r.status == 400
        async with http.post(base + "/speak", data=b"text=not json") as r:
            assert r.status == 400
            assert "JSON" in await r.text()


async def test_web_backend_serves_many_waiting_requests_through_one_poll_loop(
    tmp_path: Path,
) -> None:
    """50 long-polling requests for one id and one for each of 50 others, at once: the
    shared id is asked about as often as any other, and downloaded once. The tasks become
    ready (by the emulator's clock) only once every id has been asked about."""
    clock = ManualClock()
    config = EmulatorConfig(audio_bytes=20_000)
    async with Emulator(config, clock=clock) as emu:
        env = {
            **example_env(tmp_path),
            "ASPOSE_CLIENT_ID": emu.client_id,
            "ASPOSE_CLIENT_SECRET": emu.client_secret,
            "AIOTTS_BASE_URL": emu.url,
        }
        with anyio.fail_after(60):
            async with (
                web_backend(tmp_path, env) as base,
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
            ):
                shared, *others = emu.create_tasks(51, ready_after=1.0, fail=False)
                (late,) = emu.create_tasks(1, ready_after=3600, fail=False)
                bodies: dict[int, tuple[str, int, bytes]] = {}

                async def get(n: int, task_id: str) -> None:
                    async with http.get(f"{base}/audio/{task_id}?wait=30") as response:
                        bodies[n] = (task_id, response.status, await response.read())

                async with anyio.create_task_group() as group:
                    for n in range(50):
                        group.start_soon(get, n, shared)
                    for n, task_id in enumerate(others, start=50):
                        group.start_soon(get, n, task_id)
                    while not all(emu.record(i).fetches for i in (shared, *others)):
                        await anyio.sleep(0.01)
                    before = {i: emu.record(i).fetches for i in (shared, *others)}
                    clock.advance(1.1)
                async with http.get(f"{base}/audio/{late}?wait=0.3") as r:
                    assert r.status == 202  # waited, not ready: try again later
                    assert await r.json() == {"id": late, "ready": False}
                for query in ("wait=soon", "wait=-1", "wait=nan", "wait=61"):
                    async with http.get(f"{base}/audio/{late}?{query}") as r:
                        assert r.status == 400
                        assert "wait must be" in await r.text()
        records = {task_id: emu.record(task_id) for task_id in (shared, *others)}
        for task_id, status, body in bodies.values():
            assert status == 200
            assert body == emu.audio(task_id)
    assert len(bodies) == 100
    assert records[shared].audio_started == 1  # 50 requests, one download
    assert all(records[task_id].audio_started == 1 for task_id in others)
    # asked about as often as an id that one request waits for (polls are jittered), from
    # the moment every id had been asked about once
    grew = {task_id: record.fetches - before[task_id] for task_id, record in records.items()}
    assert grew[shared] <= max(grew[i] for i in others) + 1
    assert records[shared].status_requests == 0  # long polls wait through the client
