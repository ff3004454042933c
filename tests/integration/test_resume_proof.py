"""Resume by chunks and by file proofs: an unchanged file is skipped with one ``lstat``,
any other file gets the full check, and a file that fails it is fetched again."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import anyio
import pytest

from aiotts import Limits, OutcomeState, TTSClient
from aiotts._admission import ResumeRules, SeenIds
from aiotts._files import OutputTarget
from aiotts._manifest import file_is_complete, read_manifest
from aiotts._models import Outcome
from aiotts._store import OutcomeStore, key_of
from aiotts.emulator import Emulator
from tests.helpers import client_for

pytestmark = pytest.mark.anyio


async def fetch(client: TTSClient, ids: list[str], out: Path, **options: object) -> list[Outcome]:
    batch = client.fetch_many(ids, out, manifest=out / "aiotts.db", **options)  # type: ignore[arg-type]
    return [outcome async for outcome in batch]


def replace_with(path: Path, content: bytes) -> None:
    """Put ``content`` at ``path`` as a new file (a new inode, a new mtime)."""
    fresh = path.with_suffix(".new")
    fresh.write_bytes(content)
    os.utime(fresh, ns=(1, 1))
    os.replace(fresh, path)


async def test_a_file_replaced_or_truncated_since_is_fetched_again(
    emulator: Emulator, client: TTSClient, tmp_path: Path
) -> None:
    ids = emulator.create_tasks(6)
    out = tmp_path / "out"
    first = await fetch(client, ids, out)
    assert all(o.ok for o in first)
    files = {o.task_id: o.files[0] for o in first}
    replaced, truncated, emptied = ids[0], ids[1], ids[2]
    size = files[replaced].stat().st_size
    replace_with(files[replaced], b"\x00" * size)  # equal size, not a WAV, new inode, mtime
    with open(files[truncated], "r+b") as file:
        file.truncate(size // 2)
    with open(files[emptied], "r+b") as file:  # what a power cut may leave
        file.truncate(0)
    fetched_before = {i: emulator.record(i).fetches for i in ids}

    again = await fetch(client, ids, out, resume=True)

    assert sorted(o.task_id for o in again) == sorted(ids)  # one outcome per id
    by_id = {o.task_id: o for o in again}
    for task_id in (replaced, truncated, emptied):
        assert by_id[task_id].ok and not by_id[task_id].resumed
        assert emulator.record(task_id).fetches == fetched_before[task_id] + 1
        assert file_is_complete(files[task_id])
    for task_id in ids[3:]:
        assert by_id[task_id].resumed and by_id[task_id].files == (files[task_id],)
        assert by_id[task_id].bytes_written == files[task_id].stat().st_size
        assert emulator.record(task_id).fetches == fetched_before[task_id]


async def test_an_unchanged_file_is_proven_by_its_proof_and_a_touched_one_checked_whole(
    emulator: Emulator, client: TTSClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = emulator.create_tasks(3)
    out = tmp_path / "out"
    first = {o.task_id: o for o in await fetch(client, ids, out)}
    # Only the proof of ids[1] changes (a new change time): the full check still finds its
    # file whole.
    with OutcomeStore(out / "aiotts.db") as store:
        (row,) = store.recorded([key_of(ids[1])])
    touched = out / row[2]
    os.utime(touched, ns=(2, 2))
    checked_whole: list[str] = []
    full_check = ResumeRules._judge

    def judge(rules: ResumeRules, task_id: str, entry: object) -> object:
        checked_whole.append(task_id)
        return full_check(rules, task_id, entry)  # type: ignore[arg-type]

    monkeypatch.setattr(ResumeRules, "_judge", judge)
    with OutcomeStore(out / "aiotts.db") as store:
        rules = ResumeRules(store, lambda i: OutputTarget.in_folder(out, i), folder=out)
        skips = rules.finished_among(ids)
    assert checked_whole == [ids[1]]  # the others were proven by one lstat each
    assert set(skips.recorded) == set(ids) and not skips.unrecorded
    for task_id in ids:
        resumed, before = skips.recorded[task_id], first[task_id]
        assert resumed.resumed and resumed.ok
        assert (resumed.files, resumed.bytes_written) == (before.files, before.bytes_written)
        assert resumed.response_code == before.response_code
        assert resumed.finished_at == round(before.finished_at, 3)


async def test_a_store_without_proof_columns_is_migrated_and_checked_whole(
    emulator: Emulator, client: TTSClient, tmp_path: Path
) -> None:
    ids = emulator.create_tasks(4)
    out = tmp_path / "out"
    await fetch(client, ids, out)
    # Make it a store of version 1: the table as it was, its lines kept.
    db = sqlite3.connect(out / "aiotts.db")
    db.executescript(
        """
        CREATE TABLE old (id BLOB PRIMARY KEY, seq INTEGER NOT NULL, state TEXT NOT NULL,
                          line BLOB NOT NULL) WITHOUT ROWID;
        INSERT INTO old SELECT id, seq, state, line FROM outcomes;
        DROP TABLE outcomes;
        ALTER TABLE old RENAME TO outcomes;
        CREATE INDEX outcomes_by_seq ON outcomes (seq);
        UPDATE meta SET value = '1' WHERE key = 'version';
        """
    )
    db.close()
    junk = out / f"{ids[0]}.wav"
    replace_with(junk, b"\x00" * junk.stat().st_size)
    fetched_before = {i: emulator.record(i).fetches for i in ids}

    again = await fetch(client, ids, out, resume=True)

    by_id = {o.task_id: o for o in again}
    assert not by_id[ids[0]].resumed and by_id[ids[0]].ok
    assert emulator.record(ids[0]).fetches == fetched_before[ids[0]] + 1
    assert all(by_id[i].resumed for i in ids[1:])
    with OutcomeStore(out / "aiotts.db", read_only=True) as store:
        columns = {row[1] for row in store._db.execute("PRAGMA table_info(outcomes)")}
        assert {"file", "size", "ctime_ns", "ino"} <= columns
        (version,) = store._db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        assert version == "2"


async def test_an_imported_manifest_gives_no_proof(tmp_path: Path) -> None:
    """Files named by an imported JSONL manifest were never checked by this store: no
    proof, so the first resume checks them whole."""
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"\x00" * 64)
    manifest = tmp_path / "manifest.jsonl"
    outcome = Outcome("a", OutcomeState.DONE, files=(wav,), bytes_written=64, finished_at=1.0)
    from aiotts._manifest import Manifest

    with_lines = Manifest(manifest)
    with_lines.append(outcome)
    with_lines.close()
    with OutcomeStore(tmp_path / "r.db") as store:
        assert store.import_jsonl(manifest) == 1
        (row,) = store.recorded([key_of("a")])
        assert row[2] is None and row[8] is not None
        store.append(outcome)  # recorded by a batch: the file's proof is taken
        (row,) = store.recorded([key_of("a")])
        assert row[2] == "a.wav" and row[3] == 64 and row[8] is None


async def test_many_ids_in_chunks_each_end_once_with_duplicates_and_bad_ids(
    emulator: Emulator, tmp_path: Path
) -> None:
    ids = emulator.create_tasks(30)
    out = tmp_path / "out"
    async with client_for(emulator, limits=Limits(tasks_in_flight=4)) as client:
        await fetch(client, ids[:20], out)
        mixed: list[object] = [*ids, *ids[5:25], "", "x" * 2000, ids[0], 7, 7]
        again = await fetch(client, mixed, out, resume=True)
    by_id: dict[str, list[Outcome]] = {}
    for outcome in again:
        by_id.setdefault(outcome.task_id, []).append(outcome)
    assert all(len(v) == 1 for v in by_id.values())
    assert set(by_id) == {*ids, "", "x" * 2000, "7"}
    assert sum(by_id[i][0].resumed for i in ids) == 20
    assert all(by_id[i][0].ok for i in ids)
    assert by_id[""][0].state is OutcomeState.ABORTED
    assert len(read_manifest(out / "aiotts.db")) == len(by_id)


async def test_a_cancel_while_waiting_for_room_ends_every_id_taken_in(
    emulator: Emulator, tmp_path: Path
) -> None:
    ids = emulator.create_tasks(40)
    out = tmp_path / "out"
    async with client_for(emulator, limits=Limits(tasks_in_flight=3)) as client:
        await fetch(client, ids[:30], out)
        batch = client.fetch_many(ids, out, manifest=out / "aiotts.db", resume=True)
        seen = []
        async with batch:
            async for outcome in batch:
                seen.append(outcome)
                if len(seen) == 2:
                    break  # the rest of the chunk waits for room
        await anyio.sleep(0)
    record = read_manifest(out / "aiotts.db")
    # Every id of the chunk was taken in: each is recorded, done before or cancelled now.
    assert set(record) == set(ids)
    cancelled = {i for i, e in record.items() if e.state is OutcomeState.CANCELLED}
    assert cancelled and cancelled <= set(ids[30:])


def test_first_sightings_over_chunks() -> None:
    seen = SeenIds()
    assert seen.first_sightings(["a", "b", "a", 7]) == [("a", "a"), ("b", "b"), ("7", 7)]
    assert seen.first_sightings(["7", "c", "b", "c"]) == [("c", "c")]
    assert seen.first_sightings([]) == []
    assert seen.first_sighting("d") == "d" and seen.first_sighting("c") is None
    assert len(seen) == 5
    seen.close()


def test_a_store_killed_before_its_first_commit_reads_as_empty(tmp_path: Path) -> None:
    assert read_manifest(tmp_path / "r.db") == {}  # killed before it was even made
    (tmp_path / "r.db").touch()
    assert read_manifest(tmp_path / "r.db") == {}
    with OutcomeStore(tmp_path / "r.db", read_only=True) as store:
        assert list(store.lines()) == [] and store.get("a") is None


async def test_a_crashed_runs_temporary_files_are_gone_when_the_batch_ends(
    emulator: Emulator, client: TTSClient, tmp_path: Path
) -> None:
    """The folder is read for them in a thread while the batch runs (a folder of a
    million results takes seconds to read), and the batch ends only after it."""
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    out = tmp_path / "out"
    out.mkdir()
    stale = [out / f".TTS{n}.wav.{int(dead.stdout)}.{n}.part" for n in range(3000)]
    for path in stale:
        path.write_bytes(b"half")
    outcomes = await fetch(client, emulator.create_tasks(2), out)
    assert all(o.ok for o in outcomes)
    assert not any(path.exists() for path in stale)
    for path in stale:
        path.write_bytes(b"half")
    assert await fetch(client, [], out) == []  # ends at once, yet after the removal
    assert not any(path.exists() for path in stale)


async def test_a_cancel_after_the_batch_deadline_ends_every_id_taken_in(tmp_path: Path) -> None:
    from aiotts.emulator import EmulatorConfig

    async with Emulator(EmulatorConfig(pending_seconds=60, processing_seconds=0)) as emu:
        ids = emu.create_tasks(2) + [f"never-asked-{n}" for n in range(1100)]
        out = tmp_path / "out"
        async with client_for(emu, limits=Limits(tasks_in_flight=2)) as client:
            batch = client.fetch_many(ids, out, manifest=out / "aiotts.db", batch_timeout=0.3)
            async with batch:
                async for outcome in batch:
                    assert outcome.state is OutcomeState.EXPIRED
                    break  # the second chunk waits for room to expire: cancelled instead
    record = read_manifest(out / "aiotts.db")
    # The first two chunks were taken in, and each of their ids is recorded.
    assert set(ids[:1024]) <= set(record) <= set(ids)
    states = {entry.state for entry in record.values()}
    assert states == {OutcomeState.EXPIRED, OutcomeState.CANCELLED}
