"""Taking ids in: which values can be asked about, which were seen before, and which an
earlier run already finished. Synchronous, with no network: the scheduler asks these
questions before it spends a request on an id.
"""

from __future__ import annotations

import dataclasses
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
from typing import Any, Protocol

from aiotts._files import OutputTarget
from aiotts._manifest import ManifestEntry, complete_size, whole_files
from aiotts._models import Outcome, OutcomeState
from aiotts._store import LOOKUP_CHUNK, OutcomeStore, json_ids

__all__ = [
    "ADMIT_CHUNK",
    "MAX_ID_LENGTH",
    "EarlierRecord",
    "ProofOf",
    "ResumeRules",
    "SeenIds",
    "Skips",
    "TaskIds",
    "all_plain",
    "chunks",
    "folder_mark",
    "id_of",
    "id_problem",
    "resumed_done",
]

TaskIds = Iterable[str] | AsyncIterable[str]

ADMIT_CHUNK = LOOKUP_CHUNK
"""Ids taken from a plain iterable at a time: duplicates and resume are answered for a
whole chunk with one statement each."""

MAX_ID_LENGTH = 1000
"""Longer ids are refused without a request: real ids are 36 characters."""

_UNPRINTABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
"""Control characters, and the lone surrogates that stand for bytes that were not UTF-8."""


