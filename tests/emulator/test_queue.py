"""The queue model: N workers serve tasks in arrival order, on a manual clock, never sleeping."""

from __future__ import annotations

import argparse
import random
import statistics
from typing import Any

import aiohttp
import pytest

from aiotts.emulator import Emulator, EmulatorConfig, ManualClock, TaskState
from aiotts.emulator._cli import add_arguments, config_from_args
from aiotts.emulator._queue import ServiceQueue

from .conftest import API, STATUS, bearer, get_token

pytestmark = pytest.mark.anyio

P, R, C = TaskState.PENDING, TaskState.PROCESSING, TaskState.COMPLETED


def queue(workers: int, **overrides: Any) -> EmulatorConfig:
    """One second a task whatever its text, no noise, unless overridden."""
    knobs: dict[str, Any] = {
        "queue_workers": workers,
        "service_base_seconds": 1.0,
        "service_seconds_per_char": 0.0,
        "service_noise": 0.0,
    }
    knobs.update(overrides)
    return EmulatorConfig(**knobs)


def states(emu: Emulator, ids: list[str]) -> list[TaskState]:
    return [emu.record(task_id).state for task_id in ids]


async def test_one_worker_serves_equal_texts_in_arrival_order(clock: ManualClock) -> None:
    async with Emulator(queue(1), clock=clock) as emu:
        ids = emu.create_tasks(["same text"] * 4)
        ready = [emu.record(task_id).ready_at for task_id in ids]
        assert ready == [clock() + n for n in (1, 2, 3, 4)]
        clock.advance(0.5)
        assert states(emu, ids) == [R, P, P, P]
        clock.advance(1.0)
        assert states(emu, ids) == [C, R, P, P]
        clock.advance(1.0)
        assert states(emu, ids) == [C, C, R, P]
        clock.advance(1.0)
        assert states(emu, ids) == [C, C, C, R]
        clock.advance(1.0)
        assert states(emu, ids) == [C, C, C, C]


async def test_pending_while_queued_processing_while_served(clock: ManualClock) -> None:
    async with Emulator(queue(1, service_base_seconds=2.0), clock=clock) as emu:
        first, second = emu.create_tasks(["first", "second"])
        record = emu.record(second)
        # Queued behind the first for exactly its service time, then served for its own.
        assert (record.processing_at, record.ready_at) == (clock() + 2, clock() + 4)
        clock.advance(1.999)
        assert states(emu, [first, second]) == [R, P]
        clock.advance(0.001)
        assert states(emu, [first, second]) == [C, R]


async def test_a_task_arriving_at_an_idle_worker_is_served_at_once(clock: ManualClock) -> None:
    async with Emulator(queue(1), clock=clock) as emu:
        (early,) = emu.create_tasks(["early"])
        clock.advance(5.0)  # the worker went idle at +1
        (late,) = emu.create_tasks(["late"])
        assert emu.record(late).processing_at == clock()
        assert emu.record(late).state is R
        clock.advance(1.0)
        assert states(emu, [early, late]) == [C, C]


async def test_service_time_grows_with_the_text(clock: ManualClock) -> None:
    config = queue(8, service_base_seconds=0.5, service_seconds_per_char=0.01)
    async with Emulator(config, clock=clock) as emu:
        texts = ["x" * n for n in (20, 100, 500)]
        ids = emu.create_tasks(texts)
        served = [emu.record(i).ready_at - emu.record(i).processing_at for i in ids]
        assert served == pytest.approx([0.7, 1.5, 5.5])
        assert [emu.record(i).processing_at for i in ids] == [clock()] * 3  # 8 idle workers


def test_noise_is_a_factor_around_one() -> None:
    service = ServiceQueue(1, base=1.0, per_char=0.01, noise=0.3)
    rng = random.Random(3)
    served = [service.service_seconds(100, rng) for _ in range(2000)]  # nominal 2 s
    assert len(set(served)) == len(served)
    assert min(served) > 0
    assert statistics.fmean(served) == pytest.approx(2.0, abs=0.05)
    assert statistics.pstdev(served) == pytest.approx(0.6, abs=0.05)
    quiet = ServiceQueue(1, base=1.0, per_char=0.01, noise=0.0)
    before = rng.getstate()
    assert quiet.service_seconds(100, rng) == 2.0
    assert rng.getstate() == before  # no noise, no draw


async def test_n_workers_serve_n_at_once(clock: ManualClock) -> None:
    async with Emulator(queue(3), clock=clock) as emu:
        ids = emu.create_tasks(["same"] * 7)
        clock.advance(0.5)
        assert states(emu, ids) == [R, R, R, P, P, P, P]
        clock.advance(1.0)
        assert states(emu, ids) == [C, C, C, R, R, R, P]
        clock.advance(1.0)
        assert states(emu, ids) == [C, C, C, C, C, C, R]


async def test_a_freed_worker_takes_the_oldest_waiting_task(clock: ManualClock) -> None:
    # Two workers: a long task holds one, so every short one after it goes to the other.
    config = queue(2, service_base_seconds=0.0, service_seconds_per_char=1.0)
    async with Emulator(config, clock=clock) as emu:
        ids = emu.create_tasks(["x" * 10, "a", "b", "c"])
        starts = [emu.record(i).processing_at - clock() for i in ids]
        assert starts == [0, 0, 1, 2]


