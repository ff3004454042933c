"""submit, fetch, status, cancel, download and wait, one task at a time, over HTTP."""

from __future__ import annotations

import wave
from pathlib import Path

import anyio
import pytest

from aiotts import (
    SavedAudio,
    SubmitUncertainError,
    TaskFailedError,
    TaskNotFoundError,
    TaskNotReadyError,
    TaskStatus,
    TaskTimeoutError,
    TrialLimitError,
    UsageError,
)
from aiotts.emulator import Emulator, EmulatorConfig, ManualClock
from tests.helpers import client_for, temp_files

pytestmark = pytest.mark.anyio


async def test_submit_returns_the_emulators_task_id(emulator: Emulator) -> None:
    async with client_for(emulator) as client:
        task_id = await client.submit("Read this text aloud")
    record = emulator.record(task_id)
    assert record.text == "Read this text aloud"
    assert task_id.startswith("TTS")


async def test_fetch_gives_the_whole_typed_envelope(emulator: Emulator) -> None:
    done, failed = emulator.create_tasks(["good"]), emulator.create_tasks(["bad"], fail=True)
    async with client_for(emulator) as client:
        result = await client.fetch(done[0])
        error = await client.fetch(failed[0])
        missing = await client.fetch("TTS00000-0000-4000-8000-000000000000")
    assert result.status is TaskStatus.COMPLETED
    assert result.response_code == "Ok"
    assert result.results is not None and result.results[0].type == "WavFile"
    assert result.results[0].data == emulator.audio(done[0])
    assert error.status is TaskStatus.ERROR
    assert error.messages == emulator.record(failed[0]).messages
    assert missing.status is TaskStatus.NOT_EXIST


async def test_status_uses_get_task_status_and_carries_no_audio(emulator: Emulator) -> None:
    task_id = emulator.create_tasks(["status"], pending=60)[0]
    async with client_for(emulator) as client:
        result = await client.status(task_id)
    assert result.status is TaskStatus.PENDING
    assert result.results is None
    assert emulator.record(task_id).status_requests == 1
    assert emulator.record(task_id).fetches == 0


async def test_cancel_makes_the_task_not_exist(emulator: Emulator) -> None:
    task_id = emulator.create_tasks(["cancel me"], pending=60)[0]
    async with client_for(emulator) as client:
        await client.cancel(task_id)
        assert (await client.status(task_id)).status is TaskStatus.NOT_EXIST
    assert emulator.record(task_id).cancelled


async def test_download_into_a_folder_and_to_a_file_name(
    emulator: Emulator, tmp_path: Path
) -> None:
    task_id = emulator.create_tasks(["A sentence long enough to be a few seconds of audio."])[0]
    async with client_for(emulator) as client:
        saved = await client.download(task_id, tmp_path)
        named = await client.download(task_id, tmp_path / "named.wav")
    assert saved.path == tmp_path / f"{task_id}.wav"
    assert named.path == tmp_path / "named.wav"
    for path in (saved.path, named.path):
        assert path.read_bytes() == emulator.audio(task_id)
        with wave.open(str(path)) as wav:
            assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (1, 22050, 3)
    assert saved.bytes_written == len(emulator.audio(task_id))
    assert temp_files(tmp_path) == []


async def test_download_refuses_what_is_not_completed(emulator: Emulator, tmp_path: Path) -> None:
    pending = emulator.create_tasks(["later"], pending=60)[0]
    failed = emulator.create_tasks(["broken"], fail=True)[0]
    async with client_for(emulator) as client:
        with pytest.raises(TaskNotReadyError, match="Pending"):
            await client.download(pending, tmp_path)
        with pytest.raises(TaskFailedError) as caught:
            await client.download(failed, tmp_path)
        with pytest.raises(TaskNotFoundError):
            await client.download("TTS00000-0000-4000-8000-000000000000", tmp_path)
    assert caught.value.messages == emulator.record(failed).messages
    assert list(tmp_path.iterdir()) == []


