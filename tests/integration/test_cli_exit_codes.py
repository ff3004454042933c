"""Every exit code of the README's table, for every verb that can end with it, as a user
meets it: real ``aiotts`` subprocesses against the emulator or a misbehaving server.

Each test runs the verbs side by side against one server; every failure must come out as
its exit code and one line on standard error, never a traceback.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import orjson
import pytest
from aiohttp import web

from aiotts import OutcomeState, read_manifest
from aiotts.cli import ExitCode
from aiotts.emulator import Emulator, EmulatorConfig
from tests.helpers import cli_env
from tests.hostile.servers import HostileServer

pytestmark = pytest.mark.anyio

AIOTTS = [sys.executable, "-m", "aiotts"]

Result = tuple[int, bytes, bytes]  # exit code, stdout, stderr


async def run_all(commands: dict[str, Sequence[str]], env: dict[str, str]) -> dict[str, Result]:
    """Run every command at once; what each ended with, by name."""
    results: dict[str, Result] = {}

    async def one(name: str, args: Sequence[str]) -> None:
        done = await anyio.run_process([*AIOTTS, *args], env=env, check=False)
        results[name] = (done.returncode, done.stdout, done.stderr)

    async with anyio.create_task_group() as group:
        for name, args in commands.items():
            group.start_soon(one, name, args)
    return results


def assert_clean_exit(results: dict[str, Result], code: ExitCode, *needles: bytes) -> None:
    """Each command ended with ``code`` and said why in one line, without a traceback."""
    for name, (returncode, _, stderr) in results.items():
        assert returncode == code, (name, returncode, stderr.decode())
        assert b"Traceback" not in stderr, (name, stderr.decode())
        lines = [line for line in stderr.splitlines() if line.startswith(b"aiotts:")]
        assert len(lines) == 1, (name, stderr.decode())
        for needle in needles:
            assert needle in lines[0], (name, needle, lines[0])


def single_task_verbs(task_id: str, folder: Path) -> dict[str, list[str]]:
    return {
        "submit": ["submit", "Read this text aloud"],
        "submit --wait": ["submit", "Wait for me", "--wait", "--out", str(folder / "w")],
        "say": ["say", "Say this", "-o", str(folder / "said.wav")],
        "status": ["status", task_id],
        "cancel": ["cancel", task_id],
    }


def every_verb(task_id: str, folder: Path) -> dict[str, list[str]]:
    return {
        "fetch": ["fetch", task_id, "--out", str(folder / "f")],
        **single_task_verbs(task_id, folder),
    }


def assert_fetch_recorded_the_cause(folder: Path, task_id: str, cause: str) -> None:
    entry = read_manifest(folder / "f" / "aiotts.db")[task_id]
    assert entry.state is OutcomeState.ABORTED
    assert entry.error is not None and cause in entry.error


async def test_every_verb_exits_0_when_all_went_well(tmp_path: Path) -> None:
    async with Emulator(EmulatorConfig(pending_seconds=0, processing_seconds=0)) as emu:
        fetched, cancelled = emu.create_tasks(2)
        commands = every_verb(fetched, tmp_path)
        commands["status"] = ["status", fetched, "--json"]
        commands["cancel"] = ["cancel", cancelled]
        results = await run_all(commands, cli_env(emu))
        for name, (returncode, _, stderr) in results.items():
            assert returncode == ExitCode.OK, (name, stderr.decode())
            assert stderr == b"", name
        assert (tmp_path / "f" / f"{fetched}.wav").read_bytes() == emu.audio(fetched)
        submitted = results["submit"][1].decode().strip()
        assert emu.record(submitted).text == "Read this text aloud"
        assert orjson.loads(results["status"][1])["taskStatus"] == "Completed"
        assert (
            results["cancel"][1]
            == f"cancelled {cancelled} (it was Completed; now NotExist)\n".encode()
        )
        assert emu.record(cancelled).cancelled
        # --out DIR names a folder that did not exist: the file is DIR/ID.wav
        waited_id, saved = results["submit --wait"][1].decode().split()
        assert Path(saved) == tmp_path / "w" / f"{waited_id}.wav"
        assert Path(saved).read_bytes() == emu.audio(waited_id)
        assert not (tmp_path / "w.wav").exists()
        said_id = next(i for i in emu.task_ids() if emu.record(i).text == "Say this")
        assert (tmp_path / "said.wav").read_bytes() == emu.audio(said_id)


async def test_exit_1_when_a_task_does_not_end_done(tmp_path: Path) -> None:
    config = EmulatorConfig(pending_seconds=0, processing_seconds=0, error_share=1.0)
    async with Emulator(config) as emu:
        failed = emu.create_tasks(1, fail=True)[0]
        commands = {
            "fetch": ["fetch", failed, "--out", str(tmp_path / "f")],
            "submit --wait": ["submit", "fails", "--wait", "--out", str(tmp_path / "w")],
            "say": ["say", "fails too", "-o", str(tmp_path / "said.wav")],
            "cancel": ["cancel", "TTSunknown-id"],  # the server knows no such task
        }
        results = await run_all(commands, cli_env(emu))
        message = emu.record(failed).messages[0]
    fetch = results.pop("fetch")
    assert fetch[0] == ExitCode.TASKS_FAILED
    (line,) = fetch[2].splitlines()  # the failure named, with the server's message
    assert line.startswith(f"{failed}: failed: ".encode())
    assert message.encode() in line
    assert_clean_exit(results, ExitCode.TASKS_FAILED)
    assert b"knows no task TTSunknown-id" in results["cancel"][2]
    assert b"nothing was cancelled" in results["cancel"][2]
    assert not list(tmp_path.rglob("*.wav"))


async def test_exit_2_for_bad_usage(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    remote = ["--base-url", "http://example.com"]  # credentials over plain http: refused
    commands = {
        "fetch --ids": ["fetch", "--ids", "x", "--out", str(tmp_path)],  # no prefix match
        "fetch": ["fetch", "--ids-file", str(empty), "--out", str(tmp_path)],
        "submit": ["submit", "text", "--out", str(tmp_path)],  # --out without --wait
        "say": ["say", "text"],  # -o is missing
        "cancel": ["cancel", "TTSx", *remote],
    }
    env = cli_env(None, ASPOSE_CLIENT_ID="id", ASPOSE_CLIENT_SECRET="secret")
    results = await run_all(commands, env)
    results["status"] = (await run_all({"x": ["status", "TTSx"]}, cli_env(None)))["x"]
    for name, (returncode, _, stderr) in results.items():
        assert returncode == ExitCode.USAGE, (name, stderr.decode())
        assert b"Traceback" not in stderr
    assert b"unrecognized arguments: --ids" in results["fetch --ids"][2]
    assert b"holds no ids" in results["fetch"][2]
    assert b"--out goes with --wait" in results["submit"][2]
    assert b"unencrypted" in results["cancel"][2]
    assert b"ASPOSE_CLIENT_ID" in results["status"][2]  # no credentials anywhere


@pytest.mark.parametrize(
    ("knobs", "cause"),
    [
        pytest.param({"token_failure_limit": 1000}, b"refused the credentials", id="refused"),
        pytest.param({"token_failure_limit": 0}, b"answered 429", id="token-lockout"),
    ],
)
async def test_exit_3_when_the_token_endpoint_refuses(
    tmp_path: Path, knobs: dict[str, int], cause: bytes
) -> None:
    config = EmulatorConfig(pending_seconds=0, processing_seconds=0, **knobs)
    async with Emulator(config) as emu:
        task_id = emu.create_tasks(1)[0]
        commands = every_verb(task_id, tmp_path)
        if knobs["token_failure_limit"] == 0:  # the same path as a refusal: a few verbs
            commands = {n: commands[n] for n in ("fetch", "say", "cancel")}
        results = await run_all(commands, cli_env(emu, ASPOSE_CLIENT_SECRET="wrong"))
        assert emu.task_ids() == (task_id,)  # nothing was submitted
        assert emu.record(task_id).cancelled is False
    assert_clean_exit(results, ExitCode.AUTHENTICATION, cause)
    assert_fetch_recorded_the_cause(tmp_path, task_id, cause.decode())


async def test_exit_3_when_every_token_is_refused_by_the_api(tmp_path: Path) -> None:
    async with Emulator(EmulatorConfig(pending_seconds=0, processing_seconds=0)) as emu:
        task_id = emu.create_tasks(1)[0]
        emu.set_faults(always_401=True)
        results = await run_all(every_verb(task_id, tmp_path), cli_env(emu))
    assert_clean_exit(results, ExitCode.AUTHENTICATION, b"401")
    assert_fetch_recorded_the_cause(tmp_path, task_id, "401")


async def test_exit_3_when_the_token_cannot_be_sent(tmp_path: Path) -> None:
    """A token the HTTP layer refuses to put in a header (it holds CRLF)."""

    async def bad_token(request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"access_token": "abc\r\nX-Injected: 1", "expires_in": 3600, "token_type": "Bearer"}
        )

    async with HostileServer() as server:
        server.route("POST", "/connect/token", bad_token)
        env = server.cli_env()
        commands = every_verb("TTSx", tmp_path)
        results = await run_all({n: commands[n] for n in ("fetch", "submit", "status")}, env)
        assert all(b"X-Injected" not in str(r.headers).encode() for r in server.received)
    for name, (returncode, _, stderr) in results.items():
        assert b"Traceback" not in stderr, (name, stderr.decode())
        assert returncode in (ExitCode.AUTHENTICATION, ExitCode.SERVICE), (name, stderr)
        assert len(stderr.splitlines()) == 1, (name, stderr.decode())
    assert_fetch_recorded_the_cause(tmp_path, "TTSx", "the batch stopped: ")


async def test_exit_4_when_the_service_cannot_be_reached(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    commands = {
        name: [*args, "--retries", "0"] for name, args in every_verb("TTSx", tmp_path).items()
    }
    # No token: the poll fails. A record of its own: one writer per store.
    trial_record = str(tmp_path / "trial.db")
    trial = {"fetch --trial": [*commands["fetch"], "--trial", "--manifest", trial_record]}
    results = await run_all(
        {**commands, **trial},
        cli_env(
            None,
            ASPOSE_CLIENT_ID="id",
            ASPOSE_CLIENT_SECRET="secret",
            AIOTTS_BASE_URL=f"http://127.0.0.1:{port}",
        ),
    )
    assert_clean_exit(results, ExitCode.SERVICE, b"cannot connect")
    assert_fetch_recorded_the_cause(tmp_path, "TTSx", "cannot connect")


async def test_exit_5_when_a_file_cannot_be_written(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    async with Emulator(EmulatorConfig(pending_seconds=0, processing_seconds=0)) as emu:
        task_id = emu.create_tasks(1)[0]
        commands = {
            "fetch": ["fetch", task_id, "--out", str(blocked / "sub")],
            "submit --wait": ["submit", "text", "--wait", "--out", str(blocked / "sub")],
            "say": ["say", "text", "-o", str(blocked / "said.wav")],
        }
        results = await run_all(commands, cli_env(emu))
    assert_clean_exit(results, ExitCode.OUTPUT, str(blocked).encode())


async def test_exit_6_when_a_submit_may_have_reached_the_server(tmp_path: Path) -> None:
    async def cut_the_post(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()  # the body arrived; the answer never leaves
        return web.Response()

    async with HostileServer() as server:
        for path in ("/v5.0/ocr/ConvertTextToSpeech", "/v5.0/ocr/ConvertTextToSpeechTrial"):
            server.route("POST", path, cut_the_post)
        env = server.cli_env()
        commands = {
            "submit": ["submit", "billable text"],
            "submit --wait": ["submit", "billable", "--wait", "--out", str(tmp_path)],
            "say": ["say", "billable", "-o", str(tmp_path / "said.wav")],
        }
        results = await run_all(commands, env)
        posts = [r for r in server.received if r.method == "POST" and "Convert" in r.path]
    assert len(posts) == len(commands)  # each sent once: never retried
    assert_clean_exit(results, ExitCode.SUBMIT_UNCERTAIN, b"may have reached the server")


async def interrupt(
    args: Sequence[str], env: dict[str, str], started: Callable[[], bool]
) -> tuple[int, bytes]:
    """Run ``aiotts args``, send SIGINT once ``started()``; the exit code and stderr."""
    async with await anyio.open_process([*AIOTTS, *args], env=env) as process:
        with anyio.fail_after(20):
            while not started():
                await asyncio.sleep(0.02)
        process.send_signal(signal.SIGINT)
        assert process.stderr is not None
        stderr = b""
        with anyio.fail_after(20):
            async for chunk in process.stderr:
                stderr += chunk
            code = await process.wait()
    return code, stderr


async def test_exit_130_on_ctrl_c(tmp_path: Path) -> None:
    hold = anyio.Event()

    async def hang(request: web.Request) -> web.StreamResponse:
        await hold.wait()
        return web.Response(status=500)

    config = EmulatorConfig(pending_seconds=3600, processing_seconds=0)
    async with Emulator(config) as emu, HostileServer() as server:
        server.route("GET", "/v5.0/ocr/Utilities/GetTaskStatus", hang)
        pending = emu.create_tasks(1)[0]
        env = cli_env(emu)
        hostile_env = server.cli_env()
        known = set(emu.task_ids())

        def submitted() -> bool:  # and asked about: the client holds the id
            return any(emu.record(i).fetches for i in set(emu.task_ids()) - known)

        def fetched() -> bool:
            return emu.record(pending).fetches > 0

        def asked() -> bool:
            return any("GetTaskStatus" in r.path for r in server.received)

        cases: dict[str, tuple[list[str], dict[str, str], Callable[[], bool]]] = {
            "fetch": (["fetch", pending, "--out", str(tmp_path / "f")], env, fetched),
            "say": (["say", "slow", "-o", str(tmp_path / "s" / "said.wav")], env, submitted),
            "submit --wait": (
                ["submit", "slow", "--wait", "--out", str(tmp_path / "w")],
                env,
                submitted,
            ),
            "status": (["status", "TTSx"], hostile_env, asked),
            "cancel": (["cancel", "TTSx"], hostile_env, asked),
        }
        results: dict[str, tuple[int, bytes]] = {}
        for name, (args, case_env, started) in cases.items():
            known = set(emu.task_ids())
            server.received.clear()
            results[name] = await interrupt(args, case_env, started)
            if name in ("say", "submit --wait"):
                (new_id,) = set(emu.task_ids()) - known
                assert f"task {new_id} was submitted".encode() in results[name][1]
                assert f"aiotts fetch {new_id} --out".encode() in results[name][1]
                assert b"--resume" not in results[name][1]
        hold.set()
    for name, (code, stderr) in results.items():
        assert code == ExitCode.INTERRUPTED, (name, stderr.decode())
        assert b"Traceback" not in stderr, (name, stderr.decode())
    assert b"--resume" in results["fetch"][1]
    entry = read_manifest(tmp_path / "f" / "aiotts.db")[pending]
    assert entry.state is OutcomeState.CANCELLED
