"""The record store: last word per id, the ledger, imports, merges, one writer, reports."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from aiotts import OutcomeState, OutputError
from aiotts._admission import SeenIds
from aiotts._manifest import Manifest, read_manifest
from aiotts._models import Outcome
from aiotts._store import OutcomeStore, is_store_path, merged_records, open_record


def outcome(task_id: str, state: OutcomeState = OutcomeState.DONE, **more: object) -> Outcome:
    return Outcome(task_id, state, finished_at=1.0, **more)  # type: ignore[arg-type]


def test_the_last_word_per_id_wins_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    with OutcomeStore(path) as store:
        store.append(outcome("a", OutcomeState.FAILED, error="first"))
        store.append(outcome("b", OutcomeState.MISSING))
        store.append(outcome("a", OutcomeState.DONE, files=(tmp_path / "a.wav",), bytes_written=9))
    with OutcomeStore(path) as store:
        entry = store.get("a")
        assert entry is not None and entry.state is OutcomeState.DONE
        assert entry.files == (tmp_path / "a.wav",)  # recorded relative, read back joined
        assert store.get("nobody") is None
        # The order of last words: b, then a.
        assert [orjson.loads(line)["id"] for line in store.lines()] == ["b", "a"]
        store.append(outcome("c"))  # the sequence goes on after a reopen
        assert [orjson.loads(line)["id"] for line in store.lines()] == ["b", "a", "c"]


def test_an_added_outcome_is_durable_only_once_committed(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    store = OutcomeStore(path)
    store.add(outcome("a"))
    with OutcomeStore(path, read_only=True) as reader:
        assert reader.get("a") is None
    store.commit()
    with OutcomeStore(path, read_only=True) as reader:
        assert reader.get("a") is not None
    store.close()
    store.close()  # idempotent


def test_ids_that_are_not_utf8_are_recorded_and_found(tmp_path: Path) -> None:
    odd = "TTS\udcff\udcfe-latin1"
    with OutcomeStore(tmp_path / "r.db") as store:
        store.append(outcome(odd, OutcomeState.ABORTED, error="not valid UTF-8"))
        entry = store.get(odd)
        assert entry is not None and entry.task_id == odd
        assert [e.task_id for e in store.entries()] == [odd]


def test_the_ledger_maps_keys_to_task_ids(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    with OutcomeStore(path) as store:
        store.record_submitted("text-1", "TTS1")
        store.record_submitted("text-2", "TTS2", commit=False)
        store.record_submitted("text-1", "TTS1b")  # the last word wins; commits text-2 too
    with OutcomeStore(path, read_only=True) as store:
        assert store.task_id_for("text-1") == "TTS1b"
        assert store.task_id_for("text-2") == "TTS2"
        assert store.task_id_for("text-3") is None


def test_one_writer_per_store_readers_welcome(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    with OutcomeStore(path) as writer:
        writer.append(outcome("a"))
        with pytest.raises(OutputError, match="being written by another run") as caught:
            OutcomeStore(path)
        assert caught.value.path == str(path)
        with OutcomeStore(path, read_only=True) as reader:
            assert reader.get("a") is not None
    OutcomeStore(path).close()  # the lock went with the writer


def test_a_jsonl_manifest_is_imported_once(tmp_path: Path) -> None:
    jsonl = tmp_path / "manifest.jsonl"
    manifest = Manifest(jsonl)
    manifest.append(outcome("a", OutcomeState.FAILED))
    manifest.append(outcome("b", files=(tmp_path / "b.wav",), bytes_written=5))
    manifest.append(outcome("a", OutcomeState.DONE, files=(tmp_path / "a.wav",), bytes_written=7))
    manifest.close()
    with jsonl.open("ab") as file:
        file.write(b'{"v":2,"id":"torn","sta')  # a torn last line is not an entry
    path = tmp_path / "r.db"
    with OutcomeStore(path) as store:
        assert store.import_jsonl(jsonl) == 3
        assert store.import_jsonl(jsonl) == 0  # unchanged: not read again
        assert store.import_jsonl(tmp_path / "absent.jsonl") == 0
    assert read_manifest(path) == read_manifest(jsonl)


def test_records_merge_later_ones_winning(tmp_path: Path) -> None:
    old = Manifest(tmp_path / "old.jsonl")
    old.append(outcome("a", OutcomeState.FAILED))
    old.append(outcome("b", OutcomeState.MISSING))
    old.close()
    with OutcomeStore(tmp_path / "new.db") as store:
        store.append(outcome("a", OutcomeState.DONE))
        store.append(outcome("c", OutcomeState.EXPIRED))
    merged = list(merged_records([tmp_path / "old.jsonl", tmp_path / "new.db"]))
    ids = {orjson.loads(line)["id"]: state for state, line in merged}
    assert ids == {"a": "done", "b": "missing", "c": "expired"}
    reversed_order = list(merged_records([tmp_path / "new.db", tmp_path / "old.jsonl"]))
    assert {orjson.loads(line)["id"]: s for s, line in reversed_order}["a"] == "failed"


def test_the_suffix_chooses_the_kind_of_record(tmp_path: Path) -> None:
    assert is_store_path("x.db") and is_store_path("x.SQLite") and is_store_path("x.sqlite3")
    assert not is_store_path("x.jsonl") and not is_store_path("manifest")
    first, second = open_record(tmp_path / "a.db"), open_record(tmp_path / "a.jsonl")
    assert isinstance(first, OutcomeStore) and isinstance(second, Manifest)
    first.close()
    second.close()


def test_a_file_that_is_not_a_store_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database" * 100)
    with pytest.raises(OutputError, match="not an aiotts store") as caught:
        OutcomeStore(path)
    assert caught.value.path == str(path)


def test_a_link_at_the_store_path_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim.db"
    sqlite3.connect(victim).close()
    link = tmp_path / "r.db"
    link.symlink_to(victim)
    for read_only in (False, True):
        with pytest.raises(OutputError, match="symbolic link"):
            OutcomeStore(link, read_only=read_only)


def test_seen_ids_count_each_id_once() -> None:
    seen = SeenIds()
    assert [seen.first_sighting(x) for x in ["a", "b", "a", 7, "7", 7]] == [
        "a",
        "b",
        None,
        "7",
        None,
        None,
    ]
    assert len(seen) == 3
    seen.close()
