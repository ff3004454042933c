"""Promises the README makes, each shown over HTTP against the emulator.

Each test here fails when the rule it names is broken: a batch that ends while a slow
reader still has outcomes to take, a resume that trusts a file that is no longer whole, an
outcome handed out before its manifest line is on disk, ``durable=True`` without fsync, a
task deadline counted from the batch's start instead of the task's admission.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import anyio
import pytest

from aiotts import Limits, OutcomeState, read_manifest
from aiotts._admission import ADMIT_CHUNK
from aiotts._scheduler import _EXPIRED_AT_ONCE
from aiotts.emulator import Emulator, EmulatorConfig, ManualClock
from tests.helpers import client_for, requests_settled, temp_files

pytestmark = pytest.mark.anyio


async def test_a_slow_reader_gets_every_outcome(emulator: Emulator, tmp_path: Path) -> None:
    # More ready tasks than the outcome buffer holds, read slowly: the workers end up
    # waiting to hand over their outcomes when the last task ends, and every one of those
    # outcomes must still reach the reader.
    ids = emulator.create_tasks(400, audio_bytes=2_000)
    async with client_for(emulator) as client:
        received: list[str] = []
        with anyio.fail_after(60):
            async for outcome in client.fetch_many(ids, tmp_path):
                received.append(outcome.task_id)
                await anyio.sleep(0.002)
    assert sorted(received) == sorted(ids)
    assert len(received) == len(set(received))


async def test_a_slow_reader_inside_async_with_gets_every_outcome(
    emulator: Emulator, tmp_path: Path
) -> None:
    ids = emulator.create_tasks(300, audio_bytes=2_000)
    async with client_for(emulator, limits=Limits(polls=16, downloads=8)) as client:
        received: list[str] = []
        with anyio.fail_after(60):
            async with client.fetch_many(ids, tmp_path) as batch:
                async for outcome in batch:
                    received.append(outcome.task_id)
                    await anyio.sleep(0.002)
    assert sorted(received) == sorted(ids)


async def test_resume_fetches_again_only_the_files_that_are_no_longer_whole(
    emulator: Emulator, tmp_path: Path
) -> None:
    ids = emulator.create_tasks(6, audio_bytes=20_000)
    out = tmp_path / "out"
    manifest = tmp_path / "manifest.jsonl"
    async with client_for(emulator) as client:
        first = await client.fetch_all(ids, out, manifest=manifest)
    assert len(first.done) == 6
    truncated, bad_header, emptied, removed, *whole = ids
    path = {i: out / f"{i}.wav" for i in ids}
    with path[truncated].open("r+b") as file:
        file.truncate(path[truncated].stat().st_size - 1000)
    with path[bad_header].open("r+b") as file:  # same size, but no longer a WAV header
        file.write(b"JUNK")
    path[emptied].write_bytes(b"")
    path[removed].unlink()
    fetches = {i: emulator.record(i).fetches for i in ids}

    async with client_for(emulator) as client:
        again = await client.fetch_all(ids, out, manifest=manifest, resume=True)

    assert again.failed == ()
    refetched = {i for i in ids if emulator.record(i).fetches > fetches[i]}
    assert refetched == {truncated, bad_header, emptied, removed}
    assert {o.task_id for o in again.done if o.resumed} == set(whole)
    for task_id in ids:  # every file whole again, byte for byte
        assert path[task_id].read_bytes() == emulator.record(task_id).wav()
    assert temp_files(out) == []
    assert {e.state for e in read_manifest(manifest).values()} == {OutcomeState.DONE}


async def test_each_outcome_is_in_the_manifest_on_disk_when_the_caller_gets_it(
    emulator: Emulator, tmp_path: Path
) -> None:
    good = emulator.create_tasks(40, audio_bytes=2_000)
    bad = emulator.create_tasks(5, fail=True)
    ids = [*good, *bad, "TTSunknown-1", "", "TTSunknown-2"]
    manifest = tmp_path / "manifest.jsonl"
    async with client_for(emulator) as client:
        seen = 0
        async for outcome in client.fetch_many(ids, tmp_path / "out", manifest=manifest):
            on_disk = read_manifest(manifest)  # a fresh open(): what a crash now would keep
            assert outcome.task_id in on_disk, outcome
            assert on_disk[outcome.task_id].state is outcome.state
            assert on_disk[outcome.task_id].files == outcome.files
            seen += 1
    assert seen == len(ids)


class FsyncCounter:
    """Counts fsync and fdatasync calls from any thread, then does the real thing."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self._lock = threading.Lock()
        for name in ("fsync", "fdatasync"):
            real = getattr(os, name, None)
            if real is not None:
                monkeypatch.setattr(os, name, self._counting(real))

    def _counting(self, real: object) -> object:
        def counted(fd: int) -> None:
            with self._lock:
                self.calls += 1
            real(fd)  # type: ignore[operator]

        return counted


