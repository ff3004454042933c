"""The ledger half of the record store: a text's row around its POST, and stores of the
ledger's first form brought to the present one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from aiotts._store import OutcomeStore
from aiotts._texts import text_digest


def test_a_row_goes_sending_then_submitted_or_unsent(tmp_path: Path) -> None:
    path = tmp_path / "aiotts.db"
    with OutcomeStore(path) as store:
        store.record_sending("a", text_digest("A."), "a")
        store.record_sending("b", text_digest("B."), "b")
        store.record_sending("c", text_digest("C."), "c")
        # Committed before any POST: another connection sees them at once.
        with OutcomeStore(path, read_only=True) as reader:
            assert [(e.key, e.state) for e in reader.ledger()] == [
                ("a", "sending"),
                ("b", "sending"),
                ("c", "sending"),
            ]
        store.record_submitted("a", "TTS-a")
        store.record_unsent("b", "HTTP 400: too odd", uncertain=False)
        store.record_unsent("c", "the connection dropped", uncertain=True)
    with OutcomeStore(path, read_only=True) as reader:
        a, b, c = (reader.ledger_entry(key) for key in "abc")
        assert reader.task_id_for("b") is None and reader.ledger_entry("zz") is None
    assert a is not None and (a.state, a.task_id, a.digest, a.stem) == (
        "submitted",
        "TTS-a",
        text_digest("A."),
        "a",
    )
    assert b is not None and (b.state, b.error) == ("unsent", "HTTP 400: too odd")
    assert c is not None and (c.state, c.task_id) == ("uncertain", None)
    assert a.as_json()["id"] == "TTS-a" and "digest" not in a.as_json()


def test_a_ledger_of_the_first_form_keeps_its_ids(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE ledger (key BLOB PRIMARY KEY, task_id BLOB NOT NULL, time REAL NOT NULL)"
        " WITHOUT ROWID"
    )
    db.execute("INSERT INTO ledger VALUES (?, ?, 1.0)", (b"k", b"TTS-k"))
    db.commit()
    db.close()
    with OutcomeStore(path) as store:
        assert store.task_id_for("k") == "TTS-k"
        entry = store.ledger_entry("k")
        assert entry is not None and entry.state == "submitted" and entry.digest is None
        store.record_sending("new", text_digest("New."), "new")
    with OutcomeStore(path) as store:  # opening again changes nothing
        assert [e.key for e in store.ledger()] == ["k", "new"]


def test_a_store_without_a_ledger_reads_as_an_empty_one(tmp_path: Path) -> None:
    path = tmp_path / "bare.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.commit()
    db.close()
    with OutcomeStore(path, read_only=True) as reader:
        assert list(reader.ledger()) == []
