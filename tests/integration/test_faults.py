"""Retries and odd encodings on single calls: what a GET survives, and what it does not."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from aiotts import RetryPolicy, ServerError, TaskStatus
from aiotts.emulator import Emulator, EmulatorConfig
from tests.helpers import client_for, temp_files

pytestmark = pytest.mark.anyio

BIG = 600_000  # bytes of WAV: large enough to be streamed, not read whole


async def test_cut_bodies_are_retried_and_leave_no_file_behind(tmp_path: Path) -> None:
    config = EmulatorConfig(pending_seconds=0, processing_seconds=0, audio_bytes=BIG)
    async with Emulator(config) as emu:
        ids = emu.create_tasks(20)
        emu.set_faults(cut_share=0.5)
        async with client_for(emu) as client:
            for task_id in ids:
                saved = await client.download(task_id, tmp_path)
                assert saved.path.read_bytes() == emu.audio(task_id)
            retries = client._session.counters.retries
        started = sum(emu.record(i).audio_started for i in ids)
    assert started > 20  # some bodies really were cut and fetched again
    assert retries == started - 20
    assert temp_files(tmp_path) == []


async def test_a_body_cut_every_time_fails_cleanly_after_the_budget(tmp_path: Path) -> None:
    config = EmulatorConfig(pending_seconds=0, processing_seconds=0, audio_bytes=BIG)
    async with Emulator(config) as emu:
        task_id = emu.create_tasks(1)[0]
        emu.set_faults(cut_share=1.0)
        retry = RetryPolicy(first_delay=0.01, max_delay=0.02, max_attempts=4)
        async with client_for(emu, retry=retry) as client:
            with pytest.raises(ServerError, match="connection failed mid-request"):
                await client.download(task_id, tmp_path)
        assert emu.record(task_id).audio_started == 4
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "knobs",
    [
        {"escape_share": 1.0},
        {"reorder_keys_share": 1.0},
        {"pretty_share": 1.0},
        {"escape_share": 1.0, "reorder_keys_share": 1.0, "pretty_share": 1.0},
    ],
)
@pytest.mark.parametrize("size", [3_000, BIG])
async def test_escaped_and_reordered_bodies_decode_to_the_same_bytes(
    knobs: dict[str, float], size: int, tmp_path: Path
) -> None:
    config = EmulatorConfig(pending_seconds=0, processing_seconds=0, audio_bytes=size)
    async with Emulator(config) as emu:
        task_id = emu.create_tasks(["escapes"])[0]
        emu.set_faults(**knobs)
        async with client_for(emu) as client:
            saved = await client.download(task_id, tmp_path)
            fetched = await client.fetch(task_id)
        assert saved.path.read_bytes() == emu.audio(task_id)
        assert fetched.results is not None and fetched.results[0].data == emu.audio(task_id)


async def test_5xx_and_429_are_retried_with_retry_after(tmp_path: Path) -> None:
    config = EmulatorConfig(pending_seconds=0, processing_seconds=0)
    async with Emulator(config) as emu:
        ids = emu.create_tasks(30)
        async with client_for(emu) as client:
            await client.status(ids[0])  # token first
            emu.set_faults(server_error_share=0.3, rate_limit_share=0.1, retry_after=0.1)
            for task_id in ids:
                assert (await client.fetch(task_id)).status is TaskStatus.COMPLETED
            counters = client._session.counters
        stats = emu.stats()
    assert stats.count(status=429) > 0 and stats.count(status=503) + stats.count(status=500) > 0
    assert counters.retries == stats.count(status=429) + sum(
        stats.count(status=s) for s in (500, 502, 503)
    )


@pytest.mark.parametrize("http_date", [False, True])
async def test_retry_after_is_honoured_in_seconds_and_as_a_date(http_date: bool) -> None:
    config = EmulatorConfig(pending_seconds=0, processing_seconds=0)
    async with Emulator(config) as emu:
        task_id = emu.create_tasks(1)[0]
        async with client_for(emu) as client:
            await client.status(task_id)
            emu.set_faults(rate_limit_share=1.0, retry_after=2.0, retry_after_http_date=http_date)

            async def heal() -> None:
                await anyio.sleep(0.5)
                emu.set_faults()

            started = time.monotonic()
            async with anyio.create_task_group() as tg:
                tg.start_soon(heal)
                await client.status(task_id)
            waited = time.monotonic() - started
        assert emu.stats().count("status", 429) == 1
    # A date has one-second resolution: it may say as little as one second from now.
    assert waited >= (0.9 if http_date else 1.9)


async def test_cancelling_a_download_leaves_no_file_and_is_not_swallowed(tmp_path: Path) -> None:
    config = EmulatorConfig(pending_seconds=0, processing_seconds=0, audio_bytes=BIG)
    async with Emulator(config) as emu:
        task_id = emu.create_tasks(1)[0]
        emu.set_faults(trickle_share=1.0, trickle_chunk_bytes=4096, trickle_delay=0.01)
        async with client_for(emu) as client:
            with anyio.move_on_after(0.3) as scope:
                await client.download(task_id, tmp_path)
            assert scope.cancelled_caught
            assert list(tmp_path.iterdir()) == []
            emu.set_faults()
            saved = await client.download(task_id, tmp_path)  # the client still works
        assert saved.path.read_bytes() == emu.audio(task_id)


async def test_cancelling_during_a_token_request_is_not_swallowed() -> None:
    config = EmulatorConfig(pending_seconds=0, processing_seconds=0)
    async with Emulator(config) as emu:
        emu.set_faults(latency=2.0)
        async with client_for(emu) as client:
            with anyio.move_on_after(0.2) as scope:
                await client.status("x")
            assert scope.cancelled_caught
            emu.set_faults()
            assert (await client.status("x")).status is TaskStatus.NOT_EXIST
