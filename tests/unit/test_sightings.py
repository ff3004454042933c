"""A resume's first sightings from a store (``RecordedSightings``): every id is new once and
only once, whatever the store holds, the input's order, its duplicates, and what the batch
records meanwhile; each new id comes with the proof its row held; and an input in the
store's order is served by the rows read ahead, with no look-up by id."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotts import _sightings
from aiotts._admission import SeenIds, id_of
from aiotts._models import Outcome, OutcomeState
from aiotts._sightings import RecordedSightings
from aiotts._store import _ROWS_AFTER, OutcomeStore, Row

POOL: list[object] = [f"id-{n:02d}" for n in range(20)] + ["7", 7, "\udcff"]
"""Values of an input: the string ``"7"`` and the number 7 stand for the same id; the lone
surrogate stands for a byte that was not UTF-8 (kept, never dropped)."""


def outcome(folder: Path, task_id: str, kind: str) -> Outcome:
    """A ``done`` outcome of a whole file (recorded with its proof), or a failed one. An id
    that is not valid UTF-8 is refused by a batch, never fetched: only failed."""
    if kind == "proof" and task_id.isprintable():
        path = folder / f"{task_id}.wav"
        path.write_bytes(b"x" * 10)
        return Outcome(task_id, OutcomeState.DONE, files=(path,), bytes_written=10)
    return Outcome(task_id, OutcomeState.FAILED, error="refused", finished_at=1.0)


ID_KEYED = """
CREATE TABLE outcomes (
    id BLOB PRIMARY KEY, seq INTEGER NOT NULL, state TEXT NOT NULL, line BLOB NOT NULL,
    file TEXT, size INTEGER, ctime_ns INTEGER, ino INTEGER, time REAL, code TEXT
) WITHOUT ROWID;
"""
"""The table of a store of version 2, kept in id order."""


@contextlib.contextmanager
def store_holding(
    recorded: Sequence[tuple[str, str]], *, id_keyed: bool = False
) -> Iterator[OutcomeStore]:
    """A store in a fresh folder holding ``recorded`` (id, kind), in that order; with
    ``id_keyed``, a store of version 2, whose table is kept in id order."""
    with tempfile.TemporaryDirectory() as folder:
        if id_keyed:
            with contextlib.closing(sqlite3.connect(Path(folder) / "a.db")) as db:
                db.executescript(ID_KEYED)
        with OutcomeStore(Path(folder) / "a.db") as store:
            for task_id, kind in recorded:
                store.add(outcome(Path(folder), task_id, kind))
            store.commit()
            yield store


@contextlib.contextmanager
def window_sizes(
    read: int, ahead: int, most: int, judged_after: int, behind: int
) -> Iterator[None]:
    with (
        mock.patch.object(_sightings, "_READ", read),
        mock.patch.object(_sightings, "_AHEAD", ahead),
        mock.patch.object(_sightings, "_MOST", most),
        mock.patch.object(_sightings, "_JUDGED_AFTER", judged_after),
        mock.patch.object(_sightings, "_BEHIND", behind),
    ):
        yield


def asked_by_id(store: OutcomeStore) -> list[int]:
    """Counts, as they happen, the ids the store is asked about one by one."""
    asked = [0]
    rows_of = store.rows_of

    def counting(task_ids: Sequence[str]) -> list[Row]:
        asked[0] += len(task_ids)
        return rows_of(task_ids)

    store.rows_of = counting  # type: ignore[method-assign]
    return asked


def read_ahead(store: OutcomeStore) -> list[int]:
    """Counts, as they happen, the rows read ahead in the store's order."""
    read = [0]
    rows_after = store.rows_after

    def counting(after: int, until: int, limit: int) -> list[Row]:
        rows = rows_after(after, until, limit)
        read[0] += len(rows)
        return rows

    store.rows_after = counting  # type: ignore[method-assign]
    return read


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_each_id_is_new_at_its_first_sighting_only_with_the_proof_it_had(
    data: st.DataObject,
) -> None:
    ids = sorted({id_of(raw) for raw in POOL})
    order = data.draw(st.permutations(ids), label="the store's order")
    kinds = data.draw(
        st.lists(st.sampled_from(["proof", "failed", None]), min_size=len(ids), max_size=len(ids))
    )
    recorded = [(task_id, kind) for task_id, kind in zip(order, kinds, strict=True) if kind]
    raws = data.draw(st.lists(st.sampled_from(POOL), max_size=60), label="input")
    sizes = data.draw(st.tuples(*(st.integers(1, 12) for _ in range(5))), label="window")
    with store_holding(recorded) as store, window_sizes(*sizes):
        before = {task_id: store.proofs([task_id]) for task_id in ids}
        seen = SeenIds()
        sightings = RecordedSightings(store, seen)
        first_seen: set[str] = set()
        at = 0
        while at < len(raws):
            size = data.draw(st.integers(1, 9), label="chunk")
            chunk = raws[at : at + size]
            at += size
            fresh_ids, fresh_raws, proofs = sightings.new_among(chunk)

            expected: list[object] = []
            for raw in chunk:
                if id_of(raw) not in first_seen:
                    first_seen.add(id_of(raw))
                    expected.append(raw)
            assert fresh_raws == expected
            assert fresh_ids == [id_of(raw) for raw in expected]
            proven = [(task_id, row[1:7]) for task_id, row in proofs]
            assert proven == [
                (task_id, before[task_id][0][1:])
                for task_id in fresh_ids
                if before[task_id]  # a done row with a proof, before the batch
            ]
            window = sightings._window
            assert window is None or len(window) <= sizes[2]
            # The batch records some of the ids it took in: a later sighting finds a row
            # of this batch (a failure, or a file with a new proof).
            for task_id in fresh_ids:
                kind = data.draw(st.sampled_from(["proof", "failed", None]), label=task_id)
                if kind:
                    store.add(outcome(Path(store.folder), task_id, kind))
            store.commit()
        seen.close()


