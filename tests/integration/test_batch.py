"""fetch_many over HTTP: every id ends exactly once, truly, with whole files only."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from aiotts import Batch, Limits, OutcomeState, PollPolicy, read_manifest
from aiotts.emulator import Emulator, EmulatorConfig, Faults, TaskState
from tests.helpers import client_for, temp_files

pytestmark = pytest.mark.anyio

EXPECTED = {
    TaskState.COMPLETED: OutcomeState.DONE,
    TaskState.ERROR: OutcomeState.FAILED,
    TaskState.NOT_EXIST: OutcomeState.MISSING,
}


def unknown_ids(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["TTS" + str(uuid.UUID(int=rng.getrandbits(128), version=4))[3:] for _ in range(count)]


def check_outcomes(emu: Emulator, outcomes: list, out: Path) -> Counter[OutcomeState]:  # type: ignore[type-arg]
    """Each outcome matches the emulator's own record of its task; files are its audio."""
    states: Counter[OutcomeState] = Counter()
    known = set(emu.task_ids())
    for outcome in outcomes:
        states[outcome.state] += 1
        if outcome.task_id not in known:
            assert outcome.state is OutcomeState.MISSING, outcome
            continue
        record = emu.record(outcome.task_id)
        assert outcome.state is EXPECTED[record.state], (outcome, record)
        if outcome.state is OutcomeState.DONE:
            assert outcome.files == (out / f"{outcome.task_id}.wav",)
            assert outcome.files[0].read_bytes() == record.wav()
            assert outcome.bytes_written == record.wav_length
        if outcome.state is OutcomeState.FAILED:
            assert outcome.messages == record.messages
    assert temp_files(out) == []
    return states


@pytest.mark.slow
async def test_five_thousand_tasks_with_faults_each_end_once_and_truly(tmp_path: Path) -> None:
    config = EmulatorConfig(
        pending_seconds=(0.0, 1.5),
        processing_seconds=(0.0, 1.0),
        error_share=0.05,
        audio_bytes=3_000,
        seed=11,
    )
    faults = Faults(server_error_share=0.03, rate_limit_share=0.02, retry_after=0.2, cut_share=0.01)
    async with Emulator(config) as emu:
        real = emu.create_tasks(4_900)
        ids = real + unknown_ids(100, seed=3)
        random.Random(5).shuffle(ids)
        emu.set_faults(faults)
        async with client_for(
            emu, poll=PollPolicy(first_delay=0.3, max_delay=1.0), limits=Limits(polls=64)
        ) as client:
            with anyio.fail_after(120):
                outcomes = [o async for o in client.fetch_many(ids, tmp_path)]
        assert sorted(o.task_id for o in outcomes) == sorted(ids)  # each exactly once
        states = check_outcomes(emu, outcomes, tmp_path)
        stats = emu.stats()
    assert states[OutcomeState.MISSING] == 100
    assert 150 < states[OutcomeState.FAILED] < 350
    assert states[OutcomeState.DONE] + states[OutcomeState.FAILED] == 4_900
    assert stats.count(status=503) + stats.count(status=500) + stats.count(status=502) > 100
    assert stats.count(status=429) > 50


async def test_ids_from_an_async_generator_are_pulled_as_capacity_frees(tmp_path: Path) -> None:
    config = EmulatorConfig(pending_seconds=0.2, processing_seconds=0, audio_bytes=1_000)
    async with Emulator(config) as emu:
        real = emu.create_tasks(300)
        taken = 0
        most_unfinished = 0
        batch: Batch | None = None

        async def ids() -> AsyncIterator[str]:
            nonlocal taken, most_unfinished
            for task_id in real:
                taken += 1
                assert batch is not None
                most_unfinished = max(most_unfinished, taken - batch.statistics().finished)
                yield task_id

        async with client_for(emu, limits=Limits(tasks_in_flight=20)) as client:
            batch = client.fetch_many(ids(), tmp_path)
            outcomes = [o async for o in batch]
    assert len(outcomes) == 300 and all(o.ok for o in outcomes)
    assert most_unfinished <= 21  # the 20 in flight, and the one just taken


async def test_a_duplicate_id_is_fetched_once_and_reported_once(
    emulator: Emulator, tmp_path: Path
) -> None:
    task_id = emulator.create_tasks(["twice"])[0]
    async with client_for(emulator) as client:
        report = await client.fetch_all([task_id, task_id, task_id], tmp_path)
    assert [o.task_id for o in report.done] == [task_id]
    assert emulator.record(task_id).fetches == 1


async def test_fetch_all_keeps_the_failures_apart(emulator: Emulator, tmp_path: Path) -> None:
    good = emulator.create_tasks(3)
    bad = emulator.create_tasks(2, fail=True)
    async with client_for(emulator) as client:
        report = await client.fetch_all(good + bad + ["TTSnope"], tmp_path)
    assert {o.task_id for o in report.done} == set(good)
    assert {o.task_id: o.state for o in report.failed} == {
        bad[0]: OutcomeState.FAILED,
        bad[1]: OutcomeState.FAILED,
        "TTSnope": OutcomeState.MISSING,
    }
    assert not report.ok
    assert report.statistics.states["done"] == 3


