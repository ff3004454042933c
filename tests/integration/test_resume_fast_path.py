"""The fast path of a resume: ids checked a chunk at a time, outcomes of proven files
built without the dataclass call, chunks of ids all done before handed out a slice at a
time, seen ids kept as their bytes. Each must give what the slow path gives."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from aiotts import Limits, OutcomeState, TTSClient
from aiotts._admission import SeenIds, all_plain, id_problem, resumed_done
from aiotts._manifest import read_manifest
from aiotts._models import Outcome
from aiotts.emulator import Emulator
from tests.helpers import client_for

pytestmark = pytest.mark.anyio


def test_a_resumed_outcome_equals_the_one_the_constructor_makes() -> None:
    files = (Path("/out/a.wav"),)
    fast = resumed_done("a", files, 2000, 12.5, "Ok")
    slow = Outcome(
        "a",
        OutcomeState.DONE,
        files,
        2000,
        finished_at=12.5,
        response_code="Ok",
        resumed=True,
    )
    assert fast == slow
    # Every field is set (an unset slot would raise here), to what the constructor sets.
    for field in dataclasses.fields(Outcome):
        assert getattr(fast, field.name) == getattr(slow, field.name), field.name
    assert fast.cause is None and fast.key is None and fast.ok
    assert dataclasses.replace(fast, error="x").error == "x"
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.task_id = "b"  # type: ignore[misc]


@pytest.mark.parametrize(
    "bad",
    ["", "   ", "\u2003", "a\x00b", "a\nb", "x" * 1001, "\udcff", 7, None, b"id"],
)
def test_a_chunk_with_one_bad_id_is_not_plain(bad: object) -> None:
    good = ["TTS-1", "e3b0c442-98fc-1c14-9afb-f4c8996fb924", "x" * 1000, " padded "]
    assert all_plain(good)
    assert all(id_problem(raw) is None for raw in good)
    assert id_problem(bad) is not None
    for position in (0, 2, 4):
        chunk = [*good[:position], bad, *good[position:]]
        assert not all_plain(chunk)
    assert not all_plain([])


def test_long_ids_are_kept_as_digests_and_still_seen_once() -> None:
    seen = SeenIds()
    long_a, long_b = "a" * 65, "a" * 64 + "b"  # over 64 bytes: kept as digests
    short = "a" * 64  # 64 bytes: kept as it is
    first = seen.first_sightings([long_a, short, long_b, long_a])
    assert first == [(long_a, long_a), (short, short), (long_b, long_b)]
    assert seen.first_sightings([long_b, "\udcff", short, "\udcff", "new"]) == [
        ("\udcff", "\udcff"),
        ("new", "new"),
    ]
    assert seen.first_sighting(long_a) is None and seen.first_sighting("c" * 300) == "c" * 300
    # A chunk all new after one with duplicates: the plain insert path.
    assert seen.first_sightings(["p", "q"]) == [("p", "p"), ("q", "q")]
    assert seen.first_sightings(["q", "p"]) == []
    assert len(seen) == 8
    seen.close()


async def fetch(client: TTSClient, ids: list[str], out: Path, **options: object) -> list[Outcome]:
    batch = client.fetch_many(ids, out, manifest=out / "aiotts.db", **options)  # type: ignore[arg-type]
    return [outcome async for outcome in batch]


async def test_ids_all_done_before_come_back_once_each_in_order_through_little_room(
    emulator: Emulator, tmp_path: Path
) -> None:
    ids = emulator.create_tasks(25)
    out = tmp_path / "out"
    async with client_for(emulator, limits=Limits(tasks_in_flight=3)) as client:
        first = await fetch(client, ids, out)
        fetched = {i: emulator.record(i).fetches for i in ids}
        batch = client.fetch_many(ids, out, manifest=out / "aiotts.db", resume=True)
        again = [outcome async for outcome in batch]
        statistics = batch.statistics()
    assert [o.task_id for o in again] == ids  # one each, in the order given
    assert all(o.resumed and o.ok for o in again)
    # Proven or fully checked, an outcome's time is the record's, to the millisecond.
    recorded = read_manifest(out / "aiotts.db")
    assert {o.task_id: o.finished_at for o in again} == {i: recorded[i].time for i in ids}
    assert any(round(o.finished_at, 3) != o.finished_at for o in first)  # it was finer
    assert {o.task_id: o.files for o in again} == {o.task_id: o.files for o in first}
    assert all(emulator.record(i).fetches == fetched[i] for i in ids)
    assert statistics.resumed == 25 and statistics.states["done"] == 25


async def test_a_break_while_done_ids_wait_for_room_leaves_the_record_as_it_was(
    emulator: Emulator, tmp_path: Path
) -> None:
    ids = emulator.create_tasks(12)
    out = tmp_path / "out"
    async with client_for(emulator, limits=Limits(tasks_in_flight=2)) as client:
        await fetch(client, ids, out)
        before = read_manifest(out / "aiotts.db")
        batch = client.fetch_many(ids, out, manifest=out / "aiotts.db", resume=True)
        seen = []
        async with batch:
            async for outcome in batch:
                seen.append(outcome)
                if len(seen) == 3:
                    break  # the rest of the chunk waits for room
    assert [o.task_id for o in seen] == ids[:3]
    after = read_manifest(out / "aiotts.db")
    assert after == before  # nothing recorded again, nothing cancelled
    assert all(entry.state is OutcomeState.DONE for entry in after.values())


def test_proofs_are_those_of_done_records_with_a_proof_only(tmp_path: Path) -> None:
    from aiotts._store import OutcomeStore

    wav = tmp_path / "a.wav"
    wav.write_bytes(b"\x00" * 64)
    done = Outcome("a", OutcomeState.DONE, files=(wav,), bytes_written=64, finished_at=2.0)
    with OutcomeStore(tmp_path / "r.db") as store:
        store.append(done)
        store.append(dataclasses.replace(done, task_id="b", bytes_written=63))  # no proof
        store.append(Outcome("c", OutcomeState.FAILED, error="no", finished_at=1.0))
        ids = list("dcba")
        seen = wav.lstat()
        assert store.proofs(ids) == [(3, "a.wav", 64, seen.st_ctime_ns, seen.st_ino, 2.0, None)]
        store.append(dataclasses.replace(done, state=OutcomeState.FAILED))  # the last word
        assert store.proofs(ids) == []