def all_plain(raws: Sequence[object]) -> bool:
    """True if ``id_problem`` finds nothing wrong with any of ``raws`` (checked for them
    all at once: the common case of a chunk costs a few passes in C); False means: ask
    ``id_problem`` about each."""
    if not raws or set(map(type, raws)) != {str}:
        return False
    ids: Sequence[str] = raws  # type: ignore[assignment]
    if max(map(len, ids)) > MAX_ID_LENGTH or not all(map(str.strip, ids)):
        return False
    joined = "".join(ids)
    # Printable ASCII (every real id) has no control character and no surrogate: the
    # check of two C loops, without the pattern.
    return (joined.isascii() and joined.isprintable()) or _UNPRINTABLE.search(joined) is None


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

    Kept on disk, not in memory: each id (a digest of a long one, ``_seen_key``) in a
    private temporary SQLite database (deleted when closed), behind a bounded page cache,
    so a batch of millions of ids holds a few megabytes whatever their number.
    ``first_sightings`` answers for a chunk of ids with one statement."""

    __slots__ = ("_chunks", "_count", "_db")

    def __init__(self) -> None:
        # "" is a private, temporary on-disk database: nothing to clean up, no name to
        # collide with. No journal and no sync: it lives no longer than the batch.
        self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA cache_size = -4096")
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute("CREATE TABLE seen (key BLOB PRIMARY KEY, chunk INTEGER) WITHOUT ROWID")
        self._db.execute("BEGIN")
        self._count = 0
        self._chunks = 0  # chunks asked about so far

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"<SeenIds {self._count}>"

    def first_sighting(self, raw: object) -> str | None:
        """The id ``raw`` stands for, or None if it was seen before."""
        task_id = raw if isinstance(raw, str) else repr(raw)
        added = self._db.execute(_ADD_SEEN, (_seen_key(task_id),)).rowcount
        if added == 0:
            return None
        self._count += 1
        return task_id

    def first_sightings(self, chunk: Sequence[object]) -> list[tuple[str, object]]:
        """``(id, raw)`` for each value of ``chunk`` not seen before (in this chunk or an
        earlier one), in the order of ``chunk``; ``id`` is what ``first_sighting`` gives."""
        ids, raws = self.new_among(chunk)
        return list(zip(ids, raws, strict=True))

    def new_among(self, chunk: Sequence[object]) -> tuple[Sequence[str], Sequence[object]]:
        """``first_sightings`` as two lists of the same length, ids and raw values: no pair
        made per id (when every value of ``chunk`` is new, the raw values are ``chunk``)."""
        if not chunk:
            return [], []
        ids = [raw if type(raw) is str else id_of(raw) for raw in chunk]
        db = self._db
        self._chunks += 1
        count = len(ids)
        # Each key is inserted once, marked with the number of the chunk that inserted
        # it; a key seen before (or twice in this chunk) is left as it was. Most chunks
        # are all new: every row inserted says so, with nothing to read back. Short ASCII
        # ids (every real one) are their own keys and travel as one JSON array.
        array = (
            json_ids(ids) if max(map(len, ids)) <= _SHORT_KEY and "".join(ids).isascii() else None
        )
        if array is not None:
            inserted = db.execute(_ADD_SEEN_JSON, (array, self._chunks)).rowcount
            keys = [task_id.encode() for task_id in ids] if inserted != count else []
        else:
            keys = [task_id.encode("utf-8", "surrogatepass") for task_id in ids]
            if max(map(len, keys)) > _SHORT_KEY:
                keys = [_seen_key(task_id) for task_id in ids]
            query = _ADD_SEEN_MANY.get(count) or _add_seen_many(count)
            inserted = db.execute(query, [self._chunks, *keys]).rowcount
        if inserted == count:
            self._count += count
            return ids, chunk
        fresh_ids: list[str] = []
        fresh_raws: list[object] = []
        if inserted:
            marks = ",".join("?" * count)
            new = {
                row[0]
                for row in db.execute(
                    f"SELECT key FROM seen WHERE chunk = ? AND key IN ({marks})",
                    [self._chunks, *keys],
                )
            }
            for task_id, raw, key in zip(ids, chunk, keys, strict=True):
                if key in new:
                    new.discard(key)  # a second sighting in the same chunk is not new
                    fresh_ids.append(task_id)
                    fresh_raws.append(raw)
        self._count += len(fresh_ids)
        return fresh_ids, fresh_raws

    def close(self) -> None:
        """Delete the temporary database; idempotent."""
        self._db.close()


_ADD_SEEN = "INSERT OR IGNORE INTO seen (key, chunk) VALUES (?, 0)"
_ADD_SEEN_JSON = (
    "INSERT OR IGNORE INTO seen (key, chunk) SELECT CAST(value AS BLOB), ?2 FROM json_each(?1)"
)
_ADD_SEEN_MANY: dict[int, str] = {}


def _add_seen_many(count: int) -> str:
    values = ",".join(f"(?{n},?1)" for n in range(2, count + 2))
    query = f"INSERT OR IGNORE INTO seen (key, chunk) VALUES {values}"
    if count == ADMIT_CHUNK:
        _ADD_SEEN_MANY[count] = query  # the size of every chunk but the last
    return query


def id_of(raw: object) -> str:
    """The id a value of the input stands for: itself if a string, else its ``repr``."""
    return raw if isinstance(raw, str) else repr(raw)


_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
"""How a resume opens the batch's folder, to look its files up from there."""

_SHORT_KEY = 64
"""Ids up to this many UTF-8 bytes are kept as they are (encoding costs less than a
digest, and ids in order stay in order); longer ones as a digest."""


def _seen_key(task_id: str) -> bytes:
    """How ``SeenIds`` keeps an id: its UTF-8 bytes, or for a long one ``0xFF`` and a
    16-byte digest. ``0xFF`` never occurs in UTF-8 (lone surrogates included), so a
    digest never equals an id's bytes; collisions between digests are out of reach."""
    key = task_id.encode("utf-8", "surrogatepass")
    if len(key) <= _SHORT_KEY:
        return key
    return b"\xff" + hashlib.blake2b(key, digest_size=16).digest()


def folder_mark(folder: str | os.PathLike[str]) -> str | None:
    """What a store records of ``folder`` at a batch's clean end (``clean_end``): its
    absolute path, device, inode and modification time, or None if it cannot be read.

    Whatever adds, removes or renames an entry in the folder (a temporary file made by
    another run, say) moves its modification time, so a folder whose mark is the one
    recorded holds no file that was not there at that clean end: no leftover temporary
    file, and the batch need not read the folder for them. The mark must be taken before
    anything of the batch itself touches the folder (its writability probe included)."""
    try:
        seen = os.stat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(seen.st_mode):
        return None
    return f"{os.path.abspath(folder)}\n{seen.st_dev}:{seen.st_ino}:{seen.st_mtime_ns}"


