"""``aiotts fetch --processes P``: P shards as child processes of one command, with one
bar and summary, the worst exit code, Ctrl-C reaching all of them, and resume."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio
import orjson
import pytest

from aiotts import OutcomeState, Shard, read_manifest, shard_of
from aiotts.cli import ExitCode, build_parser
from aiotts.cli._processes import child_arguments, worst_exit_code
from aiotts.emulator import Emulator, EmulatorConfig, ManualClock
from tests.helpers import cli_env, run_on_terminal, temp_files

pytestmark = pytest.mark.anyio

AIOTTS = [sys.executable, "-m", "aiotts"]


async def run(
    args: Sequence[str], emu: Emulator | None, *, stdin: bytes | None = None, **env: str
) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process(
        [*AIOTTS, *args], input=stdin, env=cli_env(emu, **env), check=False
    )


async def test_two_processes_fetch_every_id_once(emulator: Emulator, tmp_path: Path) -> None:
    ids = emulator.create_tasks(40) + emulator.create_tasks(2, fail=True)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join([*ids, ids[0], ""]) + "\n")  # a duplicate, a blank line
    out = tmp_path / "out"
    args = ["fetch", "--ids-file", str(ids_file), "--out", str(out), "--processes", "2"]
    result = await run(args, emulator)
    assert result.returncode == ExitCode.TASKS_FAILED, result.stderr.decode()
    text = result.stdout.decode()
    assert "│ tasks      │" in text and "42 │" in text  # one summary for both
    assert "processes" in text and "aiotts.shard-*-of-2.db" in text
    err = result.stderr.decode()
    assert "2 processes, shards 0/2 to 1/2 (counted from 0)" in err
    assert err.count(": failed: ") == 2  # each failure once, from the parent
    for k in range(2):
        record = read_manifest(out / f"aiotts.shard-{k}-of-2.db")
        assert set(record) == {i for i in ids if shard_of(i, 2) == k}
    assert all(emulator.record(i).fetches == 1 for i in ids)
    for task_id in ids[:40]:
        assert (out / f"{task_id}.wav").read_bytes() == emulator.audio(task_id)


async def test_json_and_quiet_and_stdin(emulator: Emulator, tmp_path: Path) -> None:
    ids = emulator.create_tasks(9)
    piped = ("\n".join(ids) + "\n").encode()
    results: dict[str, subprocess.CompletedProcess[bytes]] = {}

    async def one(how: str) -> None:
        args = ["fetch", "--ids-file", "-", "--out", str(tmp_path / how), "--processes", "2"]
        results[how] = await run([*args, f"--{how}"], emulator, stdin=piped)

    async with anyio.create_task_group() as group:
        group.start_soon(one, "json")
        group.start_soon(one, "quiet")
    result = results["json"]
    assert result.returncode == ExitCode.OK, result.stderr.decode()
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(ids)  # outcomes only
    assert all(line["state"] == "done" for line in lines)
    result = results["quiet"]
    assert result.returncode == ExitCode.OK, result.stderr.decode()
    assert result.stdout.decode().startswith("aiotts fetch: 9 tasks: 9 done")
    assert {p.stem for p in (tmp_path / "quiet").glob("*.wav")} == set(ids)
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("aiotts-ids-*"))


async def test_the_worst_exit_code_wins(tmp_path: Path) -> None:
    # Every child meets a closed port: each exits 4, and so does the parent; the error
    # is shown once, not once per child.
    env = {
        "ASPOSE_CLIENT_ID": "x",
        "ASPOSE_CLIENT_SECRET": "y",
        "AIOTTS_BASE_URL": "http://127.0.0.1:9",
    }
    ids = [f"TTS{n}" for n in range(8)]
    assert {shard_of(i, 2) for i in ids} == {0, 1}  # both children have work
    args = ["fetch", *ids, "--out", str(tmp_path), "--processes", "2"]
    result = await run([*args, "--retries", "0", "-q"], None, **env)
    assert result.returncode == ExitCode.SERVICE, result.stderr.decode()
    errors = [x for x in result.stderr.decode().splitlines() if x.startswith("shard ")]
    assert len(errors) == 1 and "cannot connect" in errors[0]  # once, not once a child
    assert worst_exit_code([0, 1, 0]) == 1
    assert worst_exit_code([1, 3, 2]) == 3
    assert worst_exit_code([0, 130, 4]) == 130
    assert worst_exit_code([0, -signal.SIGKILL]) == ExitCode.SERVICE
    assert worst_exit_code([1, -signal.SIGTERM]) == ExitCode.INTERRUPTED


def test_children_get_every_option_but_the_parents_own() -> None:
    argv = [
        "fetch",
        "x1",
        "x2",
        "--out",
        "o",
        "--processes",
        "2",
        "--rate",
        "50",
        "--concurrency",
        "8",
        "--resume",
        "--retry-failed",
        "--manifest",
        "m.db",
        "--base-url",
        "http://127.0.0.1:1",
        "--retries",
        "2",
        "-q",
    ]
    args = build_parser().parse_args(argv)
    assert isinstance(args, argparse.Namespace)
    child = child_arguments(args, Shard(1, 2), "ids.txt")
    again = build_parser().parse_args(child)
    for name in ("out", "rate", "concurrency", "resume", "retry_failed", "manifest", "base_url"):
        assert getattr(again, name) == getattr(args, name), name
    assert again.retries == 2 and again.ids == ["x1", "x2"] and again.ids_file == "ids.txt"
    assert (again.shard, again.processes, again.json, again.quiet) == ("1/2", None, True, False)
    assert again.progress_lines


async def test_sigterm_stops_every_child_and_resume_finishes(tmp_path: Path) -> None:
    # A third of the tasks are ready at once, the rest only once the emulator's clock is
    # moved on: when the parent gets SIGTERM, both children are surely mid-batch.
    clock = ManualClock()
    async with Emulator(EmulatorConfig(audio_bytes=50_000), clock=clock) as emu:
        ids = emu.create_tasks(30, ready_after=0) + emu.create_tasks(60, ready_after=60)
        ids_file = tmp_path / "ids.txt"
        ids_file.write_text("\n".join(ids) + "\n")
        out = tmp_path / "out"
        args = ["fetch", "--ids-file", str(ids_file), "--out", str(out), "--processes", "2"]
        async with await anyio.open_process([*AIOTTS, *args, "--json"], env=cli_env(emu)) as proc:
            assert proc.stdout is not None
            seen = b""
            told = [0, 0]
            with anyio.fail_after(60):  # until each child has told some outcomes
                while min(told) < 3:
                    seen += await proc.stdout.receive()
                    whole = seen[: seen.rfind(b"\n") + 1].splitlines()
                    told = [
                        sum(shard_of(orjson.loads(x)["id"], 2) == k for x in whole) for k in (0, 1)
                    ]
            proc.send_signal(signal.SIGTERM)
            with anyio.fail_after(60):
                async for chunk in proc.stdout:
                    seen += chunk
                code = await proc.wait()
        assert code == ExitCode.INTERRUPTED
        assert temp_files(out) == []
        records = [read_manifest(out / f"aiotts.shard-{k}-of-2.db") for k in range(2)]
        for record in records:  # each child recorded what it had in flight, then ended
            states = {e.state for e in record.values()}
            assert states == {OutcomeState.DONE, OutcomeState.CANCELLED}, states
        done = {i for r in records for i, e in r.items() if e.state is OutcomeState.DONE}
        assert len(done) >= 6 and done <= set(ids[:30])  # only tasks that were ready
        fetches = {i: emu.record(i).fetches for i in done}

        clock.advance(61)
        resumed = await run([*args, "--resume", "--json"], emu)
        assert resumed.returncode == ExitCode.OK, resumed.stderr.decode()
        lines = [orjson.loads(line) for line in resumed.stdout.splitlines()]
        assert sorted(line["id"] for line in lines) == sorted(ids)
        assert {line["id"] for line in lines if line["resumed"]} == done
        assert all(emu.record(i).fetches == fetches[i] for i in done)
        for task_id in ids:
            assert (out / f"{task_id}.wav").read_bytes() == emu.audio(task_id)


async def test_one_bar_for_every_child_on_a_terminal(tmp_path: Path) -> None:
    import re

    def frames_of(text: str) -> list[tuple[str, str, str]]:
        return re.findall(r"(\d+)/(?:40|\?) (\d+) done (\d+) waiting", text)

    # The tasks stay Pending until the emulator's clock is moved on, which happens only
    # once the bar has shown some of them waiting: however slowly the children start,
    # the bar must show their own counts before it shows the end.
    clock = ManualClock()
    async with Emulator(EmulatorConfig(processing_seconds=0.1, seed=2), clock=clock) as emu:
        ids = emu.create_tasks(40, ready_after=30)

        def move_on_once_some_wait(text: str) -> bool:
            if any(int(waiting) > 0 for _, _, waiting in frames_of(text)):
                clock.advance(31)
                return True
            return False

        text, code = await run_on_terminal(
            [*AIOTTS, "fetch", *ids, "--out", str(tmp_path), "--processes", "2"],
            cli_env(emu, COLUMNS="160", TERM="xterm"),
            move_on_once_some_wait,
        )
    assert code == ExitCode.OK
    assert frames_of(text)[-1] == ("40", "40", "0")  # the last frame: all ended, none waiting
    assert "40/40" in text  # the total, once both children told theirs
