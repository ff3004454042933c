"""Soak: 20,000 tasks with every fault on. Nothing lost, and the client's memory and open
file descriptors stay flat over the run (sampled every half second, not only at the end).

The emulator runs in its own process, so what is measured here is the client alone.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from pathlib import Path

import anyio
import pytest

from aiotts import Limits, OutcomeState, read_manifest
from aiotts.emulator import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    EmulatorConfig,
    EmulatorProcess,
    Faults,
    TaskState,
)
from tests.helpers import FAST_RETRY, temp_files

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TASKS = 20_000
FAULTS = Faults(
    latency=0.002,
    server_error_share=0.02,
    rate_limit_share=0.01,
    retry_after=0.1,
    cut_share=0.01,
    trickle_share=0.02,
    trickle_chunk_bytes=16_384,
    trickle_delay=0.001,
    reorder_keys_share=0.1,
    pretty_share=0.1,
    escape_share=0.1,
)
CONFIG = EmulatorConfig(
    pending_seconds=(0.0, 2.0),
    processing_seconds=(0.0, 1.0),
    error_share=0.05,
    token_lifetime=5.0,
    seed=20,
)


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_twenty_thousand_tasks_with_every_fault(tmp_path: Path) -> None:
    from aiotts import TTSClient

    out = tmp_path / "out"
    manifest = tmp_path / "manifest.jsonl"
    with EmulatorProcess(CONFIG, faults=FAULTS) as emu:
        small = emu.create_tasks(TASKS - TASKS // 10, audio_bytes=3_000)
        large = emu.create_tasks(TASKS // 10, audio_bytes=100_000)  # streamed, not read whole
        ids = small + large
        random.Random(20).shuffle(ids)
        samples: list[tuple[float, float, int]] = []
        finished = 0
        started = time.monotonic()
        async with TTSClient(
            DEFAULT_CLIENT_ID,
            DEFAULT_CLIENT_SECRET,
            base_url=emu.url,
            retry=FAST_RETRY,
            limits=Limits(tasks_in_flight=2_000),
        ) as client:
            batch = client.fetch_many(ids, out, manifest=manifest)

            async def sample() -> None:
                while True:
                    samples.append((time.monotonic() - started, rss_mib(), open_fds()))
                    await anyio.sleep(0.5)

            with anyio.fail_after(170):
                async with anyio.create_task_group() as sampler:
                    sampler.start_soon(sample)
                    async for _ in batch:
                        finished += 1
                    sampler.cancel_scope.cancel()
            statistics = batch.statistics()
        elapsed = time.monotonic() - started
        records = {record.id: (record, sha) for record, sha in emu.records()}

    assert finished == TASKS
    entries = read_manifest(manifest)
    assert len(entries) == TASKS  # every id ended, exactly once
    for task_id, entry in entries.items():
        record, sha = records[task_id]
        if record.outcome is TaskState.ERROR:
            assert entry.state is OutcomeState.FAILED, entry
        else:
            assert entry.state is OutcomeState.DONE, entry
            assert hashlib.sha256(entry.files[0].read_bytes()).hexdigest() == sha
    assert temp_files(out) == []

    # Flat: after the first fifth of the run, memory and descriptors stop growing.
    settled = samples[len(samples) // 5 :]
    middle, late = settled[: len(settled) // 2], settled[len(settled) // 2 :]
    peak_rss = max(s[1] for s in samples)
    assert max(s[1] for s in late) <= max(s[1] for s in middle) + 16, samples
    # Descriptors go up and down with the connections and files in use at the moment (at
    # most 64 connections, and one file per task being written or settled); a leak would
    # show as a climb beyond that.
    assert max(s[2] for s in late) <= max(s[2] for s in middle) + 32, samples
    assert max(s[2] for s in samples) < 200
    print(
        f"\nsoak: {TASKS} tasks in {elapsed:.1f}s, {statistics.requests}, retries "
        f"{statistics.retries}, peak RSS {peak_rss:.0f} MiB, fds {min(s[2] for s in settled)}-"
        f"{max(s[2] for s in settled)}, RSS settled {min(s[1] for s in settled):.0f}-"
        f"{max(s[1] for s in settled):.0f} MiB over {len(samples)} samples"
    )