async def chunks(ids: TaskIds, size: int = ADMIT_CHUNK) -> AsyncGenerator[list[object], None]:
    """The ids in lists: up to ``size`` at a time from a plain iterable (taking them costs
    no wait), one at a time from an async iterable (whose next id may be long in coming,
    and must not hold back the ones before it).

    Closing this closes an async generator it reads, at once, in the closer's frame: what
    it does on the way out (a synthesis's submitter recording the POSTs it had out) then
    happens before the batch closes its record, not whenever the generator is collected.
    """
    if isinstance(ids, AsyncIterable):
        try:
            async for task_id in ids:
                one: list[object] = [task_id]
                yield one
        finally:
            if isinstance(ids, AsyncGenerator):
                await ids.aclose()
        return
    iterator: Iterator[object] = iter(ids)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _resumed_done_by_constructor(
    task_id: str, files: tuple[Path, ...], size: int, finished_at: float, code: str | None, /
) -> Outcome:
    """``resumed_done`` through the dataclass itself: where the twin's way is refused."""
    return Outcome(
        task_id,
        OutcomeState.DONE,
        files,
        size,
        finished_at=finished_at,
        response_code=code,
        resumed=True,
    )


class _DoneTwin:
    """An object of ``Outcome``'s very layout (the same slots, in the same order) that is
    not frozen: its slots are filled by plain assignments, the quickest there are, and
    it then becomes an ``Outcome`` by ``__class__`` assignment (which Python allows only
    between classes of the same layout). No ``__init__``: making one costs no call."""

    __slots__ = Outcome.__slots__


def _resumed_done_by_twin(
    task_id: str, files: tuple[Path, ...], size: int, finished_at: float, code: str | None, /
) -> Outcome:
    """``resumed_done`` at a fraction of the cost of the constructor's call."""
    outcome: Any = _DoneTwin()
    outcome.task_id = task_id
    outcome.state = OutcomeState.DONE
    outcome.files = files
    outcome.bytes_written = size
    outcome.error = None
    outcome.messages = ()
    outcome.finished_at = finished_at
    outcome.warnings = ()
    outcome.response_code = code
    outcome.resumed = True
    outcome.cause = None
    outcome.key = None
    outcome.__class__ = Outcome
    return outcome  # type: ignore[no-any-return]


def _quickest_resumed_done() -> Callable[[str, tuple[Path, ...], int, float, str | None], Outcome]:
    """The twin's way where this Python allows it and it makes what the constructor
    makes (checked once, field by field: a field added to ``Outcome`` and not filled by
    the twin fails it), else the constructor's."""
    files = (Path("a.wav"),)
    expected = _resumed_done_by_constructor("a", files, 7, 1.5, "Ok")
    try:
        made = _resumed_done_by_twin("a", files, 7, 1.5, "Ok")
        same = type(made) is Outcome and all(
            getattr(made, f.name) == getattr(expected, f.name) for f in dataclasses.fields(Outcome)
        )
    except (TypeError, AttributeError):  # "object layout differs", or a slot left unset
        same = False
    return _resumed_done_by_twin if same else _resumed_done_by_constructor


resumed_done = _quickest_resumed_done()
"""A maker of the ``Outcome`` of a ``done`` id an earlier run finished, equal to
``Outcome(task_id, DONE, files, size, finished_at=..., response_code=..., resumed=True)``
at a fraction of the cost of that call (a resume makes one per skipped id)."""


