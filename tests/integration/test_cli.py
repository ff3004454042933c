"""The command line as a user runs it: real subprocesses against the emulator."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio
import orjson
import pytest

from aiotts import OutcomeState, read_manifest
from aiotts.cli import ExitCode
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


async def test_fetch_ids_as_arguments(emulator: Emulator, tmp_path: Path) -> None:
    ids = emulator.create_tasks(3)
    result = await run(["fetch", *ids, "--out", str(tmp_path)], emulator)
    assert result.returncode == ExitCode.OK, result.stderr.decode()
    for task_id in ids:
        assert (tmp_path / f"{task_id}.wav").read_bytes() == emulator.audio(task_id)
    assert b"done" in result.stdout
    assert read_manifest(tmp_path / "aiotts.db").keys() == set(ids)


async def test_fetch_ids_from_a_file_and_from_stdin(emulator: Emulator, tmp_path: Path) -> None:
    ids = emulator.create_tasks(4)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join([ids[0], "", ids[1], "  ", ids[1]]) + "\n")
    result = await run(
        ["fetch", "--ids-file", str(ids_file), "--out", str(tmp_path / "a")], emulator
    )
    assert result.returncode == ExitCode.OK, result.stderr.decode()
    assert sorted(p.name for p in (tmp_path / "a").glob("*.wav")) == sorted(
        f"{i}.wav" for i in ids[:2]
    )
    piped = ("\n".join(ids[2:]) + "\n").encode()
    result = await run(
        ["fetch", "--ids-file", "-", "--out", str(tmp_path / "b"), "--json"], emulator, stdin=piped
    )
    assert result.returncode == ExitCode.OK, result.stderr.decode()
    assert {orjson.loads(line)["id"] for line in result.stdout.splitlines()} == set(ids[2:])


async def test_json_output_is_one_object_per_line_and_nothing_else(
    emulator: Emulator, tmp_path: Path
) -> None:
    ids = emulator.create_tasks(5) + emulator.create_tasks(2, fail=True) + ["TTSunknown"]
    result = await run(["fetch", *ids, "--out", str(tmp_path), "--json"], emulator)
    assert result.returncode == ExitCode.TASKS_FAILED
    lines = result.stdout.decode().splitlines()
    assert len(lines) == len(ids)
    records = [orjson.loads(line) for line in lines]
    assert all(isinstance(r, dict) for r in records)
    assert {r["id"] for r in records} == set(ids)
    states = {r["id"]: r["state"] for r in records}
    assert states["TTSunknown"] == "missing"
    assert sorted(states.values()).count("done") == 5
    assert sorted(states.values()).count("failed") == 2
    assert result.stderr == b""  # not a terminal: no progress bar


async def test_the_emulator_verb_serves_until_interrupted() -> None:
    async with await anyio.open_process(
        [*AIOTTS, "emulator", "--port", "0"], env=cli_env(None)
    ) as process:
        assert process.stdout is not None
        first = b""
        with anyio.fail_after(20):
            while not first.endswith(b"\n"):
                first += await process.stdout.receive(1)
        url = first.decode().split()[-1]
        assert url.startswith("http://127.0.0.1:")
        import aiohttp

        async with (
            aiohttp.ClientSession() as http,
            http.get(url + "/v5.0/ocr/ConvertTextToSpeechTrial", params={"id": "TTSx"}) as response,
        ):
            assert orjson.loads(await response.read())["taskStatus"] == "NotExist"
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(20):
            assert await process.wait() == 0


async def test_the_demo_leaves_playable_files(tmp_path: Path) -> None:
    import wave

    out = tmp_path / "demo"
    result = await run(["demo", "--count", "12", "--out", str(out)], None)
    assert result.returncode == ExitCode.OK, result.stderr.decode()
    files = sorted(out.glob("*.wav"))
    assert len(files) == 12
    for path in files:
        with wave.open(str(path)) as wav:
            assert wav.getnframes() > 22050  # over a second of sound
            frames = wav.readframes(wav.getnframes())
            assert frames.strip(b"\x00")  # not silence
    assert b"tasks/s" in result.stdout


async def test_ctrl_c_mid_fetch_then_resume_finishes_without_duplicates(tmp_path: Path) -> None:
    config = EmulatorConfig(
        pending_seconds=(0.5, 4.0), processing_seconds=(0.1, 1.0), audio_bytes=300_000, seed=4
    )
    async with Emulator(config) as emu:
        ids = emu.create_tasks(200)
        ids_file = tmp_path / "ids.txt"
        ids_file.write_text("\n".join(ids) + "\n")
        out = tmp_path / "out"
        args = ["fetch", "--ids-file", str(ids_file), "--out", str(out), "--json"]
        async with await anyio.open_process([*AIOTTS, *args], env=cli_env(emu)) as process:
            assert process.stdout is not None
            seen = b""
            with anyio.fail_after(30):
                while seen.count(b"\n") < 20:
                    seen += await process.stdout.receive()
            process.send_signal(signal.SIGINT)
            with anyio.fail_after(30):
                code = await process.wait()
            assert process.stderr is not None
        assert code == ExitCode.INTERRUPTED
        assert temp_files(out) == []
        first = read_manifest(out / "aiotts.db")
        done = {i for i, e in first.items() if e.state is OutcomeState.DONE}
        assert 20 <= len(done) < 200
        assert OutcomeState.CANCELLED in {e.state for e in first.values()}
        fetches = {i: emu.record(i).fetches for i in done}

        resumed = await run([*args, "--resume"], emu)
        assert resumed.returncode == ExitCode.OK, resumed.stderr.decode()
        lines = [orjson.loads(line) for line in resumed.stdout.splitlines()]
        assert sorted(line["id"] for line in lines) == sorted(ids)
        assert {line["id"] for line in lines if line["resumed"]} == done
        for task_id in done:
            assert emu.record(task_id).fetches == fetches[task_id]
        for task_id in ids:
            assert (out / f"{task_id}.wav").read_bytes() == emu.audio(task_id)
        assert temp_files(out) == []


async def test_the_progress_bar_updates_on_a_terminal(tmp_path: Path) -> None:
    # Ten tasks are ready at once; the emulator's clock readies ten more once the bar has
    # shown 10/40, and the last twenty once it has shown 20/40: however slowly the
    # process starts, the bar has three counts to show on its way.
    clock = ManualClock()
    async with Emulator(EmulatorConfig(processing_seconds=0.1), clock=clock) as emu:
        ids = [
            *emu.create_tasks(10, ready_after=0),
            *emu.create_tasks(10, ready_after=30),
            *emu.create_tasks(20, ready_after=60),
        ]
        steps = ["10/40", "20/40"]  # what the bar must show before the clock moves on

        def step_on_each_count(text: str) -> bool:
            while steps and steps[0] in text:
                steps.pop(0)
                clock.advance(30.5)
            return not steps

        text, code = await run_on_terminal(
            [*AIOTTS, "fetch", *ids, "--out", str(tmp_path)],
            cli_env(emu, COLUMNS="160", TERM="xterm"),
            step_on_each_count,
        )
    assert code == ExitCode.OK
    counts = {int(n) for n in re.findall(r"\b(\d+)/40\b", text)}
    assert {10, 20, 40} <= counts  # the bar moved through several counts
    assert "waiting" in text
    assert "MB" in text


async def test_no_secret_or_token_in_anything_printed_or_logged(
    emulator: Emulator, tmp_path: Path
) -> None:
    good = emulator.create_tasks(3)
    bad = emulator.create_tasks(1, fail=True)
    outputs = []
    tokens: set[str] = set()
    for args in (
        ["fetch", *good, *bad, "TTSnone", "--out", str(tmp_path), "-v"],
        ["fetch", *good, "--out", str(tmp_path / "j"), "--json", "-v"],
        ["status", good[0], "-v"],
        ["submit", "secret scan", "-v", "--wait", "--out", str(tmp_path)],
    ):
        result = await run(args, emulator)
        outputs.append(result.stdout + result.stderr)
        tokens |= set(emulator._state.authority._tokens)  # every token the emulator issued
        emulator.expire_tokens()  # so the next run starts with a fresh token
    wrong = await run(["status", good[0], "-v"], emulator, ASPOSE_CLIENT_SECRET="wrong-xyz-123")
    outputs.append(wrong.stdout + wrong.stderr)
    assert len(tokens) >= 4
    assert any(b"DEBUG" in out for out in outputs)  # debug logging really was on
    manifest = (tmp_path / "aiotts.db").read_bytes()
    for blob in [*outputs, manifest]:
        assert emulator.client_secret.encode() not in blob
        assert b"wrong-xyz-123" not in blob
        for token in tokens:
            assert token.encode() not in blob