@pytest.mark.parametrize("id_keyed", [False, True], ids=["version 3", "version 2"])
def test_an_input_in_the_stores_order_is_served_ahead_with_no_look_up_by_id(
    id_keyed: bool,
) -> None:
    ids = [f"{n:05d}-{random.Random(n).getrandbits(64):x}" for n in range(3000)]
    random.Random(1).shuffle(ids)  # keys in no order: the store's order is its own
    with store_holding([(task_id, "proof") for task_id in ids], id_keyed=id_keyed) as store:
        # Read in turn: the table itself (kept in seq order), or the index of proofs.
        plan = str(store._db.execute("EXPLAIN QUERY PLAN " + _ROWS_AFTER, (0, 1, 1)).fetchall())
        assert ("COVERING INDEX outcomes_proofs" if id_keyed else "INTEGER PRIMARY KEY") in plan
        version = store._db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        assert version == ("2" if id_keyed else "3",)
        asked = asked_by_id(store)
        sightings = RecordedSightings(store, SeenIds())
        # As a batch with tasks in flight records them: shuffled within runs of 32.
        shuffle = random.Random(2).shuffle
        runs = [ids[n : n + 32] for n in range(0, len(ids), 32)]
        for run in runs:
            shuffle(run)
        given_ids = [task_id for run in runs for task_id in run]
        proven = []
        for at in range(0, len(given_ids), 512):
            fresh, _, proofs = sightings.new_among(given_ids[at : at + 512])
            assert fresh == given_ids[at : at + 512]
            proven += [task_id for task_id, _ in proofs]
        assert proven == given_ids
        assert asked[0] == 0
        assert sightings.reading_ahead


def test_the_window_follows_an_input_that_starts_further_in_the_store() -> None:
    others = [f"other-{n}" for n in range(6000)]
    ids = [f"mine-{n}" for n in range(1500)]
    with store_holding([(task_id, "proof") for task_id in others + ids]) as store:
        asked = asked_by_id(store)
        read = read_ahead(store)
        sightings = RecordedSightings(store, SeenIds())
        for at in range(0, len(ids), 512):
            fresh, _, proofs = sightings.new_among(ids[at : at + 512])
            assert fresh == ids[at : at + 512] and len(proofs) == len(fresh)
        assert asked[0] <= 512  # of the first chunk only; the window then moved to it
        assert sightings.reading_ahead
        assert read[0] < len(others)  # most of the rows between were skipped


def test_reading_ahead_stops_for_an_input_in_another_order() -> None:
    ids = [f"id-{n}" for n in range(400)]
    with store_holding([(task_id, "proof") for task_id in ids]) as store:
        given_ids = ids[:]
        random.Random(3).shuffle(given_ids)
        sightings = RecordedSightings(store, SeenIds())
        with window_sizes(read=8, ahead=16, most=64, judged_after=64, behind=8):
            proven = []
            for at in range(0, len(given_ids), 16):
                proven += [t for t, _ in sightings.new_among(given_ids[at : at + 16])[2]]
        assert proven == given_ids
        assert not sightings.reading_ahead
        assert repr(sightings) == "<RecordedSightings until=400 off>"


def test_an_input_in_the_stores_order_keeps_reading_ahead_over_many_small_chunks() -> None:
    ids = [f"id-{n}" for n in range(400)]
    with store_holding([(task_id, "proof") for task_id in ids]) as store:
        asked = asked_by_id(store)
        sightings = RecordedSightings(store, SeenIds())
        assert repr(sightings) == "<RecordedSightings until=400 0 ahead>"
        with window_sizes(read=8, ahead=16, most=64, judged_after=64, behind=8):
            for at in range(0, len(ids), 8):  # the judgement spans eight chunks
                fresh, _, proofs = sightings.new_among(ids[at : at + 8])
                assert [task_id for task_id, _ in proofs] == fresh == ids[at : at + 8]
        assert sightings.reading_ahead and asked[0] == 0
        assert repr(sightings) == "<RecordedSightings until=400 0 ahead>"


@pytest.mark.parametrize(
    "chunk",
    [["a", "a", "b"], ["a", "b", "a", "b"], ["x", "a", "a", "x", "b"], ["b", "a", "x", "a", "b"]],
)
def test_ids_with_no_row_seen_twice_in_one_chunk_are_new_once(chunk: list[str]) -> None:
    with store_holding([("x", "proof")]) as store:  # "a" and "b" have no row
        sightings = RecordedSightings(store, SeenIds())
        fresh, raws, proofs = sightings.new_among(chunk)
        assert fresh == raws == list(dict.fromkeys(chunk))
        assert [task_id for task_id, _ in proofs] == (["x"] if "x" in chunk else [])