async def test_unusable_ids_fail_alone_without_a_request(
    emulator: Emulator, tmp_path: Path
) -> None:
    good = emulator.create_tasks(2)
    weird = ["", "   ", "x" * 5000, "nul\x00id", "../../etc/passwd"]
    async with client_for(emulator) as client:
        report = await client.fetch_all(good + weird, tmp_path)
    assert {o.task_id for o in report.done} == set(good)
    by_id = {o.task_id: o for o in report.failed}
    assert by_id[""].state is OutcomeState.ABORTED and "empty" in (by_id[""].error or "")
    assert "5000 characters" in (by_id["x" * 5000].error or "")
    assert "control characters" in (by_id["nul\x00id"].error or "")
    assert by_id["../../etc/passwd"].state is OutcomeState.MISSING  # asked, safely
    assert emulator.stats().count("fetch") == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{i}.wav" for i in good)


async def test_deadlines_per_task_and_per_batch(emulator: Emulator, tmp_path: Path) -> None:
    quick = emulator.create_tasks(2)
    slow = emulator.create_tasks(3, pending=3600)
    async with client_for(emulator) as client:
        with anyio.fail_after(10):
            report = await client.fetch_all(quick + slow, tmp_path, task_timeout=0.5)
        assert {o.task_id for o in report.done} == set(quick)
        assert {o.state for o in report.failed} == {OutcomeState.EXPIRED}
    never_taken = [f"TTSlater-{i}" for i in range(5)]  # no room for them: 3 slow ones fill it
    async with client_for(emulator, limits=Limits(tasks_in_flight=3)) as client:
        with anyio.fail_after(10):
            report = await client.fetch_all(slow + never_taken, tmp_path, batch_timeout=0.5)
    assert len(report.failed) == 8
    assert {o.state for o in report.failed} == {OutcomeState.EXPIRED}


async def test_statistics_and_repr_show_live_state(emulator: Emulator, tmp_path: Path) -> None:
    ids = emulator.create_tasks(20, pending=0.3)
    async with client_for(emulator) as client:
        batch = client.fetch_many(ids, tmp_path)
        async with batch:
            first = await anext(batch)
            live = batch.statistics()
            assert "running" in repr(batch) and "done=" in repr(batch)
            assert "Scheduler tasks=" in repr(client._scheduler)
            rest = [o async for o in batch]
        final = batch.statistics()
    assert first.ok and len(rest) == 19
    assert sum(live.states.values()) == 20
    assert final.states["done"] == 20
    assert final.requests["poll"] >= 20
    assert final.bytes_written == sum(emulator.record(i).wav_length for i in ids)
    with pytest.raises(AttributeError):
        final.retries = 3  # type: ignore[misc]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_cancel_at_a_random_moment_then_resume(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    config = EmulatorConfig(
        pending_seconds=(0, 0.6), processing_seconds=(0, 0.3), audio_bytes=200_000, seed=seed
    )
    manifest = tmp_path / "manifest.jsonl"
    out = tmp_path / "out"
    async with Emulator(config) as emu:
        ids = emu.create_tasks(300)
        emu.set_faults(trickle_share=0.2, trickle_chunk_bytes=16_384, trickle_delay=0.002)
        async with client_for(emu) as client:
            seen = []
            stop_after = rng.randint(5, 250)  # outcomes, or seconds / 100 for odd seeds
            with anyio.move_on_after(stop_after / 100 if seed % 2 else 60) as scope:
                async for outcome in client.fetch_many(ids, out, manifest=manifest):
                    seen.append(outcome)
                    if len(seen) == stop_after and not seed % 2:
                        scope.cancel()
        assert temp_files(out) == []
        first_run = read_manifest(manifest)
        assert {o.task_id for o in seen} <= set(first_run)
        done_before = {i for i, e in first_run.items() if e.state is OutcomeState.DONE}
        fetches_before = {i: emu.record(i).fetches for i in done_before}
        assert len(done_before) < 300, "the cancel came too late to test anything"
        assert OutcomeState.CANCELLED in {e.state for e in first_run.values()}

        async with client_for(emu) as client:
            resumed = [o async for o in client.fetch_many(ids, out, manifest=manifest, resume=True)]
        assert sorted(o.task_id for o in resumed) == sorted(ids)
        assert all(o.ok for o in resumed)
        assert {o.task_id for o in resumed if o.resumed} >= done_before
        for task_id in done_before:  # nothing done was asked for again
            assert emu.record(task_id).fetches == fetches_before[task_id]
        check_outcomes(emu, resumed, out)
        final = read_manifest(manifest)
        assert all(e.state is OutcomeState.DONE for e in final.values())


async def test_statistics_stop_moving_when_the_batch_finishes(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A finished batch keeps the figures it ended with: later batches and waits of the
    same client add nothing to its requests, and its elapsed time stops."""
    first_ids = emulator.create_tasks(5, ready_after=0)
    later_ids = emulator.create_tasks(5, ready_after=0)
    async with client_for(emulator) as client:
        batch = client.fetch_many(first_ids, tmp_path / "a")
        async with batch:
            assert len([o async for o in batch]) == 5
        ended = batch.statistics()
        await anyio.sleep(0.05)
        await client.fetch_all(later_ids, tmp_path / "b")
        assert batch.statistics() == ended
    assert ended.requests["poll"] == 5
