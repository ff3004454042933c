"""``python -m aiotts.emulator`` as a subprocess, and EmulatorProcess over the admin API."""

from __future__ import annotations

import base64
import hashlib
import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from aiotts.emulator import (
    DEFAULT_CLIENT_ID,
    EmulatorConfig,
    EmulatorProcess,
    Faults,
    TaskState,
    synthesize,
)

LISTENING = "aiotts emulator listening on http://127.0.0.1:"


def start(*flags: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiotts.emulator", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith(LISTENING), first + (proc.stderr.read() if proc.stderr else "")
    return proc, first.removeprefix("aiotts emulator listening on ").strip()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_subprocess_serves_and_exits_on_signal(sig: signal.Signals) -> None:
    proc, url = start("--pending-seconds", "0", "--log-level", "debug")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"client id: {DEFAULT_CLIENT_ID}"
        status, body = get(url + "/v5.0/ocr/ConvertTextToSpeechTrial?id=nope")
        assert status == 200
        assert json.loads(body)["taskStatus"] == "NotExist"
        proc.send_signal(sig)
        assert proc.wait(timeout=15) == 0
        assert proc.stderr is not None
        log = proc.stderr.read()
        assert "GET /v5.0/ocr/ConvertTextToSpeechTrial id=nope -> 200" in log
    finally:
        proc.kill()
        proc.wait()


def test_flags_reach_the_server() -> None:
    proc, url = start("--server-error-share", "1", "--server-error-statuses", "502")
    try:
        status, _ = get(url + "/v5.0/ocr/ConvertTextToSpeechTrial?id=x")
        assert status == 502
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0


def test_bad_flag_values_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aiotts.emulator", "--port", "0", "--error-share", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "error_share" in result.stderr
    assert result.stdout == ""


def test_port_in_use_exits_1() -> None:
    proc, url = start()
    try:
        port = url.rsplit(":", 1)[1]
        result = subprocess.run(
            [sys.executable, "-m", "aiotts.emulator", "--port", port],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1
        assert "cannot serve" in result.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_emulator_process_drives_the_admin_api() -> None:
    config = EmulatorConfig(pending_seconds=0, processing_seconds=0, seed=3)
    with EmulatorProcess(config, faults=Faults(escape_share=1.0)) as emu:
        assert emu.url.startswith("http://127.0.0.1:")
        assert emu.client_id == DEFAULT_CLIENT_ID
        assert emu.faults() == Faults(escape_share=1.0)
        ids = emu.create_tasks(["from afar"], audio_bytes=20_000)
        ids += emu.create_tasks(2, ready_after=(100, 200), fail=True)
        assert emu.task_ids() == tuple(ids)
        status, body = get(f"{emu.url}/v5.0/ocr/ConvertTextToSpeechTrial?id={ids[0]}")
        assert status == 200
        assert b"\\/" in body  # the faults passed on the command line are in force
        data = json.loads(body)["results"][0]["data"]
        assert base64.b64decode(data) == synthesize("from afar", size=20_000)
        record = emu.record(ids[0])
        assert record.state is TaskState.COMPLETED
        assert (record.fetches, record.audio_finished) == (1, 1)
        assert record.wav() == emu.audio(ids[0]) == synthesize("from afar", size=20_000)
        assert emu.record(ids[1]).state is TaskState.PENDING
        emu.advance_clock(200)
        assert emu.record(ids[1]).state is TaskState.ERROR
        records = emu.records()
        assert [r.id for r, _ in records] == ids
        assert records[0][1] == hashlib.sha256(record.wav()).hexdigest()
        stats = emu.stats()
        assert stats.count("trial_fetch", 200) == 1
        assert stats.tasks_created == 3
        emu.set_faults(server_error_share=1.0, server_error_statuses=(503,))
        assert get(f"{emu.url}/v5.0/ocr/ConvertTextToSpeechTrial?id=x")[0] == 503
        emu.reset_stats()
        assert emu.stats().count() == 0
        emu.expire_tokens()
        with pytest.raises(KeyError):
            emu.record("nope")
        with pytest.raises(ValueError, match="400"):
            emu.create_tasks(1, ready_after=-1)
    assert emu.stop() == 0


def test_emulator_process_reports_a_failed_start(tmp_path: Path) -> None:
    emu = EmulatorProcess(extra_args=["--tls-cert", str(tmp_path / "missing.pem")])
    with pytest.raises(RuntimeError, match="did not start"):
        emu.start()
    assert emu.stop() == 2
