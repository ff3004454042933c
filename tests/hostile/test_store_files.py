"""A store where it cannot be written: a read-only folder, a full disk. Each is a clear
``OutputError`` naming the store, before any request is sent.

The suite may run as root, who writes anywhere: the command then runs without the
capability to override file permissions (dropped from its bounding set before ``exec``).
A full disk is stood in for by a file-size limit: every write past it fails, as on a disk
with no room left.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from aiotts import Outcome, OutcomeState
from aiotts._store import OutcomeStore
from aiotts.cli import ExitCode
from aiotts.emulator import Emulator, EmulatorConfig
from tests.helpers import cli_env

pytestmark = pytest.mark.anyio

AIOTTS = [sys.executable, "-m", "aiotts"]
HANG_GUARD = 30  # seconds: only so that a regression fails instead of hanging the suite
_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


@pytest.fixture
async def emu() -> Emulator:  # type: ignore[misc]
    async with Emulator(EmulatorConfig(pending_seconds=0, processing_seconds=0)) as emulator:
        yield emulator


def _without_override() -> None:
    """In the child, before exec: root loses the power to write where permissions forbid."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            os._exit(99)  # cannot drop it: the test skips on this code


def _small_files() -> None:
    """In the child, before exec: no file may grow past 2 KiB (a disk with no room)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))


async def fetch(
    args: list[str], emu: Emulator, before_exec: Callable[[], None] | None
) -> tuple[int, str]:
    def run() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*AIOTTS, "fetch", *args],
            env=cli_env(emu),
            capture_output=True,
            check=False,
            timeout=HANG_GUARD,
            preexec_fn=before_exec,
        )

    done = await anyio.to_thread.run_sync(run)  # the emulator keeps serving meanwhile
    return done.returncode, done.stderr.decode()


async def test_a_store_in_a_read_only_folder_is_refused_before_any_request(
    emu: Emulator, tmp_path: Path
) -> None:
    [task_id] = emu.create_tasks(1)
    tmp_path.chmod(0o755)
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o555)
    store = folder / "aiotts.db"
    out = tmp_path / "out"
    code, stderr = await fetch(
        [task_id, "--out", str(out), "--manifest", str(store)],
        emu,
        _without_override if os.geteuid() == 0 else None,
    )
    if code == 99:
        pytest.skip("cannot drop the capability to override file permissions here")
    assert code == ExitCode.OUTPUT, stderr
    assert str(store) in stderr and "Traceback" not in stderr
    assert "folder you can write to" in stderr
    assert emu.stats().count() == 0  # not even a token was asked for


async def test_a_full_disk_under_the_store_is_refused_before_any_request(
    emu: Emulator, tmp_path: Path
) -> None:
    [task_id] = emu.create_tasks(1)
    store = tmp_path / "aiotts.db"
    with OutcomeStore(store) as earlier:  # an existing store: it only needs to grow
        earlier.append(Outcome("TTSearlier", OutcomeState.MISSING, finished_at=1.0))
    code, stderr = await fetch(
        [task_id, "--out", str(tmp_path / "out"), "--manifest", str(store), "--resume"],
        emu,
        _small_files,
    )
    assert code == ExitCode.OUTPUT, stderr
    assert f"cannot use the store {store}" in stderr and "Traceback" not in stderr
    assert emu.stats().count() == 0
    with OutcomeStore(store, read_only=True) as after:  # and it is still whole
        assert [e.task_id for e in after.entries()] == ["TTSearlier"]
