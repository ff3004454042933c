"""One scheduler per client: every wait and every batch feeds it, so concurrent waiters for
one id share one poll loop and one download, and a waiter that leaves stops nothing but
its own wait (the last one leaving stops the polling)."""

from __future__ import annotations

import gc
from pathlib import Path

import anyio
import pytest

from aiotts import ClientClosedError, OutcomeState, PollPolicy, TaskTimeoutError
from aiotts._scheduler import _Task
from aiotts.emulator import Emulator, EmulatorConfig, ManualClock
from tests.helpers import client_for, requests_settled, temp_files

pytestmark = pytest.mark.anyio

CONFIG = EmulatorConfig(pending_seconds=0, processing_seconds=0, audio_bytes=50_000)
STEADY = PollPolicy(first_delay=0.1, growth=1.0, max_delay=0.1, jitter="none", budget=None)


async def test_a_hundred_waiters_on_one_id_send_what_one_waiter_sends(tmp_path: Path) -> None:
    async with Emulator(CONFIG) as emu:
        alone, shared = emu.create_tasks(2, ready_after=0.5, fail=False)
        async with client_for(emu, poll=STEADY) as client:
            await client.wait(alone, tmp_path / "alone/")
            saved = []

            async def wait_one(n: int) -> None:
                saved.append(await client.wait(shared, tmp_path / f"w{n}/"))

            async with anyio.create_task_group() as group:
                for n in range(100):
                    group.start_soon(wait_one, n)
        one_waiter = emu.record(alone)
        hundred = emu.record(shared)
    assert hundred.fetches <= one_waiter.fetches + 1  # the same poll loop, give or take a tick
    assert hundred.audio_started == 1  # downloaded once
    assert len(saved) == 100
    for outcome in saved:  # each waiter has a whole file of its own
        assert outcome.path.read_bytes() == emu.audio(shared)
    assert len({s.path for s in saved}) == 100
    assert temp_files(tmp_path) == []


async def test_a_cancelled_waiter_leaves_the_others_untouched(tmp_path: Path) -> None:
    clock = ManualClock()  # the task is ready only once the one waiter has left
    async with Emulator(CONFIG, clock=clock) as emu:
        (task_id,) = emu.create_tasks(1, ready_after=60, fail=False)
        async with client_for(emu, poll=STEADY) as client:
            results: dict[str, object] = {}

            async def wait(name: str) -> None:
                results[name] = await client.wait(task_id, tmp_path / f"{name}/")

            async with anyio.create_task_group() as group:
                group.start_soon(wait, "stays")
                with anyio.move_on_after(0.2):
                    await wait("leaves")
                assert "leaves" not in results
                clock.advance(61)
        assert emu.record(task_id).audio_started == 1
    saved = results["stays"]
    assert saved.path.read_bytes() == emu.audio(task_id)  # type: ignore[attr-defined]
    assert not (tmp_path / "leaves").exists() or not any((tmp_path / "leaves").iterdir())


async def test_the_last_waiter_leaving_stops_the_polling(tmp_path: Path) -> None:
    async with Emulator(CONFIG) as emu:
        (task_id,) = emu.create_tasks(1, ready_after=60, fail=False)
        async with client_for(emu, poll=STEADY) as client:
            async with anyio.create_task_group() as group:
                for n in range(3):
                    group.start_soon(client.wait, task_id, tmp_path / f"{n}/")
                with anyio.fail_after(10):  # the three leave once it was polled twice
                    while emu.record(task_id).fetches < 2:
                        await anyio.sleep(0.01)
                group.cancel_scope.cancel()
            await requests_settled(client)  # a poll out when the last one left comes back
            after_leaving = emu.record(task_id).fetches
            await anyio.sleep(0.5)  # five poll intervals
            assert emu.record(task_id).fetches == after_leaving
            assert "tasks=0" in repr(client._scheduler)
    assert after_leaving >= 2


async def test_leaving_during_the_download_leaves_no_file(tmp_path: Path) -> None:
    async with Emulator(CONFIG) as emu:
        (task_id,) = emu.create_tasks(1, ready_after=0, fail=False, audio_bytes=400_000)
        emu.set_faults(trickle_share=1.0, trickle_chunk_bytes=16_384, trickle_delay=0.05)
        async with client_for(emu, poll=STEADY) as client:
            (tmp_path / "gone").mkdir()
            async with anyio.create_task_group() as group:
                group.start_soon(client.wait, task_id, tmp_path / "gone")
                with anyio.fail_after(10):  # it leaves once the download started
                    while not emu.record(task_id).audio_started:
                        await anyio.sleep(0.01)
                group.cancel_scope.cancel()
            assert emu.record(task_id).audio_started == 1  # it left mid-download
            with anyio.fail_after(30):
                while not emu.record(task_id).audio_finished:
                    await anyio.sleep(0.05)  # the abandoned poll runs to its end
            await anyio.sleep(0.3)  # and the client reads what was sent
            # the client still serves others
            (other,) = emu.create_tasks(1, ready_after=0, fail=False)
            emu.set_faults(trickle_share=0.0)
            saved = await client.wait(other, tmp_path)
    assert saved.path.read_bytes() == emu.audio(other)
    assert list((tmp_path / "gone").iterdir()) == []  # no file, no temporary file


