"""A clean end spares the next batch the look for leftover temporary files.

A batch that ended cleanly records the folder's mark in its store (``clean_end``); the
next batch into that folder, finding it unchanged, does not read it. Opening the store
for writing deletes the mark, so a run killed at any moment leaves none, and anything
that touched the folder since (a crashed run without that store, say) moves its mark:
either way the folder is read and the stale temporary files are removed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import wave
from pathlib import Path

import anyio
import pytest

import aiotts._client
from aiotts import OutcomeState, TTSClient
from aiotts._admission import folder_mark
from aiotts._files import OutputTarget
from aiotts._models import Outcome
from aiotts._store import OutcomeStore
from aiotts.emulator import Emulator
from tests.helpers import cli_env, client_for

pytestmark = pytest.mark.anyio

HANG_GUARD = 60  # seconds: only so that a regression fails instead of hanging the suite


@pytest.fixture
def folder_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The folders read for leftover temporary files, in order."""
    reads: list[Path] = []
    remove = aiotts._client.remove_stale_parts

    def counted(folder: Path) -> int:
        reads.append(folder)
        return remove(folder)

    monkeypatch.setattr(aiotts._client, "remove_stale_parts", counted)
    return reads


def dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def plant_stale_part(out: Path) -> Path:
    """A temporary file as a crashed run leaves it (its writer no longer runs)."""
    part = out / f".TTS-gone.wav.{dead_pid()}.7.part"
    part.write_bytes(b"half")
    return part


def clean_end_of(store: Path) -> str | None:
    with sqlite3.connect(store) as db:
        row = db.execute("SELECT value FROM meta WHERE key = 'clean_end'").fetchone()
    return None if row is None else str(row[0])


async def fetch(client: TTSClient, ids: list[str], out: Path, **options: object) -> list[Outcome]:
    batch = client.fetch_many(ids, out, manifest=out / "aiotts.db", **options)  # type: ignore[arg-type]
    return [outcome async for outcome in batch]


async def test_a_clean_end_is_recorded_and_the_next_batch_does_not_read_the_folder(
    emulator: Emulator, client: TTSClient, tmp_path: Path, folder_reads: list[Path]
) -> None:
    ids = emulator.create_tasks(3)
    out = tmp_path / "out"
    assert all(o.ok for o in await fetch(client, ids, out))
    assert folder_reads == [out]  # a new store: no clean end to trust
    assert clean_end_of(out / "aiotts.db") == folder_mark(out)
    again = await fetch(client, ids, out, resume=True)
    assert [o.task_id for o in again] == ids and all(o.resumed for o in again)
    assert folder_reads == [out]  # unchanged since the clean end: not read
    assert clean_end_of(out / "aiotts.db") == folder_mark(out)  # and marked again


async def test_a_part_left_since_the_clean_end_is_removed(
    emulator: Emulator, client: TTSClient, tmp_path: Path, folder_reads: list[Path]
) -> None:
    """A run without this store crashed in the folder after the clean end: the folder's
    mark moved, so the next batch reads the folder."""
    ids = emulator.create_tasks(2)
    out = tmp_path / "out"
    await fetch(client, ids, out)
    part = plant_stale_part(out)
    again = await fetch(client, ids, out, resume=True)
    assert all(o.resumed for o in again)
    assert folder_reads == [out, out] and not part.exists()


async def test_a_folder_whose_mark_did_not_move_is_not_read(
    emulator: Emulator, client: TTSClient, tmp_path: Path, folder_reads: list[Path]
) -> None:
    """The mark is the whole test: a part planted with the folder's time set back is not
    looked for (so it is the mark, not luck, that spares the read above)."""
    ids = emulator.create_tasks(2)
    out = tmp_path / "out"
    await fetch(client, ids, out)
    before = os.stat(out)
    part = plant_stale_part(out)
    os.utime(out, ns=(before.st_atime_ns, before.st_mtime_ns))
    await fetch(client, ids, out, resume=True)
    assert folder_reads == [out] and part.exists()


