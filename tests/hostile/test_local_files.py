"""The file system is input too: FIFOs and links at final names, a linked manifest, a
resume from another directory, and two ids that could claim one file name."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import anyio
import orjson
import pytest
from aiohttp import web

from aiotts import OutcomeState, OutputError, TTSClient, read_manifest
from aiotts.cli import ExitCode
from aiotts.emulator import Emulator, EmulatorConfig, synthesize
from tests.helpers import cli_env, client_for
from tests.hostile.servers import CLIENT_ID, CLIENT_SECRET, HostileServer

pytestmark = pytest.mark.anyio

AIOTTS = [sys.executable, "-m", "aiotts"]
HANG_GUARD = 30  # seconds: only so that a regression fails instead of hanging the suite


async def run(
    args: list[str], emu: Emulator, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    with anyio.fail_after(HANG_GUARD):
        return await anyio.run_process([*AIOTTS, *args], env=cli_env(emu), cwd=cwd, check=False)


@pytest.fixture
async def emu() -> Emulator:  # type: ignore[misc]
    async with Emulator(EmulatorConfig(pending_seconds=0, processing_seconds=0)) as emulator:
        yield emulator


async def test_a_fifo_at_a_final_name_does_not_hang_resume(emu: Emulator, tmp_path: Path) -> None:
    ids = emu.create_tasks(3)
    out = tmp_path / "out"
    first = await run(["fetch", *ids[:2], "--out", str(out)], emu)
    assert first.returncode == ExitCode.OK, first.stderr.decode()
    # A FIFO where a done id's file was, and one where a never-fetched id's file goes.
    for task_id in (ids[0], ids[2]):
        (out / f"{task_id}.wav").unlink(missing_ok=True)
        os.mkfifo(out / f"{task_id}.wav")
    result = await run(
        ["fetch", *ids, "--out", str(out), "--resume", "--batch-timeout", "20", "--json"], emu
    )
    assert result.returncode == ExitCode.OK, result.stderr.decode()
    for task_id in ids:
        path = out / f"{task_id}.wav"
        assert path.is_file() and not path.is_symlink()
        assert path.read_bytes() == emu.audio(task_id)
    lines = {line["id"]: line for line in map(orjson.loads, result.stdout.splitlines())}
    assert not lines[ids[0]]["resumed"] and not lines[ids[2]]["resumed"]
    assert lines[ids[1]]["resumed"]


async def test_a_link_at_a_final_name_is_replaced_never_written_through(
    emu: Emulator, tmp_path: Path
) -> None:
    [task_id] = emu.create_tasks(1)
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "precious.wav"
    outside.write_bytes(b"not yours")
    (out / f"{task_id}.wav").symlink_to(outside)
    async with client_for(emu) as client:
        [outcome] = [o async for o in client.fetch_many([task_id], out)]
        saved = await client.download(task_id, out)
    assert outcome.state is OutcomeState.DONE
    assert saved.files == (out / f"{task_id}.wav",)
    assert outside.read_bytes() == b"not yours"
    final = out / f"{task_id}.wav"
    assert not final.is_symlink() and final.read_bytes() == emu.audio(task_id)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "precious.wav"]


async def test_a_linked_manifest_is_refused_before_any_request(
    emu: Emulator, tmp_path: Path
) -> None:
    [task_id] = emu.create_tasks(1)
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me\n")
    link = tmp_path / "manifest.jsonl"
    link.symlink_to(victim)
    async with client_for(emu) as client:
        for resume in (False, True):
            with pytest.raises(OutputError, match="symbolic link") as caught:
                client.fetch_many([task_id], tmp_path / "out", manifest=link, resume=resume)
            assert caught.value.path == str(link)
    assert victim.read_bytes() == b"keep me\n"
    assert emu.stats().count() == 0


async def test_resume_from_another_directory_asks_for_nothing_done(
    emu: Emulator, tmp_path: Path
) -> None:
    ids = emu.create_tasks(4)
    first = await run(["fetch", *ids, "--out", "out"], emu, cwd=tmp_path)
    assert first.returncode == ExitCode.OK, first.stderr.decode()
    fetches = {task_id: emu.record(task_id).fetches for task_id in ids}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = await run(["fetch", *ids, "--out", "../out", "--resume", "--json"], emu, cwd=elsewhere)
    assert again.returncode == ExitCode.OK, again.stderr.decode()
    assert {task_id: emu.record(task_id).fetches for task_id in ids} == fetches
    lines = [orjson.loads(line) for line in again.stdout.splitlines()]
    assert all(line["resumed"] and line["state"] == "done" for line in lines)
    assert {line["files"][0] for line in lines} == {f"../out/{task_id}.wav" for task_id in ids}
    entries = read_manifest(tmp_path / "out" / "aiotts.db")
    assert all(e.state is OutcomeState.DONE for e in entries.values())


async def test_id_a_with_two_results_and_id_a_1_keep_their_own_files(tmp_path: Path) -> None:
    audio = {
        "a": [synthesize("a, first"), synthesize("a, second")],
        "a.1": [synthesize("a.1, the only one")],
    }

    async def fetch(request: web.Request) -> web.StreamResponse:
        task_id = request.query["id"]
        results = [
            {"type": "WavFile", "data": base64.b64encode(data).decode()} for data in audio[task_id]
        ]
        body = {"id": task_id, "responseStatusCode": "Ok", "taskStatus": "Completed"}
        body |= {"results": results, "error": None}
        return web.json_response(body)

    server = HostileServer()
    server.route("GET", "/v5.0/ocr/ConvertTextToSpeech", fetch)
    async with server, TTSClient(CLIENT_ID, CLIENT_SECRET, base_url=server.url) as client:
        outcomes = {o.task_id: o async for o in client.fetch_many(["a", "a.1"], tmp_path)}
    assert {o.state for o in outcomes.values()} == {OutcomeState.DONE}
    for task_id, expected in audio.items():
        assert [p.read_bytes() for p in outcomes[task_id].files] == expected
    assert len({p for o in outcomes.values() for p in o.files}) == 3
    assert len(list(tmp_path.glob("*.wav"))) == 3


async def test_a_folder_at_a_final_name_ends_that_task_with_an_error_naming_it(
    emu: Emulator, tmp_path: Path
) -> None:
    ids = emu.create_tasks(2)
    out = tmp_path / "out"
    (out / f"{ids[0]}.wav").mkdir(parents=True)
    async with client_for(emu) as client:
        outcomes = {o.task_id: o async for o in client.fetch_many(ids, out)}
    blocked = outcomes[ids[0]]
    assert blocked.state is OutcomeState.ABORTED
    assert isinstance(blocked.cause, OutputError)
    assert blocked.error is not None and f"{ids[0]}.wav" in blocked.error
    assert outcomes[ids[1]].state is OutcomeState.DONE
    assert (out / f"{ids[0]}.wav").is_dir()
