"""The shard of an id, and a job array's shard read from the environment."""

from __future__ import annotations

import subprocess
import sys
import uuid

import anyio
import pytest

from aiotts import Shard, UsageError, shard_from_environment, shard_of
from aiotts._shards import parse_shard, take_shard, take_shard_async
from aiotts.cli._sharding import shard_record, sub_shard


def test_shard_of_is_pinned_to_blake2b() -> None:
    # The first 8 bytes of BLAKE2b, big-endian, modulo N: any change splits a running
    # job array's input differently, so these values may never move.
    task_id = "TTSb4705-728d-4258-8cca-b49fb7921aa1"
    assert int("ae8844be7fb6efd3", 16) % 1000 == 467
    assert [shard_of(task_id, n) for n in (1, 4, 16, 1000)] == [0, 3, 3, 467]
    assert [shard_of("a", n) for n in (4, 16, 1000)] == [3, 15, 343]
    assert shard_of("", 16) == 4


def test_shard_of_is_the_same_in_another_process() -> None:
    # Python's hash() of a string changes from one process to the next; shard_of must not.
    ids = [f"TTS{n:05x}-0000" for n in range(50)]
    here = [shard_of(i, 7) for i in ids]
    code = (
        "import sys; from aiotts import shard_of; "
        "print(' '.join(str(shard_of(i, 7)) for i in sys.argv[1:]))"
    )
    there = subprocess.run(
        [sys.executable, "-c", code, *ids],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
    ).stdout.split()
    assert [int(s) for s in there] == here


@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_the_shards_of_an_input_are_disjoint_and_cover_it(count: int) -> None:
    ids = [str(uuid.UUID(int=n)) for n in range(2000)] + ["bad\udcff", "\x00"]
    parts = [list(take_shard(ids, Shard(k, count))) for k in range(count)]
    assert sorted(i for part in parts for i in part) == sorted(ids)
    assert sum(len(p) for p in parts) == len(ids)  # no id in two shards
    if count > 1:  # roughly even: hashing, not ranges
        assert min(len(p) for p in parts) > len(ids) / count * 0.8
    # Order kept within a shard; None takes everything.
    assert parts[0] == [i for i in ids if shard_of(i, count) == 0]
    assert list(take_shard(ids, None)) == ids


def test_shards_filter_keys_as_well_as_ids() -> None:
    rows = [{"key": f"text-{n}", "text": f"Text {n}"} for n in range(100)]
    mine = list(take_shard(rows, Shard(1, 3), key=lambda row: row["key"]))
    assert mine == [row for row in rows if shard_of(row["key"], 3) == 1]


async def test_async_filter_takes_the_same_ids() -> None:
    ids = [f"id-{n}" for n in range(200)]

    async def source():  # type: ignore[no-untyped-def]
        for task_id in ids:
            yield task_id
            await anyio.lowlevel.checkpoint()

    shard = Shard(2, 5)
    assert [i async for i in take_shard_async(source(), shard)] == list(take_shard(ids, shard))


pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("3", "is not K/N"),
        ("4/4", "shards are numbered from 0 to 3"),
        ("-1/4", "shards are numbered from 0 to 3"),
        ("1/0", "must be from 1"),
        ("a/4", "not a whole number: 'a'"),
        ("1/four", "not a whole number: 'four'"),
    ],
)
def test_a_bad_shard_says_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        parse_shard(text)


def test_kubernetes_indexed_job() -> None:
    env = {"JOB_COMPLETION_INDEX": "3", "AIOTTS_SHARDS": "8"}
    shard = shard_from_environment(env)
    assert shard == Shard(3, 8)
    assert shard is not None and "JOB_COMPLETION_INDEX=3" in shard.source
    assert shard_from_environment({"JOB_COMPLETION_INDEX": "0"}, count=2) == Shard(0, 2, "x")
    with pytest.raises(UsageError, match="not the number of shards: pass --shards N"):
        shard_from_environment({"JOB_COMPLETION_INDEX": "0"})
    with pytest.raises(UsageError, match="numbered from 0 to 7"):
        shard_from_environment({"JOB_COMPLETION_INDEX": "8"}, count=8)


