"""A resume from a store finds its ids beside the store's rows read in their own order
(``_sightings``): over loopback, with duplicates before and after the batch records them
again, each id still ends once, and only the ids whose files are gone or failed are
fetched again."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from aiotts import OutcomeState, TTSClient
from aiotts._models import Outcome
from aiotts.emulator import Emulator

pytestmark = pytest.mark.anyio


async def fetch(client: TTSClient, ids: object, out: Path, **options: object) -> list[Outcome]:
    batch = client.fetch_many(ids, out, manifest=out / "aiotts.db", **options)  # type: ignore[arg-type]
    return [outcome async for outcome in batch]


async def test_duplicates_end_once_before_and_after_the_batch_records_them_again(
    emulator: Emulator, client: TTSClient, tmp_path: Path
) -> None:
    done = emulator.create_tasks(60)
    failing = emulator.create_tasks(4, fail=True)
    out = tmp_path / "out"
    first = await fetch(client, [*done, *failing], out, retry_failed=False)
    assert Counter(o.state for o in first) == {OutcomeState.DONE: 60, OutcomeState.FAILED: 4}
    gone = done[5:10]
    for task_id in gone:
        (out / f"{task_id}.wav").unlink()
    new = emulator.create_tasks(3)
    fetches = {task_id: emulator.record(task_id).fetches for task_id in [*done, *failing]}

    async def given() -> AsyncIterator[str]:
        """Every id, then (once the ids fetched again are recorded) every id again."""
        mixed = [*done, *failing, *new, *gone, *new]
        random.Random(4).shuffle(mixed)
        for task_id in mixed:
            yield task_id
        await anyio.sleep(0.3)
        for task_id in [*gone, *new, *done, *failing]:
            yield task_id

    again = await fetch(client, given(), out, resume=True, retry_failed=True)

    ended = Counter(o.task_id for o in again)
    assert set(ended) == {*done, *failing, *new} and set(ended.values()) == {1}
    by_id = {o.task_id: o for o in again}
    for task_id in done:
        refetched = task_id in gone
        assert by_id[task_id].ok and by_id[task_id].resumed is not refetched
        assert emulator.record(task_id).fetches == fetches[task_id] + refetched
    for task_id in failing:  # asked again, as ``retry_failed`` says
        assert emulator.record(task_id).fetches == fetches[task_id] + 1
    assert all(by_id[task_id].ok and not by_id[task_id].resumed for task_id in new)

    # And a third time, in chunks (a list): every id is done or failed before, and ends once.
    third = await fetch(client, [*done, *done, *new, *failing], out, resume=True)
    assert Counter(o.task_id for o in third) == Counter({*done, *new, *failing})
    assert all(o.resumed for o in third)
