"""Every example runs as a user would run it, against the emulator, with no account."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import wave
from pathlib import Path

import aiohttp
import anyio
import pytest

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("ASPOSE_", "AIOTTS_"))}


async def run_example(name: str, *args: str, cwd: Path) -> str:
    result = await anyio.run_process(
        [sys.executable, str(EXAMPLES / name), *args], cwd=cwd, env=example_env(), check=False
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
    output = await run_example("bulk_fetch.py", cwd=tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing in the current directory
    where = Path(output.splitlines()[0].split("audio and manifest: ")[1])
    assert len(list(where.glob("*.wav"))) == 50
    shutil.rmtree(where.parent)


async def test_pipeline_yields_whole_files_as_they_land(tmp_path: Path) -> None:
    output = await run_example("pipeline.py", cwd=tmp_path)
    lines = output.splitlines()
    assert len([line for line in lines if line.endswith("s of audio")]) == 5
    folder = Path(lines[-1].split(" in ")[-1])
    for path in folder.glob("*.wav"):
        with wave.open(str(path)) as wav:
            assert wav.getnframes() > 0


async def test_web_backend_answers_202_then_streams_the_wav(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with await anyio.open_process(
        [sys.executable, str(EXAMPLES / "web_backend.py"), str(port)],
        cwd=tmp_path,
        env=example_env(),
    ) as server:
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            with anyio.fail_after(30):
                while True:
                    try:
                        async with http.post(base + "/speak", json={"text": "Hello, web"}) as r:
                            assert r.status == 201
                            task_id = (await r.json())["id"]
                            break
                    except aiohttp.ClientConnectorError:
                        await anyio.sleep(0.1)
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
        server.terminate()
        await server.wait()
