"""What the command line prints reads well in a terminal and in a log: escaped and cut
ids, whole lines, debug lines naming their task, and the conventions of its peers."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import orjson
import pytest

import aiotts
from aiotts.cli import ExitCode
from aiotts.emulator import Emulator
from tests.helpers import cli_env

pytestmark = pytest.mark.anyio

AIOTTS = [sys.executable, "-m", "aiotts"]


async def run(args: list[str], emu: Emulator | None) -> tuple[int, bytes, bytes]:
    done = await anyio.run_process([*AIOTTS, *args], env=cli_env(emu), check=False)
    return done.returncode, done.stdout, done.stderr


async def test_ids_are_escaped_cut_and_on_one_line_each(emulator: Emulator, tmp_path: Path) -> None:
    good = emulator.create_tasks(2)
    recolour = "TTS\x1b[31mred\x1b]0;title\x07"
    huge = "TTS" + "x" * 5000
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join([*good, recolour, huge]) + "\n")
    code, stdout, stderr = await run(
        ["-v", "fetch", "--ids-file", str(ids_file), "--out", str(tmp_path / "out"), "-q"],
        emulator,
    )
    assert code == ExitCode.TASKS_FAILED
    assert b"\x1b" not in stderr + stdout and b"\x07" not in stderr + stdout
    failures = [line for line in stderr.splitlines() if b": aborted: " in line]
    assert len(failures) == 2
    assert any(line.startswith(rb"TTS\x1b[31mred\x1b]0;title\x07: aborted") for line in failures)
    assert all(len(line) < 400 for line in failures)  # the 5,000-character id is cut
    assert any(b"(5003 characters)" in line for line in failures)
    # -v given before the verb: debug lines, each naming the task it is about
    polls = [line for line in stderr.splitlines() if b"GET /v5.0/ocr/ConvertTextToSpeech" in line]
    assert {task_id for task_id in good if any(f"[{task_id}]".encode() in p for p in polls)} == set(
        good
    )
    # --quiet: no table, one summary line on standard output
    assert stdout.decode().splitlines() == [
        "aiotts fetch: 4 tasks: 2 done, 2 aborted; " + stdout.decode().split("aborted; ")[1].strip()
    ]


async def test_version_and_help_follow_the_conventions() -> None:
    code, stdout, _ = await run(["--version"], None)
    assert code == 0
    assert stdout.decode().strip() == f"aiotts {aiotts.__version__}"
    assert aiotts.__version__ != "0+unknown"  # read from the installed metadata
    code, stdout, _ = await run(["fetch", "--help"], None)
    assert code == 0
    text = stdout.decode()
    assert "--concurrency N" in text and "--timeout SECONDS" in text
    assert "(default: 32)" in text
    assert "examples:\n  aiotts fetch" in text
    assert "stop the whole batch after SECONDS" in text
    code, stdout, _ = await run(["--help"], None)
    assert "exit codes:" in stdout.decode()


@pytest.mark.parametrize("mode", ["json", "debug"])
async def test_verbose_with_aiotts_log_writes_each_record_once(
    emulator: Emulator, tmp_path: Path, mode: str
) -> None:
    """``AIOTTS_LOG`` decides how aiotts's records look; ``-v`` adds aiohttp's and the
    tracebacks, and no record comes out twice."""
    (task_id,) = emulator.create_tasks(1)
    args = [*AIOTTS, "-v", "fetch", task_id, "--out", str(tmp_path / "out"), "-q"]
    env = {**cli_env(emulator), "AIOTTS_LOG": mode}
    done = await anyio.run_process(args, env=env, check=False)
    assert done.returncode == ExitCode.OK, done.stderr.decode()
    lines = done.stderr.decode().splitlines()
    new_token = [line for line in lines if "new token" in line]
    assert len(new_token) == 1, lines  # one record, one line
    if mode == "json":
        assert orjson.loads(new_token[0])["event"] == "token"


async def test_a_wrong_aiotts_log_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {**cli_env(None), "AIOTTS_LOG": "loud"}
    done = await anyio.run_process([*AIOTTS, "status", "TTS1"], env=env, check=False)
    assert done.returncode == ExitCode.USAGE
    assert done.stderr.decode().splitlines() == [
        "aiotts: AIOTTS_LOG='loud' is not understood: use json, debug, or leave it unset"
    ]