def test_slurm_arrays_of_any_range() -> None:
    def slurm(task: int, low: int, count: int, step: int | None = None, high: int | None = None):  # type: ignore[no-untyped-def]
        env = {
            "SLURM_ARRAY_TASK_ID": str(task),
            "SLURM_ARRAY_TASK_MIN": str(low),
            "SLURM_ARRAY_TASK_COUNT": str(count),
        }
        if step is not None:
            env["SLURM_ARRAY_TASK_STEP"] = str(step)
        if high is not None:
            env["SLURM_ARRAY_TASK_MAX"] = str(high)
        return shard_from_environment(env)

    # --array=0-15, --array=1-16, --array=0-30:2: each task's position in its range.
    assert [(s.index, s.count) for s in (slurm(t, 0, 16, high=15) for t in (0, 15))] == [
        (0, 16),
        (15, 16),
    ]
    assert [slurm(t, 1, 16, high=16).index for t in (1, 2, 16)] == [0, 1, 15]
    assert [slurm(t, 0, 16, step=2, high=30).index for t in (0, 2, 30)] == [0, 1, 15]
    with pytest.raises(UsageError, match="not an even range"):
        slurm(5, 1, 3, high=7)  # --array=1,5,7
    with pytest.raises(UsageError, match="not an even range"):
        slurm(3, 0, 16, step=2, high=30)
    # With N given, the task id is the shard as it is: a lone task run again with
    # --array=5 (MIN 5, COUNT 1) is still shard 5 of 8.
    again = {
        "SLURM_ARRAY_TASK_ID": "5",
        "SLURM_ARRAY_TASK_MIN": "5",
        "SLURM_ARRAY_TASK_MAX": "5",
        "SLURM_ARRAY_TASK_COUNT": "1",
    }
    for shard in (
        shard_from_environment(again, count=8),
        shard_from_environment({**again, "AIOTTS_SHARDS": "8"}),
    ):
        assert shard is not None and (shard.index, shard.count) == (5, 8)
        assert "SLURM_ARRAY_TASK_ID=5 as given" in shard.source
    with pytest.raises(UsageError, match="numbered from 0 to 7"):
        shard_from_environment({"SLURM_ARRAY_TASK_ID": "8"}, count=8)
    shard = slurm(4, 1, 16, high=16)
    assert shard is not None
    assert "SLURM_ARRAY_TASK_ID=4, SLURM_ARRAY_TASK_MIN=1" in shard.source


def test_aws_batch_and_aiotts_shard() -> None:
    shard = shard_from_environment({"AWS_BATCH_JOB_ARRAY_INDEX": "5", "AIOTTS_SHARDS": "10"})
    assert shard is not None and (shard.index, shard.count) == (5, 10)
    assert "AWS_BATCH_JOB_ARRAY_INDEX=5" in shard.source
    shard = shard_from_environment({"AIOTTS_SHARD": "2/3", "JOB_COMPLETION_INDEX": "0"})
    assert shard is not None and (shard.index, shard.count) == (2, 3)  # AIOTTS_SHARD first
    assert shard_from_environment({"PATH": "/bin", "JOB_COMPLETION_INDEX": " "}) is None
    with pytest.raises(UsageError, match="AWS_BATCH_JOB_ARRAY_INDEX is not a whole number"):
        shard_from_environment({"AWS_BATCH_JOB_ARRAY_INDEX": "x"}, count=2)


def test_shards_of_a_shard_split_exactly_that_shard() -> None:
    ids = [f"TTS{n:06d}" for n in range(3000)]
    outer = Shard(1, 3)
    inner = [sub_shard(outer, j, 4) for j in range(4)]
    assert [(s.index, s.count) for s in inner] == [(1, 12), (4, 12), (7, 12), (10, 12)]
    parts = [set(take_shard(ids, s)) for s in inner]
    assert set().union(*parts) == set(take_shard(ids, outer))
    assert sum(len(p) for p in parts) == len(set(take_shard(ids, outer)))
    assert sub_shard(None, 1, 2) == Shard(1, 2, "x")


def test_each_shard_has_its_own_record() -> None:
    shard = Shard(3, 16)
    assert shard_record(None, "out", shard) == "out/aiotts.shard-3-of-16.db"
    assert shard_record("/x/run.db", "out", shard) == "/x/run.shard-3-of-16.db"
    assert shard_record("m.jsonl", "out", shard) == "m.shard-3-of-16.jsonl"
