"""Ids asked about a chunk at a time as one JSON array: the same answers as one bound
value per id, which ids JSON cannot carry unchanged still take."""

from __future__ import annotations

import os
from pathlib import Path

from aiotts import OutcomeState
from aiotts._admission import SeenIds
from aiotts._models import Outcome
from aiotts._store import OutcomeStore, json_ids


def test_ids_json_cannot_carry_unchanged_are_left_to_bound_values() -> None:
    assert json_ids(["TTS-1", "é", "a\nb"]) == '["TTS-1","é","a\\nb"]'.encode()
    assert json_ids(["TTS-1", "\udcff"]) is None  # a lone surrogate
    assert json_ids(["a\x00b"]) is None


def test_proofs_come_in_the_order_asked_by_either_way(tmp_path: Path) -> None:
    ids = ["a", "é", "\udcff", "a\x00b"]
    with OutcomeStore(tmp_path / "r.db") as store:
        for n, task_id in enumerate(ids):
            wav = tmp_path / f"{n}.wav"
            wav.write_bytes(b"\x00" * 64)
            store.append(
                Outcome(
                    task_id,
                    OutcomeState.DONE,
                    files=(wav,),
                    bytes_written=64,
                    finished_at=n,
                    response_code="Ok",
                )
            )
        proofs = {}
        for n in range(len(ids)):
            seen = os.lstat(tmp_path / f"{n}.wav")
            proofs[ids[n]] = (f"{n}.wav", 64, seen.st_ctime_ns, seen.st_ino, float(n), "Ok")
        asked = ["never", "é", "a"]  # by JSON
        assert store.proofs(asked) == [(1, *proofs["é"]), (2, *proofs["a"])]
        asked = ["a\x00b", "never", "\udcff", "a"]  # by bound values
        assert store.proofs(asked) == [
            (0, *proofs["a\x00b"]),
            (2, *proofs["\udcff"]),
            (3, *proofs["a"]),
        ]
        assert store.proofs(["a", "a\x00"]) == [(0, *proofs["a"])]  # no prefix match


def test_sightings_by_json_and_by_bound_values_agree() -> None:
    seen = SeenIds()
    assert seen.first_sightings(["a", "b", "a"]) == [("a", "a"), ("b", "b")]  # JSON
    assert seen.first_sightings(["é", "b", "c", "é"]) == [("é", "é"), ("c", "c")]  # bound
    assert seen.first_sightings(["c", "a\x00", "a"]) == [("a\x00", "a\x00")]  # bound
    assert seen.first_sightings(["d", "b"]) == [("d", "d")]  # JSON, one seen before
    assert len(seen) == 6
    seen.close()
