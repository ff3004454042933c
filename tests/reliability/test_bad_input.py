"""Bad input from the user: a clear error, or a per-task failure naming the id and what to
do, while the rest of the batch goes on."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import anyio
import orjson
import pytest

from aiotts import OutcomeState, OutputError, read_manifest
from aiotts.cli import ExitCode
from aiotts.emulator import Emulator
from tests.helpers import cli_env, client_for, temp_files

pytestmark = pytest.mark.anyio


async def test_an_ids_file_full_of_trouble(emulator: Emulator, tmp_path: Path) -> None:
    good = emulator.create_tasks(3)
    lines = [
        good[0].encode(),
        b"",
        b"   ",
        good[1].encode(),
        good[1].encode(),  # a duplicate
        b"../../etc/passwd",  # path characters: asked about safely, never a path
        b"TTS\x00nul",  # NUL
        b"TTS\xff\xfe-latin1",  # not UTF-8
        b"x" * 20_000,  # absurdly long
        good[2].encode() + b"\r",  # a Windows line ending
    ]
    ids_file = tmp_path / "ids.txt"
    ids_file.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out"
    result = await anyio.run_process(
        [
            sys.executable,
            "-m",
            "aiotts",
            "fetch",
            "--ids-file",
            str(ids_file),
            "--out",
            str(out),
            "--json",
        ],
        env=cli_env(emulator),
        check=False,
    )
    assert result.returncode == ExitCode.TASKS_FAILED, result.stderr.decode()
    records = {r["id"]: r for r in map(orjson.loads, result.stdout.splitlines())}
    assert len(records) == 7  # blank lines skipped, the duplicate reported once
    for task_id in good:
        assert records[task_id]["state"] == "done"
        assert (out / f"{task_id}.wav").read_bytes() == emulator.audio(task_id)
    assert records["../../etc/passwd"]["state"] == "missing"
    assert "control characters" in records["TTS\x00nul"]["error"]
    latin = records["TTS\\xff\\xfe-latin1"]
    assert latin["state"] == "aborted"
    assert "not valid UTF-8" in latin["error"]
    assert "20000 characters" in records["x" * 20_000]["error"]
    # The audio and the store (with its journal, kept after a clean end), nothing else.
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{i}.wav" for i in good] + ["aiotts.db", "aiotts.db-journal"]
    )
    assert len(read_manifest(out / "aiotts.db")) == 7
    assert emulator.stats().count("fetch") == 4  # the three good ids and the odd path


async def test_an_output_folder_that_cannot_be_written(emulator: Emulator, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    async with client_for(emulator) as client:
        with pytest.raises(OutputError) as caught:
            client.fetch_many(["TTSx"], blocker / "out")
    assert str(blocker) in str(caught.value)
    assert emulator.stats().count() == 0  # refused before any request


async def test_a_full_disk_fails_that_task_and_the_batch_goes_on(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = emulator.create_tasks(10)
    unlucky = ids[4]
    real_write = os.write

    def write(fd: int, data: bytes) -> int:
        if unlucky in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    async with client_for(emulator) as client:
        report = await client.fetch_all(ids, tmp_path, manifest=tmp_path / "m.jsonl")
    monkeypatch.setattr(os, "write", real_write)
    assert len(report.done) == 9
    (failure,) = report.failed
    assert failure.task_id == unlucky
    assert failure.state is OutcomeState.ABORTED
    assert "No space left on device" in (failure.error or "")
    assert "free some space, then resume" in (failure.error or "")
    assert isinstance(failure.cause, OutputError)
    assert temp_files(tmp_path) == []
    assert not (tmp_path / f"{unlucky}.wav").exists()
    async with client_for(emulator) as client:  # space freed: resume finishes the job
        again = await client.fetch_all(ids, tmp_path, manifest=tmp_path / "m.jsonl", resume=True)
    assert len(again.done) == 10
    assert [o.task_id for o in again.done if not o.resumed] == [unlucky]