ProofOf = tuple[str, tuple[Any, ...]]
"""An id and its file proof, as ``ResumeRules.finished_among`` takes them: a ``Proof``,
or a ``Row`` whose ``file`` is not None (from ``file`` to ``code`` they agree)."""


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
    recorded_not_done: int = 0
    """How many of ``recorded`` are not ``done`` (refused ones skipped)."""

    def add(self, task_id: str, resumed: Resumed) -> None:
        outcome = resumed.outcome
        if resumed.new_line:
            self.unrecorded[task_id] = outcome
        else:
            self.recorded[task_id] = outcome
            self.recorded_not_done += outcome.state is not OutcomeState.DONE


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

    @property
    def uses_proofs(self) -> bool:
        """Whether ``finished_among`` proves files by the proofs of a store."""
        return self._proof_folder is not None

    def finished_among(
        self, task_ids: Sequence[str], proofs: Sequence[ProofOf] | None = None
    ) -> Skips:
        """``finished_before`` for many ids at once (at most ``ADMIT_CHUNK``); ``proofs``:
        the store's file proofs of ``task_ids`` when the caller has them already (``(id,
        proof)`` pairs in the order of ``task_ids``), else they are asked of the store.

        Asked of a store, one statement finds the proofs of them all, and one the records
        of those not proven (if any). A ``done`` record that holds its file's proof (size,
        change time and inode as ``lstat`` saw them right after the file took its name) is
        skipped when one ``lstat`` of a regular file sees the same three values: no open,
        no parsing. Any difference, or no proof, means the full check of
        ``finished_before`` (whole WAV, sizes adding up), so a file
        emptied, truncated or replaced since is fetched again."""
        skips = Skips()
        earlier = self.earlier
        if not isinstance(earlier, OutcomeStore):
            for task_id in task_ids:
                resumed = self.finished_before(task_id)
                if resumed is not None:
                    skips.add(task_id, resumed)
            return skips
        left: Sequence[str] = task_ids
        proof_folder = self._proof_folder
        if proof_folder is not None:
            # First the proofs alone (fewer columns: most of a resume is proven here),
            # then the whole records of the ids left, if any.
            proven = skips.recorded
            folder, prefix, child = proof_folder
            lstat, is_regular, sep = os.lstat, stat.S_ISREG, os.sep
            try:
                # Each file is looked up from the folder, not from the root: a shorter
                # walk for the kernel, and no path to build per id.
                folder_fd = os.open(prefix or ".", _FOLDER_FLAGS)
            except OSError:
                folder_fd = None  # no proof can be seen: every id gets the full check
            try:
                if folder_fd is None:
                    proofs = ()
                elif proofs is None:
                    proofs = [(task_ids[p[0]], p) for p in earlier.proofs(task_ids)]
                for task_id, proof in proofs:
                    # The proof: a ``done`` row of one file in this folder whose ``lstat``
                    # shows the size, change time and inode recorded. ``proof`` is a
                    # ``Proof`` or a ``Row``: from ``file`` (1) to ``code`` (6) they agree.
                    head, _, name = proof[1].rpartition(sep)
                    if head != folder:
                        continue  # recorded elsewhere: the full check says
                    try:
                        seen = lstat(name, dir_fd=folder_fd)
                    except OSError:
                        continue
                    if (
                        seen.st_size == proof[2]
                        and seen.st_ctime_ns == proof[3]
                        and seen.st_ino == proof[4]
                        and is_regular(seen.st_mode)
                    ):
                        # The time as the record's line holds it (to the millisecond),
                        # as the full check gives it.
                        proven[task_id] = resumed_done(
                            task_id, (child(name),), proof[2], round(proof[5] or 0.0, 3), proof[6]
                        )
            finally:
                if folder_fd is not None:
                    os.close(folder_fd)
            if len(proven) == len(task_ids):
                left = ()
            elif proven:
                left = [task_id for task_id in task_ids if task_id not in proven]
        keys = [task_id.encode("utf-8", "surrogatepass") for task_id in left]  # key_of
        by_key = dict(zip(keys, left, strict=True))
        rows = earlier.recorded(keys) if keys else []
        for row in rows:
            task_id = by_key.pop(row[0])
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
