"""Taking ids in: which values can be asked about, which were seen before, and which an
earlier run already finished. Synchronous, with no network: the scheduler asks these
questions before it spends a request on an id.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import sqlite3
import stat
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from aiotts._files import OutputTarget
from aiotts._manifest import ManifestEntry, complete_size, whole_files
from aiotts._models import Outcome, OutcomeState
from aiotts._store import LOOKUP_CHUNK, OutcomeStore, Recorded, key_of

__all__ = [
    "ADMIT_CHUNK",
    "MAX_ID_LENGTH",
    "EarlierRecord",
    "ResumeRules",
    "SeenIds",
    "Skips",
    "TaskIds",
    "chunks",
    "each",
    "id_problem",
]

TaskIds = Iterable[str] | AsyncIterable[str]

ADMIT_CHUNK = LOOKUP_CHUNK
"""Ids taken from a plain iterable at a time: duplicates and resume are answered for a
whole chunk with one statement each."""

MAX_ID_LENGTH = 1000
"""Longer ids are refused without a request: real ids are 36 characters."""

_UNPRINTABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
"""Control characters, and the lone surrogates that stand for bytes that were not UTF-8."""


def id_problem(raw: object) -> str | None:
    """Why ``raw`` cannot be a task id, or None if it can be asked about."""
    if not isinstance(raw, str):
        return f"task ids are strings, got {type(raw).__name__}"
    if not raw.strip():
        return "the task id is empty"
    if len(raw) > MAX_ID_LENGTH:
        return f"the task id is {len(raw)} characters long (ids are 36); check the input"
    bad = _UNPRINTABLE.search(raw)
    if bad is None:
        return None
    if bad.group() >= "\ud800":
        return "the task id is not valid UTF-8 (was the ids file saved in another encoding?)"
    return "the task id contains control characters; check the input"


class SeenIds:
    """The ids a batch has taken in, so that a duplicate is fetched and reported once.

    Kept on disk, not in memory: a 16-byte digest per id in a private temporary SQLite
    database (deleted when closed), behind a bounded page cache, so a batch of millions
    of ids holds a few megabytes whatever their number. ``first_sightings`` answers for a
    chunk of ids with one statement."""

    __slots__ = ("_count", "_db")

    def __init__(self) -> None:
        # "" is a private, temporary on-disk database: nothing to clean up, no name to
        # collide with. No journal and no sync: it lives no longer than the batch.
        self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA cache_size = -4096")
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute("CREATE TABLE seen (digest BLOB PRIMARY KEY) WITHOUT ROWID")
        self._db.execute("BEGIN")
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"<SeenIds {self._count}>"

    def first_sighting(self, raw: object) -> str | None:
        """The id ``raw`` stands for, or None if it was seen before."""
        task_id = raw if isinstance(raw, str) else repr(raw)
        # 16 bytes per seen id instead of the whole string; collisions are out of reach.
        fingerprint = _digest(task_id)
        added = self._db.execute(_ADD_SEEN, (fingerprint,)).rowcount
        if added == 0:
            return None
        self._count += 1
        return task_id

    def first_sightings(self, chunk: Sequence[object]) -> list[tuple[str, object]]:
        """``(id, raw)`` for each value of ``chunk`` not seen before (in this chunk or an
        earlier one), in the order of ``chunk``; ``id`` is what ``first_sighting`` gives."""
        if not chunk:
            return []
        ids = [raw if isinstance(raw, str) else repr(raw) for raw in chunk]
        digests = [_digest(task_id) for task_id in ids]
        # The rows actually inserted come back (in no particular order): the new ones.
        query = _ADD_SEEN_MANY.get(len(digests)) or _add_seen_many(len(digests))
        new = {row[0] for row in self._db.execute(query, digests)}
        fresh: list[tuple[str, object]] = []
        if new:
            for task_id, raw, digest in zip(ids, chunk, digests, strict=True):
                if digest in new:
                    new.discard(digest)  # a second sighting in the same chunk is not new
                    fresh.append((task_id, raw))
        self._count += len(fresh)
        return fresh

    def close(self) -> None:
        """Delete the temporary database; idempotent."""
        self._db.close()


_ADD_SEEN = "INSERT OR IGNORE INTO seen (digest) VALUES (?)"
_ADD_SEEN_MANY: dict[int, str] = {}


def _add_seen_many(count: int) -> str:
    query = (
        f"INSERT OR IGNORE INTO seen (digest) VALUES {','.join(['(?)'] * count)} RETURNING digest"
    )
    if count == ADMIT_CHUNK:
        _ADD_SEEN_MANY[count] = query  # the size of every chunk but the last
    return query


def _digest(task_id: str) -> bytes:
    return hashlib.blake2b(task_id.encode("utf-8", "surrogatepass"), digest_size=16).digest()


async def each(ids: TaskIds) -> AsyncGenerator[object, None]:
    """The ids of a list, an iterable or an async iterable, one at a time."""
    if isinstance(ids, AsyncIterable):
        async for task_id in ids:
            yield task_id
    else:
        for task_id in ids:
            yield task_id


async def chunks(ids: TaskIds, size: int = ADMIT_CHUNK) -> AsyncGenerator[list[object], None]:
    """The ids in lists: up to ``size`` at a time from a plain iterable (taking them costs
    no wait), one at a time from an async iterable (whose next id may be long in coming,
    and must not hold back the ones before it)."""
    if isinstance(ids, AsyncIterable):
        async for task_id in ids:
            one: list[object] = [task_id]
            yield one
        return
    iterator: Iterator[object] = iter(ids)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


class EarlierRecord(Protocol):
    """What an earlier run recorded, asked about one id at a time: a store (which
    ``ResumeRules.finished_among`` asks about a chunk of ids at a time instead) or the
    entries of a JSONL manifest (read whole)."""

    def get(self, task_id: str, /) -> ManifestEntry | None: ...


@dataclass(frozen=True, slots=True)
class Resumed:
    """An id an earlier run finished: its outcome, and whether the manifest lacks it."""

    outcome: Outcome
    new_line: bool


def _child_maker(folder: Path) -> Callable[[str], Path]:
    """``lambda name: folder / name``, for a ``name`` without a separator. Where pathlib
    offers its own shortcut for that (the one its directory listing uses: a quarter of
    the cost of parsing the path again), that one: a resume makes a path per skipped id."""
    folder = Path(folder)
    shortcut = getattr(folder, "_make_child_relpath", None)
    if callable(shortcut) and shortcut("x") == folder / "x":
        return shortcut  # type: ignore[no-any-return]
    return folder.joinpath


@dataclass(slots=True)
class Skips:
    """What ``ResumeRules.finished_among`` found: outcomes to hand out as they are, and
    outcomes of whole files the record lacks (to be recorded first)."""

    recorded: dict[str, Outcome] = field(default_factory=dict)
    unrecorded: dict[str, Outcome] = field(default_factory=dict)

    def add(self, task_id: str, resumed: Resumed) -> None:
        (self.unrecorded if resumed.new_line else self.recorded)[task_id] = resumed.outcome


@dataclass(frozen=True, slots=True)
class ResumeRules:
    """What a resumed batch may skip.

    * ``done`` in the manifest: skipped if every file it names is still whole;
    * ``failed`` and ``missing`` (the server's definite answers): skipped unless
      ``retry_failed``;
    * ``aborted``, ``expired``, ``cancelled``: always asked again;
    * no line at all, but a whole file at the id's final name (the process died between
      the rename and the manifest line): done, when ``check_files``.
    """

    earlier: EarlierRecord
    target_for: Callable[[str], OutputTarget]
    retry_failed: bool = False
    check_files: bool = False
    folder: Path | None = None
    """The folder every file of the batch goes to (``target_for(id).folder`` for every id):
    given, a store's file proofs are used (see ``finished_among``)."""
    _proof_folder: tuple[str, str, Callable[[str], Path]] | None = field(
        init=False, default=None, repr=False
    )
    """The folder as a store records it, its path with a separator at the end, and how to
    make the path of a file in it."""

    def __post_init__(self) -> None:
        folder = self.folder
        if folder is not None and isinstance(self.earlier, OutcomeStore):
            recorded = os.path.relpath(os.path.abspath(folder), self.earlier.folder)
            prefix = os.path.join(os.fspath(folder), "")
            proof_folder = ("" if recorded == "." else recorded, prefix, _child_maker(folder))
            object.__setattr__(self, "_proof_folder", proof_folder)

    def finished_before(self, task_id: str) -> Resumed | None:
        """The outcome to report without a request, or None to ask the server.

        Every check is ``lstat`` plus a non-blocking, non-following open of a regular file
        (``_manifest.complete_size``): a FIFO or a link at a final name is never opened,
        so it can neither block the loop nor pass for a result; its task is fetched again
        and the new file replaces the entry (``os.replace`` does not follow it)."""
        return self._judge(task_id, self.earlier.get(task_id))

    def finished_among(self, task_ids: Sequence[str]) -> Skips:
        """``finished_before`` for many ids at once (at most ``ADMIT_CHUNK``).

        Asked of a store, one statement finds the records of them all. A ``done`` record
        that holds its file's proof (size, change time and inode as ``lstat`` saw
        them right after the file took its name) is skipped when one ``lstat`` of a
        regular file sees the same three values: no open, no parsing. Any difference, or no proof,
        means the full check of ``finished_before`` (whole WAV, sizes adding up), so a file
        emptied, truncated or replaced since is fetched again."""
        skips = Skips()
        earlier = self.earlier
        if not isinstance(earlier, OutcomeStore):
            for task_id in task_ids:
                resumed = self.finished_before(task_id)
                if resumed is not None:
                    skips.add(task_id, resumed)
            return skips
        keys = [key_of(task_id) for task_id in task_ids]
        by_key = dict(zip(keys, task_ids, strict=True))
        rows = earlier.recorded(keys)
        proven = skips.recorded
        for row in rows:
            task_id = by_key.pop(row[0])
            outcome = self._proven(task_id, row)
            if outcome is not None:
                proven[task_id] = outcome
                continue
            line = row[8]
            entry = earlier.get(task_id) if line is None else earlier.entry_of(task_id, line)
            resumed = self._judge(task_id, entry)
            if resumed is not None:
                skips.add(task_id, resumed)
        if self.check_files:
            for task_id in by_key.values():  # never recorded
                resumed = self._judge(task_id, None)
                if resumed is not None:
                    skips.add(task_id, resumed)
        return skips

    def _proven(self, task_id: str, row: Recorded) -> Outcome | None:
        """The outcome of a ``done`` record whose file one ``lstat`` proves unchanged."""
        file = row[2]
        if file is None or self._proof_folder is None or row[1] != "done":
            return None
        folder, prefix, child = self._proof_folder
        head, _, name = file.rpartition(os.sep)
        if head != folder:
            return None  # recorded elsewhere than this batch's folder: the full check says
        try:
            seen = os.lstat(prefix + name)
        except OSError:
            return None
        if (
            seen.st_ino != row[5]
            or seen.st_size != row[3]
            or seen.st_ctime_ns != row[4]
            or not stat.S_ISREG(seen.st_mode)
        ):
            return None
        return Outcome(
            task_id,
            OutcomeState.DONE,
            (child(name),),
            seen.st_size,
            None,
            (),
            row[6] or 0.0,
            (),
            row[7],
            True,
        )

    def _judge(self, task_id: str, entry: ManifestEntry | None) -> Resumed | None:
        """``finished_before`` given what the record holds about ``task_id``."""
        if entry is not None:
            files = whole_files(entry, self.target_for(task_id).folder)
            refused = entry.state in (OutcomeState.FAILED, OutcomeState.MISSING)
            if files is not None or (refused and not self.retry_failed):
                return Resumed(entry.as_outcome(files), new_line=False)
            return None
        if not self.check_files:
            return None
        path = self.target_for(task_id).path(0)
        size = complete_size(path)
        if size is None:
            return None
        outcome = Outcome(
            task_id,
            OutcomeState.DONE,
            files=(path,),
            bytes_written=size,
            finished_at=time.time(),
            resumed=True,
        )
        return Resumed(outcome, new_line=True)