def schedule(emu: Emulator) -> list[tuple[str, float, float, TaskState]]:
    return [
        (r.id, r.processing_at, r.ready_at, r.outcome)
        for r in (emu.record(i) for i in emu.task_ids())
    ]


async def run_schedule(seed: int) -> list[tuple[str, float, float, TaskState]]:
    clock = ManualClock(0.0)
    config = queue(2, service_seconds_per_char=0.01, service_noise=0.5, error_share=0.3, seed=seed)
    async with Emulator(config, clock=clock) as emu:
        for n in range(5):
            emu.create_tasks(["t" * (20 + 97 * k) for k in range(n + 1)])
            clock.advance(0.7)
        return schedule(emu)


async def test_the_same_seed_gives_the_same_schedule() -> None:
    first = await run_schedule(11)
    assert await run_schedule(11) == first
    assert await run_schedule(12) != first
    assert {outcome for *_, outcome in first} == {C, TaskState.ERROR}


async def test_off_by_default_the_drawn_durations_apply(clock: ManualClock) -> None:
    assert EmulatorConfig().queue_workers == 0
    config = EmulatorConfig(pending_seconds=2, processing_seconds=3)
    async with Emulator(config, clock=clock) as emu:
        ids = emu.create_tasks(["x" * 500, "y"] * 3)
        for task_id in ids:  # independent of each other and of the text
            record = emu.record(task_id)
            assert (record.processing_at, record.ready_at) == (clock() + 2, clock() + 5)


async def test_explicit_durations_bypass_the_queue(clock: ManualClock) -> None:
    async with Emulator(queue(1), clock=clock) as emu:
        queued = emu.create_tasks(["a", "b"])
        (ready,) = emu.create_tasks(["c"], ready_after=0)
        (timed,) = emu.create_tasks(["d"], pending=0.25, processing=0.25)
        assert emu.record(ready).state is C
        assert (emu.record(timed).processing_at, emu.record(timed).ready_at) == (
            clock() + 0.25,
            clock() + 0.5,
        )
        (after,) = emu.create_tasks(["e"])  # the bypassing tasks took no worker time
        assert emu.record(after).processing_at == emu.record(queued[1]).ready_at == clock() + 2


async def test_error_share_applies_to_queued_tasks(clock: ManualClock) -> None:
    async with Emulator(queue(1, error_share=1.0), clock=clock) as emu:
        (task_id,) = emu.create_tasks(["doomed"])
        assert emu.record(task_id).state is R
        clock.advance(1.0)
        assert emu.record(task_id).state is TaskState.ERROR


@pytest.mark.parametrize(
    "kwargs",
    [
        {"queue_workers": -1},
        {"queue_workers": 1.5},
        {"queue_workers": True},
        {"service_base_seconds": -1},
        {"service_seconds_per_char": float("inf")},
        {"service_noise": -0.1},
        {"service_noise": float("nan")},
        {"service_noise": 6},
    ],
)
def test_bad_queue_knobs_are_refused(kwargs: dict[str, Any]) -> None:
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        EmulatorConfig(**kwargs)


def test_queue_knobs_are_flags() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--queue-workers",
            "4",
            "--service-base-seconds",
            "0.05",
            "--service-seconds-per-char",
            "0.003",
            "--service-noise",
            "0",
        ]
    )
    assert config_from_args(args) == EmulatorConfig(
        queue_workers=4,
        service_base_seconds=0.05,
        service_seconds_per_char=0.003,
        service_noise=0.0,
    )


async def status(http: aiohttp.ClientSession, emu: Emulator, token: str, task_id: str) -> str:
    async with http.get(emu.url + STATUS, params={"id": task_id}, headers=bearer(token)) as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json(content_type=None)
    value: str = body["taskStatus"]
    return value


async def test_through_http_submits_queue_and_a_cancel_frees_nothing(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    async with Emulator(queue(1), clock=clock) as emu:
        token = await get_token(http, emu)
        async with http.get(emu.url + "/_emulator/config") as resp:
            shown = await resp.json()
        assert (shown["queue_workers"], shown["service_noise"]) == (1, 0.0)
        ids = []
        for text in ("One.", "Two.", "Three."):
            async with http.post(emu.url + API, json={"text": text}, headers=bearer(token)) as r:
                assert r.status == 200
                ids.append(await r.text())
        # Cancelling the second while it waits: it is gone, but the third keeps its place.
        async with http.delete(emu.url + API, params={"id": ids[1]}, headers=bearer(token)) as r:
            assert r.status == 200
        seen = []
        for _ in range(4):
            seen.append([await status(http, emu, token, task_id) for task_id in ids])
            clock.advance(1.0)
    assert seen == [
        ["Processing", "NotExist", "Pending"],
        ["Completed", "NotExist", "Pending"],
        ["Completed", "NotExist", "Processing"],
        ["Completed", "NotExist", "Completed"],
    ]