async def test_a_batch_that_did_not_end_cleanly_leaves_no_mark(
    emulator: Emulator, client: TTSClient, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    await fetch(client, emulator.create_tasks(1), out)
    assert clean_end_of(out / "aiotts.db") is not None
    slow = emulator.create_tasks(2, ready_after=3600)
    batch = client.fetch_many(slow, out, manifest=out / "aiotts.db")
    async with batch:
        with anyio.move_on_after(0.3):
            async for _ in batch:
                pass
    assert clean_end_of(out / "aiotts.db") is None  # cancelled: the next batch reads


def test_opening_for_writing_deletes_the_mark_and_reading_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    with OutcomeStore(path) as store:
        assert store.clean_end is None
        store.record_clean_end(lambda: "mark")
    with OutcomeStore(path, read_only=True) as reader:
        reader.record_clean_end(lambda: "other")  # a reader writes nothing
    assert clean_end_of(path) == "mark"
    with OutcomeStore(path) as store:
        assert store.clean_end == "mark"
        assert clean_end_of(path) is None  # committed at the opening, before any work


def test_a_reader_at_the_clean_end_means_no_mark_and_no_error(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    with OutcomeStore(path) as store, OutcomeStore(path, read_only=True) as reader:
        store.record_submitted("k", "TTS-1")
        store.record_clean_end(lambda: "mark")  # the reader keeps it in write-ahead mode
        assert reader.task_id_for("k") == "TTS-1"
        store.record_submitted("k2", "TTS-2")  # still a working store
    assert clean_end_of(path) is None
    with OutcomeStore(path) as store:
        assert store.clean_end is None and store.task_id_for("k2") == "TTS-2"


def write_wav(path: Path) -> None:
    with wave.open(str(path), "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(22_050)
        sound.writeframes(bytes(64))


async def test_sigkill_leaves_no_mark_and_the_resume_removes_the_stale_part(
    emulator: Emulator, tmp_path: Path, folder_reads: list[Path]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    mark = folder_mark(out)
    assert mark is not None
    with OutcomeStore(out / "aiotts.db") as store:
        store.record_clean_end(lambda: mark)  # as a clean end left it
    ids = emulator.create_tasks(3, ready_after=3600)  # never ready: the run waits
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    command = [sys.executable, "-m", "aiotts", "fetch", "--ids-file", str(ids_file)]
    command += ["--out", str(out), "--json"]
    with anyio.fail_after(HANG_GUARD):
        async with await anyio.open_process(command, env=cli_env(emulator)) as process:
            while clean_end_of(out / "aiotts.db") is not None:  # until the run opened it
                await anyio.sleep(0.02)
            process.send_signal(signal.SIGKILL)
            await process.wait()
    assert clean_end_of(out / "aiotts.db") is None
    part = plant_stale_part(out)
    # The folder's time set back: only the missing mark tells of the crash.
    os.utime(out, ns=(os.stat(out).st_atime_ns, int(mark.rsplit(":", 1)[1])))
    assert folder_mark(out) == mark
    async with client_for(emulator) as client:
        batch = client.fetch_many([], out, manifest=out / "aiotts.db", resume=True)
        assert [o async for o in batch] == []
    assert folder_reads == [out] and not part.exists()


async def test_a_long_resume_lets_other_tasks_run(tmp_path: Path) -> None:
    """Skipping needs no I/O; the batch still yields to the loop while it skips, so a
    resume of many ids cannot starve the other tasks of the process."""
    out = tmp_path / "out"
    out.mkdir()
    ids = [f"TTS-{n:05d}" for n in range(3000)]
    with OutcomeStore(out / "aiotts.db") as store:
        for task_id in ids:
            path = OutputTarget.in_folder(out, task_id).path(0)
            write_wav(path)
            store.add(
                Outcome(
                    task_id,
                    OutcomeState.DONE,
                    files=(path,),
                    bytes_written=path.stat().st_size,
                    finished_at=1.0,
                )
            )
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    async with (
        TTSClient("id", "secret", base_url="http://127.0.0.1:9") as client,
        anyio.create_task_group() as group,
    ):
        group.start_soon(tick)
        count = 0
        ticks_seen = set()  # the tick count as each outcome arrives
        async for outcome in client.fetch_many(ids, out, manifest=out / "aiotts.db", resume=True):
            assert outcome.resumed and outcome.ok
            count += 1
            ticks_seen.add(ticks)
        group.cancel_scope.cancel()
    assert count == len(ids)
    # The other task ran between the outcomes, at least once per chunk of ids taken in.
    assert len(ticks_seen) > len(ids) // 512


async def test_synthesize_after_a_clean_end_does_not_read_the_folder_unless_it_changed(
    emulator: Emulator, client: TTSClient, tmp_path: Path, folder_reads: list[Path]
) -> None:
    out = tmp_path / "out"
    ledger = out / "aiotts.db"
    texts = [(f"t{n}", f"Text number {n}.") for n in range(4)]

    async def synthesize(count: int) -> list[Outcome]:
        run = client.synthesize(texts[:count], out, ledger=ledger, resume=True)
        return [outcome async for outcome in run]

    first = await synthesize(2)
    assert all(o.ok for o in first) and folder_reads == [out]  # a new folder: read
    assert clean_end_of(ledger) == folder_mark(out)
    again = await synthesize(3)
    assert all(o.ok for o in again) and folder_reads == [out]  # unchanged: not read
    part = plant_stale_part(out)  # a crashed run of some other record moves the mark
    last = await synthesize(4)
    assert all(o.ok for o in last) and folder_reads == [out, out]
    assert not part.exists()