async def test_a_waiters_own_deadline_ends_it_alone(tmp_path: Path) -> None:
    clock = ManualClock()  # the task is ready only once the hasty waiter has ended
    async with Emulator(CONFIG, clock=clock) as emu:
        (task_id,) = emu.create_tasks(1, ready_after=60, fail=False)
        async with client_for(emu, poll=STEADY) as client:
            results: dict[str, object] = {}

            async def wait(name: str, timeout: float) -> None:
                try:
                    results[name] = await client.wait(
                        task_id, tmp_path / f"{name}/", timeout=timeout
                    )
                except TaskTimeoutError as exc:
                    results[name] = exc

            async with anyio.create_task_group() as group:
                group.start_soon(wait, "patient", 30)
                group.start_soon(wait, "hasty", 0.2)
                with anyio.fail_after(10):
                    while "hasty" not in results:
                        await anyio.sleep(0.01)
                clock.advance(61)
        assert emu.record(task_id).audio_started == 1
    assert isinstance(results["hasty"], TaskTimeoutError)
    assert results["patient"].path.read_bytes() == emu.audio(task_id)  # type: ignore[attr-defined]


async def test_a_batch_and_single_waits_on_the_same_ids_share_their_polls(tmp_path: Path) -> None:
    async with Emulator(CONFIG) as emu:
        ids = emu.create_tasks(20, ready_after=0.5, fail=False)
        async with client_for(emu, poll=STEADY) as client:
            waited = {}

            async def wait(task_id: str) -> None:
                waited[task_id] = await client.wait(task_id, tmp_path / "single/")

            async with anyio.create_task_group() as group:
                for task_id in ids[:10]:
                    group.start_soon(wait, task_id)
                report = await client.fetch_all(ids, tmp_path / "batch")
        records = {task_id: emu.record(task_id) for task_id in ids}
    assert len(report.done) == 20 and not report.failed
    assert set(waited) == set(ids[:10])
    for task_id in ids:
        assert records[task_id].audio_started == 1  # one download, shared or not
        assert (tmp_path / "batch" / f"{task_id}.wav").read_bytes() == emu.audio(task_id)
    for task_id in ids[:10]:
        assert waited[task_id].path.read_bytes() == emu.audio(task_id)
    # the shared ids were polled no more often than the others
    shared = max(records[i].fetches for i in ids[:10])
    alone = max(records[i].fetches for i in ids[10:])
    assert shared <= alone + 1


async def test_outcomes_of_a_shared_task_are_each_subscribers_own(tmp_path: Path) -> None:
    async with Emulator(CONFIG) as emu:
        (task_id,) = emu.create_tasks(1, ready_after=0.3, fail=True)
        async with client_for(emu, poll=STEADY) as client:
            outcomes = []

            async def batch(name: str) -> None:
                async for outcome in client.fetch_many([task_id], tmp_path / name):
                    outcomes.append(outcome)

            async with anyio.create_task_group() as group:
                group.start_soon(batch, "a")
                group.start_soon(batch, "b")
        assert emu.record(task_id).fetches <= 6
    assert [o.state for o in outcomes] == [OutcomeState.FAILED, OutcomeState.FAILED]
    assert outcomes[0] is not outcomes[1]


async def test_closing_the_client_ends_every_wait(tmp_path: Path) -> None:
    async with Emulator(CONFIG) as emu:
        (task_id,) = emu.create_tasks(1, ready_after=60, fail=False)
        client = client_for(emu, poll=STEADY)
        await client.__aenter__()
        failures: list[BaseException] = []

        async def wait() -> None:
            try:
                await client.wait(task_id, tmp_path)
            except ClientClosedError as exc:
                failures.append(exc)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(wait)
                group.start_soon(wait)
                await anyio.sleep(0.3)
                await client.aclose()  # e.g. a web app's clean-up while requests wait
    assert len(failures) == 2
    assert "closed" in str(failures[0])


async def test_a_finished_task_leaves_nothing_for_the_garbage_collector(tmp_path: Path) -> None:
    # Memory must follow the tasks in flight: a finished task may not linger in a reference
    # cycle until the next full collection (a million ids would pile up between them).
    async with Emulator(CONFIG) as emu:
        ids = emu.create_tasks(300, ready_after=0, fail=False)
        async with client_for(emu, poll=STEADY) as client:
            gc.collect()
            gc.disable()
            try:
                report = await client.fetch_all(ids, tmp_path)
                lingering = sum(isinstance(o, _Task) for o in gc.get_objects())
            finally:
                gc.enable()
    assert len(report.done) == 300
    # At most the stale deadline entries the pacer keeps before compacting (64) and a few
    # in transit: not one per task
    assert lingering < 100