@pytest.mark.parametrize("durable", [True, False])
async def test_durable_fsyncs_every_file_and_only_when_asked(
    durable: bool, emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = emulator.create_tasks(8, audio_bytes=5_000)
    single = emulator.create_tasks(1, audio_bytes=5_000)[0]
    counter = FsyncCounter(monkeypatch)
    async with client_for(emulator, durable=durable) as client:
        report = await client.fetch_all(ids, tmp_path / "batch")
        await client.download(single, tmp_path / "single")
    assert len(report.done) == 8
    if durable:
        assert counter.calls >= 9  # one per file at least
    else:
        assert counter.calls == 0


async def test_a_task_admitted_late_gets_its_whole_task_timeout(
    emulator: Emulator, tmp_path: Path
) -> None:
    # One task at a time; task n is ready 0.35 s after task n-1, so each is ready about
    # 0.35 s after its admission, far within its 2 s, while the last is ready 2.8 s after
    # the batch started. Counted from the batch's start, the later tasks would expire.
    ids = [emulator.create_tasks(1, ready_after=0.35 * (n + 1))[0] for n in range(8)]
    async with client_for(emulator, limits=Limits(tasks_in_flight=1)) as client:
        with anyio.fail_after(60):
            report = await client.fetch_all(ids, tmp_path, task_timeout=2.0)
    assert [o.state for o in report.failed] == []
    assert {o.task_id for o in report.done} == set(ids)


async def test_a_deadline_that_passes_while_every_worker_is_busy_ends_its_task_unpolled(
    emulator: Emulator, tmp_path: Path
) -> None:
    # One worker, and every request takes 0.6 s. The first task's poll (waiting for the
    # token) is out when both deadlines pass at 0.3 s; the second task's passes while it
    # waits for a worker. The worker that comes free must end it, not leave it hanging.
    ids = emulator.create_tasks(2, ready_after=0)
    emulator.set_faults(latency=0.6)
    async with client_for(emulator, limits=Limits(polls=1)) as client:
        with anyio.fail_after(10):
            report = await client.fetch_all(ids, tmp_path, task_timeout=0.3)
    assert [o.state for o in report.failed] == [OutcomeState.EXPIRED] * 2
    assert emulator.stats().count("fetch") == 0  # neither was asked about


async def test_tasks_whose_deadline_came_together_end_a_few_hundred_per_turn_of_the_loop(
    emulator: Emulator, tmp_path: Path
) -> None:
    # As above, 600 tasks wait while the one worker waits 0.6 s for the token, and their
    # deadline passes at 0.3 s: they all expire when it comes back. Another coroutine of
    # the process must get turns of the loop meanwhile, not wait for all 600.
    ids = emulator.create_tasks(600, ready_after=0)
    emulator.set_faults(latency=0.6)
    ended_per_turn: list[int] = []
    read_all = anyio.Event()
    async with client_for(emulator, limits=Limits(polls=1)) as client:
        batch = client.fetch_many(ids, tmp_path, task_timeout=0.3)

        async def read() -> None:
            async for _ in batch:
                pass
            read_all.set()

        async def count_turns() -> None:
            seen = 0
            while not read_all.is_set():
                await anyio.sleep(0)  # one turn of the loop
                expired = batch.statistics().states["expired"]
                ended_per_turn.append(expired - seen)
                seen = expired

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(read)
                group.start_soon(count_turns)
    assert sum(ended_per_turn) == 600
    # The worker's own task (its poll cut at the deadline), then a few hundred at most.
    assert max(ended_per_turn) <= 1 + _EXPIRED_AT_ONCE < 600


async def test_a_long_list_of_ids_is_taken_in_a_chunk_per_turn_of_the_loop(
    emulator: Emulator, tmp_path: Path
) -> None:
    # Taking in an id costs no I/O: without a turn of the loop between chunks, 3,000 ids
    # would hold every other coroutine of the process back until the last was in.
    ids = emulator.create_tasks(3000, ready_after=86_400)
    taken_per_turn: list[int] = []
    async with client_for(emulator) as client, client.fetch_many(ids, tmp_path) as batch:
        seen = 0
        with anyio.fail_after(10):
            while seen < len(ids):
                await anyio.sleep(0)  # one turn of the loop
                taken = sum(batch.statistics().states.values())
                taken_per_turn.append(taken - seen)
                seen = taken
        batch.cancel()
    assert max(taken_per_turn) <= ADMIT_CHUNK < len(ids)


async def test_leaving_async_for_early_cancels_the_batch(tmp_path: Path) -> None:
    clock = ManualClock()  # the later tasks are ready only once the batch was left
    config = EmulatorConfig(pending_seconds=0, processing_seconds=0)
    async with Emulator(config, clock=clock) as emulator:
        first = emulator.create_tasks(1, ready_after=0)
        later = emulator.create_tasks(20, ready_after=2.0)
        async with client_for(emulator) as client:
            batch = client.fetch_many(first + later, tmp_path, manifest=tmp_path / "r")
            async for outcome in batch:
                assert outcome.task_id == first[0]
                break
            with anyio.fail_after(10):  # what was in flight when the loop was left ends
                await batch._finished.wait()  # (``wait_closed`` would shield a hang)
            await requests_settled(client)  # and the polls out come back
            polled = emulator.stats().count("fetch")
            clock.advance(2.1)
            await anyio.sleep(1.0)  # the other tasks are ready: nobody asks about them
            assert emulator.stats().count("fetch") == polled
    records = read_manifest(tmp_path / "r")
    assert records[first[0]].state is OutcomeState.DONE
    assert {records[task_id].state for task_id in later} == {OutcomeState.CANCELLED}
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(["r", f"{first[0]}.wav"])


async def test_leaving_async_for_early_stops_a_synthesis_sending_texts(
    emulator: Emulator, tmp_path: Path
) -> None:
    texts = [(f"k{n}", f"Sentence number {n}.") for n in range(2000)]
    async with client_for(emulator) as client:
        synthesis = client.synthesize(texts, tmp_path)
        async for _ in synthesis:
            break
        with anyio.fail_after(10):  # the submits in flight when the loop was left come back
            await synthesis._finished.wait()  # (``wait_closed`` would shield a hang)
        sent = emulator.stats().count("submit")
        await anyio.sleep(0.5)
        assert emulator.stats().count("submit") == sent < len(texts)


async def test_an_async_generator_of_ids_is_closed_when_the_batch_stops(
    emulator: Emulator, tmp_path: Path
) -> None:
    # The batch holds one Pending task and waits for room to take the second id in when
    # it is cancelled: the generator's own clean-up has run by the time the batch ended,
    # not whenever it is collected.
    ids = emulator.create_tasks(3, ready_after=60)
    closed: list[str] = []

    async def source():  # type: ignore[no-untyped-def]
        try:
            for task_id in ids:
                yield task_id
        finally:
            closed.append("closed")

    async with client_for(emulator, limits=Limits(tasks_in_flight=1)) as client:
        batch = client.fetch_many(source(), tmp_path, manifest=tmp_path / "r")
        async with batch:
            with anyio.fail_after(10):
                while batch.statistics().in_flight < 1:
                    await anyio.sleep(0.01)
            await anyio.sleep(0.05)  # the second id waits for room
        assert closed == ["closed"]
    records = read_manifest(tmp_path / "r")
    assert {records[i].state for i in ids[:2]} == {OutcomeState.CANCELLED}
