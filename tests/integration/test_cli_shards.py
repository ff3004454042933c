"""``aiotts fetch --shard``: N runs given the same ids split them exactly, with no
coordination, each with its own record; ``--shard auto`` reads a job array's variables."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio
import orjson
import pytest

from aiotts import read_manifest, shard_of
from aiotts.cli import ExitCode, main
from aiotts.emulator import Emulator
from tests.helpers import cli_env

pytestmark = pytest.mark.anyio

AIOTTS = [sys.executable, "-m", "aiotts"]


async def run(
    args: Sequence[str], emu: Emulator | None, *, stdin: bytes | None = None, **env: str
) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process(
        [*AIOTTS, *args], input=stdin, env=cli_env(emu, **env), check=False
    )


def fetched(out: Path) -> set[str]:
    return {p.stem for p in out.glob("*.wav")}


async def test_n_shards_split_the_ids_exactly(emulator: Emulator, tmp_path: Path) -> None:
    ids = emulator.create_tasks(30)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    out = tmp_path / "out"
    seen: list[set[str]] = []
    async with anyio.create_task_group() as group:  # three runs at once, as an array would

        async def one(k: int) -> None:
            args = ["fetch", "--ids-file", str(ids_file), "--out", str(out), "--shard", f"{k}/3"]
            result = await run([*args, "--json"], emulator)
            assert result.returncode == ExitCode.OK, result.stderr.decode()
            assert f"shard {k}/3 (counted from 0), from --shard".encode() in result.stderr
            seen.append({orjson.loads(line)["id"] for line in result.stdout.splitlines()})

        for k in range(3):
            group.start_soon(one, k)
    assert sorted(i for part in seen for i in part) == sorted(ids)  # disjoint, complete
    assert fetched(out) == set(ids)
    for k in range(3):
        record = read_manifest(out / f"aiotts.shard-{k}-of-3.db")
        assert set(record) == {i for i in ids if shard_of(i, 3) == k}
    assert not (out / "aiotts.db").exists()
    # Every id was asked for by exactly one of the runs.
    assert all(emulator.record(i).audio_finished == 1 for i in ids)


async def test_ids_as_arguments_and_from_stdin_are_sharded_too(
    emulator: Emulator, tmp_path: Path
) -> None:
    ids = emulator.create_tasks(12)
    mine = {i for i in ids if shard_of(i, 2) == 1}
    result = await run(["fetch", *ids, "--out", str(tmp_path / "a"), "--shard", "1/2"], emulator)
    assert result.returncode == ExitCode.OK, result.stderr.decode()
    assert fetched(tmp_path / "a") == mine
    piped = ("\n".join(ids) + "\n").encode()
    args = ["fetch", "--ids-file", "-", "--out", str(tmp_path / "b"), "--shard", "1/2", "-q"]
    result = await run(args, emulator, stdin=piped)
    assert result.returncode == ExitCode.OK, result.stderr.decode()
    assert fetched(tmp_path / "b") == mine


ARRAYS = [
    ({"JOB_COMPLETION_INDEX": "1", "AIOTTS_SHARDS": "3"}, (1, 3), "Kubernetes"),
    (
        {
            "SLURM_ARRAY_TASK_ID": "2",
            "SLURM_ARRAY_TASK_MIN": "1",
            "SLURM_ARRAY_TASK_MAX": "3",
            "SLURM_ARRAY_TASK_COUNT": "3",
        },
        (1, 3),
        "Slurm",
    ),
    ({"AWS_BATCH_JOB_ARRAY_INDEX": "2"}, (2, 3), "AWS Batch"),
]


async def test_shard_auto_reads_the_job_array(emulator: Emulator, tmp_path: Path) -> None:
    ids = emulator.create_tasks(12)

    async def one(n: int, env: dict[str, str], shard: tuple[int, int], source: str) -> None:
        out = tmp_path / str(n)
        args = ["fetch", *ids, "--out", str(out), "--shard", "auto", "-q"]
        if "AIOTTS_SHARDS" not in env and "SLURM_ARRAY_TASK_COUNT" not in env:
            args += ["--shards", "3"]
        result = await run(args, emulator, **env)
        assert result.returncode == ExitCode.OK, result.stderr.decode()
        index, count = shard
        line = result.stderr.decode()
        assert f"shard {index}/{count} (counted from 0), from {source}" in line
        assert f"aiotts.shard-{index}-of-{count}.db" in line
        assert fetched(out) == {i for i in ids if shard_of(i, count) == index}

    async with anyio.create_task_group() as group:
        for n, (env, shard, source) in enumerate(ARRAYS):
            group.start_soon(one, n, env, shard, source)


@pytest.mark.parametrize(
    ("extra", "env", "message"),
    [
        (["--shard", "auto"], {}, "--shard auto found no job array's variable"),
        (["--shard", "auto"], {"JOB_COMPLETION_INDEX": "0"}, "pass --shards N"),
        (["--shard", "3/3"], {}, "numbered from 0 to 2"),
        (["--shard", "1/2", "--shards", "2"], {}, "--shards goes with --shard auto"),
        (["--shards", "2"], {}, "--shards goes with --shard auto"),
        (["--shard", "x"], {}, "--shard 'x' is not K/N"),
    ],
)
def test_shard_mistakes_are_usage_errors(
    extra: list[str],
    env: dict[str, str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("AIOTTS_SHARD", "AIOTTS_SHARDS", "JOB_COMPLETION_INDEX"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # Refused before any request: the address is a closed port.
    monkeypatch.setenv("AIOTTS_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("ASPOSE_CLIENT_ID", "x")
    monkeypatch.setenv("ASPOSE_CLIENT_SECRET", "y")
    code = main(["fetch", "TTSa", "--out", str(tmp_path / "out"), *extra])
    assert code == ExitCode.USAGE
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


async def test_a_shard_that_holds_none_of_the_ids_is_no_error(
    emulator: Emulator, tmp_path: Path
) -> None:
    (task_id,) = emulator.create_tasks(1)
    other = 1 - shard_of(task_id, 2)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(task_id + "\n")
    for source in (["--ids-file", str(ids_file)], [task_id]):
        args = ["fetch", *source, "--out", str(tmp_path), "--shard", f"{other}/2", "-q"]
        result = await run(args, emulator)
        assert result.returncode == ExitCode.OK, result.stderr.decode()
        assert "0 tasks" in result.stdout.decode()
    # An empty input is still an error, shard or not.
    ids_file.write_text("\n")
    args = ["fetch", "--ids-file", str(ids_file), "--out", str(tmp_path), "--shard", "0/2"]
    result = await run(args, emulator)
    assert result.returncode == ExitCode.USAGE


async def test_an_array_task_without_shard_is_warned(emulator: Emulator, tmp_path: Path) -> None:
    ids = emulator.create_tasks(2)
    env = {"SLURM_ARRAY_TASK_ID": "0"}
    result = await run(["fetch", *ids, "--out", str(tmp_path), "-q"], emulator, **env)
    assert result.returncode == ExitCode.OK
    assert "SLURM_ARRAY_TASK_ID is set, but --shard is not given" in result.stderr.decode()
    assert fetched(tmp_path) == set(ids)
