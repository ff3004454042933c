"""Taking ids in: which values can be asked about, which were seen before, and which an
earlier run already finished. Synchronous, with no network: the scheduler asks these
questions before it spends a request on an id.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from aiotts._files import OutputTarget
from aiotts._manifest import ManifestEntry, complete_size, whole_files
from aiotts._models import Outcome, OutcomeState

__all__ = [
    "MAX_ID_LENGTH",
    "EarlierRecord",
    "ResumeRules",
    "SeenIds",
    "TaskIds",
    "each",
    "id_problem",
]

TaskIds = Iterable[str] | AsyncIterable[str]

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
    of ids holds a few megabytes whatever their number. About 7 µs per id."""

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
        fingerprint = hashlib.blake2b(
            task_id.encode("utf-8", "surrogatepass"), digest_size=16
        ).digest()
        added = self._db.execute(_ADD_SEEN, (fingerprint,)).rowcount
        if added == 0:
            return None
        self._count += 1
        return task_id

    def close(self) -> None:
        """Delete the temporary database; idempotent."""
        self._db.close()


_ADD_SEEN = "INSERT OR IGNORE INTO seen (digest) VALUES (?)"


async def each(ids: TaskIds) -> AsyncGenerator[object, None]:
    """The ids of a list, an iterable or an async iterable, one at a time."""
    if isinstance(ids, AsyncIterable):
        async for task_id in ids:
            yield task_id
    else:
        for task_id in ids:
            yield task_id


class EarlierRecord(Protocol):
    """What an earlier run recorded, asked about one id at a time: a store (queried per
    id) or the entries of a JSONL manifest (read whole)."""

    def get(self, task_id: str, /) -> ManifestEntry | None: ...


@dataclass(frozen=True, slots=True)
class Resumed:
    """An id an earlier run finished: its outcome, and whether the manifest lacks it."""

    outcome: Outcome
    new_line: bool


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

    def finished_before(self, task_id: str) -> Resumed | None:
        """The outcome to report without a request, or None to ask the server.

        Every check is ``lstat`` plus a non-blocking, non-following open of a regular file
        (``_manifest.complete_size``): a FIFO or a link at a final name is never opened,
        so it can neither block the loop nor pass for a result; its task is fetched again
        and the new file replaces the entry (``os.replace`` does not follow it)."""
        entry = self.earlier.get(task_id)
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
