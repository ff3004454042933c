"""Polls aimed at forecasts, against the emulator's queue model: the client records every
id it submits, the scheduler feeds the model what each poll said, and every record is
dropped when its task ends, however it ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiotts import OutcomeState, PollPolicy
from aiotts.emulator import Emulator, EmulatorConfig
from tests.helpers import client_for

pytestmark = pytest.mark.anyio

QUEUE = EmulatorConfig(
    queue_workers=2,
    service_base_seconds=0.02,
    service_seconds_per_char=0.0,
    service_noise=0.0,
    audio_bytes=1000,
)


async def test_submitted_ids_are_learned_from_and_forgotten_when_they_end(
    tmp_path: Path,
) -> None:
    async with Emulator(QUEUE) as emu, client_for(emu, poll=PollPolicy()) as client:
        ids = [await client.submit(f"text number {n}") for n in range(40)]
        readiness = client._readiness
        assert all(task_id in readiness for task_id in ids)
        outcomes = [outcome async for outcome in client.fetch_many(ids, tmp_path)]
        assert [o.state for o in outcomes] == [OutcomeState.DONE] * 40
        assert len(readiness) == 0  # every record dropped as its task ended
        assert readiness.fitted  # learned from the completions the polls found


async def test_a_task_that_expires_is_forgotten_too(tmp_path: Path) -> None:
    slow = EmulatorConfig(queue_workers=1, service_base_seconds=60.0, service_noise=0.0)
    async with Emulator(slow) as emu, client_for(emu) as client:
        ahead, behind = [await client.submit(f"text {n}") for n in range(2)]
        outcomes = [o async for o in client.fetch_many([behind], tmp_path, task_timeout=0.2)]
        assert [o.state for o in outcomes] == [OutcomeState.EXPIRED]
        assert behind not in client._readiness
        assert ahead in client._readiness  # nobody asked about it: kept (within the cap)


async def test_ids_it_did_not_submit_are_polled_by_the_policy(tmp_path: Path) -> None:
    async with Emulator(QUEUE) as emu, client_for(emu) as client:
        ids = emu.create_tasks(5, ready_after=0.05)
        outcomes = [o async for o in client.fetch_many(ids, tmp_path)]
        assert all(o.ok for o in outcomes)
        assert len(client._readiness) == 0
