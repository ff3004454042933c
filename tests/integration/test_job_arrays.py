"""The job-array examples (examples/k8s-indexed-job.yaml, examples/slurm-array.sh): read as
their engine reads them, and the command each array task runs, run for every index with
the variables the engine sets, at small scale, against the emulator."""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from aiotts import read_manifest, shard_of
from aiotts.cli import ExitCode
from aiotts.emulator import Emulator
from tests.helpers import cli_env

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"
AT_ONCE = 4
"""Array tasks run at the same time here (the machine has two cores)."""


def _command_lines(text: str) -> tuple[list[str], dict[str, str]]:
    """The container's command and plain env values, read line by line: used only where
    no YAML parser is installed; it understands the shape of this one file."""
    command: list[str] = []
    env: dict[str, str] = {}
    lines = text.splitlines()
    for n, line in enumerate(lines):
        if line.strip() == "command:":
            indent = len(line) - len(line.lstrip())
            for item in lines[n + 1 :]:
                if len(item) - len(item.lstrip()) <= indent:
                    break
                value = item.strip()[2:].split("  #")[0].strip()
                command.append(value.strip('"'))
        match = re.match(r"\s*- name: (\w+)$", line)
        if match and "value:" in lines[n + 1]:
            env[match.group(1)] = lines[n + 1].split("value:")[1].strip().strip('"')
    return command, env


def read_job() -> tuple[dict[str, Any], list[str], dict[str, str]]:
    text = (EXAMPLES / "k8s-indexed-job.yaml").read_text()
    try:
        import yaml
    except ImportError:  # pragma: no cover - dask's extra brings PyYAML
        command, env = _command_lines(text)
        completions = int(re.search(r"completions: (\d+)", text).group(1))  # type: ignore[union-attr]
        return {"completions": completions, "completionMode": "Indexed"}, command, env
    job = yaml.safe_load(text)
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    spec = job["spec"]
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"  # backoffLimitPerIndex requires it
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    secrets = {e["name"] for e in container["env"] if "valueFrom" in e}
    assert secrets == {"ASPOSE_CLIENT_ID", "ASPOSE_CLIENT_SECRET"}  # never in the manifest
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"/shared"}
    return spec, [str(part) for part in container["command"]], env


def _runnable(command: list[str]) -> list[str]:
    assert command[0] == "aiotts"
    return [sys.executable, "-m", "aiotts", *command[1:]]


async def _run_all(runs: list[tuple[list[str], dict[str, str]]]) -> list[int]:
    codes: list[int] = [-1] * len(runs)
    limit = anyio.Semaphore(AT_ONCE)

    async def one(n: int, argv: list[str], env: dict[str, str]) -> None:
        async with limit:
            done = await anyio.run_process(argv, env=env, check=False)
        assert done.returncode == ExitCode.OK, done.stderr.decode()
        codes[n] = done.returncode

    async with anyio.create_task_group() as group:
        for n, (argv, env) in enumerate(runs):
            group.start_soon(one, n, argv, env)
    return codes


def _check_shards(emu: Emulator, ids: list[str], audio: Path, count: int) -> None:
    assert {p.stem for p in audio.glob("*.wav")} == set(ids)
    for k in range(count):
        record = read_manifest(audio / f"aiotts.shard-{k}-of-{count}.db")
        assert set(record) == {i for i in ids if shard_of(i, count) == k}
    assert all(emu.record(i).audio_finished == 1 for i in ids)  # one fetch each


async def test_the_kubernetes_indexed_job(emulator: Emulator, tmp_path: Path) -> None:
    spec, command, env = read_job()
    assert spec["completionMode"] == "Indexed"
    count = int(spec["completions"])
    assert env["AIOTTS_SHARDS"] == str(count)  # the two must agree
    assert {"--shard", "auto", "--resume"} <= set(command)
    ids = emulator.create_tasks(40)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "ids.txt").write_text("\n".join(ids) + "\n")
    argv = _runnable([part.replace("/shared", str(shared)) for part in command])
    runs = [
        (argv, cli_env(emulator, **env, JOB_COMPLETION_INDEX=str(index))) for index in range(count)
    ]
    await _run_all(runs)
    _check_shards(emulator, ids, shared / "audio", count)
    # Kubernetes runs a failed index again: it resumes its own record, fetching nothing.
    await _run_all([runs[3]])
    assert all(emulator.record(i).audio_finished == 1 for i in ids)


async def test_the_slurm_array(emulator: Emulator, tmp_path: Path) -> None:
    script = EXAMPLES / "slurm-array.sh"
    text = script.read_text()
    array = re.search(r"^#SBATCH --array=(\d+)-(\d+)$", text, re.MULTILINE)
    assert array is not None
    low, high = int(array.group(1)), int(array.group(2))
    assert os.access(script, os.X_OK)
    assert "--shard auto" in " ".join(shlex.split(text, comments=True))
    ids = emulator.create_tasks(40)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "ids.txt").write_text("\n".join(ids) + "\n")
    # `aiotts` on the PATH, as on a node where it is installed.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

    def slurm(task: int, first: int, last: int) -> dict[str, str]:
        return cli_env(
            emulator,
            PATH=path,
            SHARED=str(shared),
            SLURM_ARRAY_JOB_ID="1001",
            SLURM_ARRAY_TASK_ID=str(task),
            SLURM_ARRAY_TASK_MIN=str(first),
            SLURM_ARRAY_TASK_MAX=str(last),
            SLURM_ARRAY_TASK_COUNT=str(last - first + 1),
        )

    argv = ["bash", str(script)]
    await _run_all([(argv, slurm(task, low, high)) for task in range(low, high + 1)])
    count = high - low + 1
    _check_shards(emulator, ids, shared / "audio", count)
    # `sbatch --array=4` runs task 4 again alone: still shard 4, resumed, nothing fetched.
    await _run_all([(argv, slurm(4, 4, 4))])
    assert all(emulator.record(i).audio_finished == 1 for i in ids)
    assert not (shared / "audio" / "aiotts.shard-0-of-1.db").exists()