async def test_wait_polls_until_done_then_saves(tmp_path: Path) -> None:
    clock = ManualClock()  # Pending, then Processing, then done: each once it was polled
    config = EmulatorConfig(pending_seconds=0.3, processing_seconds=0.3)
    async with Emulator(config, clock=clock) as emu, client_for(emu) as client:
        task_id = await client.submit("wait for me")
        async with anyio.create_task_group() as group:
            saved: list[SavedAudio] = []

            async def wait() -> None:
                saved.append(await client.wait(task_id, tmp_path, timeout=30))

            group.start_soon(wait)
            with anyio.fail_after(20):
                for fetches in (1, 2):
                    while emu.record(task_id).fetches < fetches:
                        await anyio.sleep(0.01)
                    clock.advance(0.31)
        assert saved[0].path.read_bytes() == emu.audio(task_id)
        assert emu.record(task_id).fetches >= 3  # it was polled while not ready, twice


async def test_wait_has_a_deadline(emulator: Emulator, tmp_path: Path) -> None:
    task_id = emulator.create_tasks(["never"], pending=3600)[0]
    async with client_for(emulator) as client:
        with anyio.fail_after(5):
            with pytest.raises(TaskTimeoutError):
                await client.wait(task_id, tmp_path, timeout=0.5)
    assert temp_files(tmp_path) == []


async def test_wait_reports_a_failed_task(emulator: Emulator, tmp_path: Path) -> None:
    task_id = emulator.create_tasks(["fails"], fail=True)[0]
    async with client_for(emulator) as client:
        with pytest.raises(TaskFailedError):
            await client.wait(task_id, tmp_path, timeout=5)


async def test_a_submit_that_reached_the_server_is_not_retried(emulator: Emulator) -> None:
    async with client_for(emulator) as client:
        await client.status("TTS-warm-up")  # the token first: the fault hits every endpoint
        emulator.set_faults(server_error_share=1.0, server_error_statuses=(502,))
        with pytest.raises(SubmitUncertainError) as caught:
            await client.submit("billable text")
    assert caught.value.text == "billable text"
    assert caught.value.status == 502
    assert emulator.stats().count("submit") == 1


async def test_a_submit_that_never_connected_is_retried() -> None:
    from aiotts import ConnectError
    from tests.helpers import FAST_RETRY

    async with client_for_port(FAST_RETRY) as client:
        with pytest.raises(ConnectError, match="cannot connect"):
            await client.submit("x")
        assert client.counters["submit"] == FAST_RETRY.max_attempts


def client_for_port(retry: object) -> object:
    import socket

    from aiotts import TTSClient

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return TTSClient(trial=True, base_url=f"http://127.0.0.1:{port}", retry=retry)  # type: ignore[arg-type]


async def test_empty_text_is_refused_before_sending(emulator: Emulator) -> None:
    async with client_for(emulator) as client:
        with pytest.raises(UsageError, match="empty"):
            await client.submit("   ")
    assert emulator.stats().count() == 0


async def test_trial_mode_uses_the_trial_endpoints(tmp_path: Path) -> None:
    config = EmulatorConfig(pending_seconds=0, processing_seconds=0, trial_daily_limit=3)
    async with Emulator(config) as emu, client_for(emu, trial=True) as client:
        task_id = await client.submit("a trial text")
        saved = await client.wait(task_id, tmp_path, timeout=10)
        assert saved.path.read_bytes() == emu.audio(task_id)
        assert (await client.fetch(task_id)).status is TaskStatus.COMPLETED
        with pytest.raises(TrialLimitError, match="500"):
            await client.submit("x" * 501)
        await client.submit("two")
        await client.submit("three")
        with pytest.raises(TrialLimitError, match="429"):
            await client.submit("four: over the daily limit")
        stats = emu.stats()
    assert stats.token_requests == 0
    assert stats.count("trial_submit", 200) == 3
    assert stats.count("trial_fetch") >= 2
