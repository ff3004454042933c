"""The record store: outcomes per id (and submitted texts per key) in one SQLite file.

A JSONL manifest must be read whole before a resume can ask about its first id, and a
batch that remembers every id it saw grows with the number of ids. The store is queried
per id instead: memory stays flat in the number of ids, and a resume starts at once.

Tables:

* ``outcomes(seq, id, state, line, ...)``: the last outcome per id (``INSERT OR REPLACE``
  on the id, a unique index: the last word wins, as a new row). ``line`` is exactly the
  JSON object a JSONL manifest line holds (format version 2, files relative to the store's
  folder), so ``aiotts report`` prints the lines users grep today. ``seq`` orders the ids
  by their last word, and the table is kept in that order (``seq`` is its rowid): a new
  outcome is written at its end, and only the index of ids takes an insert at a random
  place (a tenth of the row's size), where a table kept in id order, as versions 1 and 2
  keep it, took its whole row there. A ``done`` outcome of one file and no notes also
  keeps that file's proof in columns: ``file`` (relative to the store's folder), ``size``,
  ``ctime_ns`` and ``ino`` as ``lstat`` saw them when the outcome was recorded (right
  after the file took its name), with ``time`` and ``code``. A resume that finds the file
  with the same change time, inode and size skips it with one ``lstat`` and no parsing
  (``ResumeRules.finished_among``). The change time moves with every write, truncation or
  ``utime`` and cannot be set back (so it covers the modification time); the size is
  compared too, for file systems whose times are coarse. Any difference, or no proof (a
  store of version 1, an import, several files), means the full check of the file. A
  resume fed its ids in about the order they were recorded reads the proofs in the table's
  order, a few thousand ahead of its input (``_sightings``), instead of searching the
  table for each id: pages read in turn, whatever the size of the store (a table keyed by
  id has an index of the proofs in that order instead).
* ``ledger(key, digest, state, task_id, stem, error, time)``: what became of each text
  of a bulk submit (a key per text), so that a resumed one never pays twice for a text.
  A text's row is committed as ``sending`` *before* its POST leaves, and becomes
  ``submitted`` (with its task id) as soon as the POST returns, ``uncertain`` when the
  POST may have reached the server without an id coming back, or ``unsent`` when it
  provably created nothing (refused, or never sent). ``sending`` found by a later run is
  the uncertain window: that run cannot know whether the server got the text.
* ``meta(key, value)``: the format version, which JSONL manifest was imported, and
  ``clean_end``: set by a batch that ended cleanly (every task it started ended, no
  temporary file of its own left, the folder read for those of crashed runs), naming its
  output folder as ``folder_mark`` saw it then. Opening the store for writing deletes it
  (committed at once), so a run killed at any moment leaves none: the next batch reads
  the folder for leftover temporary files, as it does when the folder changed since.
  To mark it, the store leaves write-ahead mode for a kept rollback journal (so that the
  close removes no file from the folder); the next writer returns it to write-ahead
  mode, waiting (five seconds at most) for a reader in the middle of a read.

Invariants:

* An outcome is committed before its outcome is handed to the caller. The journal is the
  write-ahead log with ``synchronous=NORMAL``: a commit is written to the operating system
  before ``commit()`` returns, so a crash of the process loses nothing committed (a power
  cut may lose the last commits, as with the JSONL manifest, which is flushed, not synced).
  A torn write is a torn log frame, which SQLite discards when the store is next opened.
* One writer per store: a writer holds an exclusive ``flock`` on the file for its whole
  life, so a second run on the same store is refused at once (``OutputError``); readers
  (``aiotts report``) take no lock and read a consistent snapshot while a batch writes.
* Every SQLite or OS error is mapped here, in ``_store_error``, to an ``OutputError``
  naming the store's path and what to do; opening proves the store writable (it commits
  once), so a read-only folder or a full disk is refused before any request.
* The store is opened only as a regular file, never through a symbolic link.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from aiotts._errors import OutputError
from aiotts._files import output_error
from aiotts._manifest import (
    Manifest,
    ManifestEntry,
    manifest_lines,
    outcome_line,
    parse_line,
    relative_name,
)
from aiotts._models import Outcome, OutcomeState

__all__ = [
    "LEDGER_STATES",
    "LOOKUP_CHUNK",
    "STORE_SUFFIXES",
    "STORE_VERSION",
    "LedgerEntry",
    "OutcomeStore",
    "Proof",
    "Recorded",
    "Row",
    "is_store_path",
    "json_ids",
    "key_of",
    "merged_records",
    "open_record",
]

STORE_VERSION = 3
"""3: ``outcomes`` kept in the order of ``seq`` (its rowid), the id a unique index. 2: the
file proof columns of ``outcomes``; a store of version 1 gains them when opened for writing
(its rows keep none, so their files get the full check on resume). A store of version 1
or 2 keeps its table keyed by id (``_ID_KEYED_INDEXES``): it stays of version 2."""
STORE_SUFFIXES = frozenset({".db", ".sqlite", ".sqlite3"})
"""A record path with one of these suffixes is a store; any other is a JSONL manifest."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outcomes (
    seq INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE, state TEXT NOT NULL,
    line BLOB NOT NULL, file TEXT, size INTEGER, ctime_ns INTEGER, ino INTEGER, time REAL,
    code TEXT
);
"""
_ID_KEYED_INDEXES = """
CREATE INDEX IF NOT EXISTS outcomes_by_seq ON outcomes (seq);
CREATE INDEX IF NOT EXISTS outcomes_proofs ON outcomes
    (seq, id, file, size, ctime_ns, ino, time, code, state)
    WHERE file IS NOT NULL AND state = 'done';
"""
"""The indexes of a table keyed by id (versions 1 and 2): by ``seq``, and the proofs in
the order of ``seq`` (partial: proof rows only; covering, ``state`` included for SQLite
to see it), so that ``rows_after`` reads pages in turn there too."""
_OUTCOMES_SQL = "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'outcomes'"
_ROW_COLUMNS = (
    "o.seq, CASE WHEN o.state = 'done' THEN o.file END, o.size, o.ctime_ns, o.ino, o.time,"
    " o.code, o.id"
)
_ROWS_AFTER = (
    "SELECT seq, file, size, ctime_ns, ino, time, code, id FROM outcomes"
    " WHERE file IS NOT NULL AND state = 'done' AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
)
# CROSS JOIN keeps the array outside: each of its rows is one search of the id index.
_ROWS_BY_JSON = (
    f"SELECT {_ROW_COLUMNS} FROM json_each(?) AS j CROSS JOIN outcomes AS o"
    " ON o.id = CAST(j.value AS BLOB)"
)
_ROWS_BY_KEYS = f"SELECT {_ROW_COLUMNS} FROM outcomes AS o WHERE o.id IN ({{marks}})"
_PROOF_COLUMNS = (
    ("file", "TEXT"),
    ("size", "INTEGER"),
    ("ctime_ns", "INTEGER"),
    ("ino", "INTEGER"),
    ("time", "REAL"),
    ("code", "TEXT"),
)
"""The columns version 2 added to ``outcomes``, in the order ``_PUT`` writes them."""
_PUT = (
    "INSERT OR REPLACE INTO outcomes (id, seq, state, line, file, size, ctime_ns, ino, time,"
    " code) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_GET = "SELECT line FROM outcomes WHERE id = ?"
_TASK_ID_GET = "SELECT task_id FROM ledger WHERE key = ?"
_HAS_OUTCOMES = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outcomes'"
_EMPTY_OUTCOMES = (
    "CREATE TEMP TABLE outcomes (id BLOB PRIMARY KEY, seq INTEGER, state TEXT, line BLOB,"
    " file TEXT, size INTEGER, ctime_ns INTEGER, ino INTEGER, time REAL, code TEXT)"
)
_NO_PROOF: tuple[None, ...] = (None,) * len(_PROOF_COLUMNS)
LOOKUP_CHUNK = 512
"""The most ids ``recorded`` asks about in one statement (SQLite allows 32,766 values)."""


def _has_json() -> bool:
    try:
        with contextlib.closing(sqlite3.connect(":memory:")) as db:
            row = db.execute("SELECT CAST(value AS BLOB) FROM json_each(?)", ('["\u00e9"]',))
            found = row.fetchall()
    except sqlite3.Error:
        return False
    return found == [("\u00e9".encode(),)]


_JSON_IDS = _has_json()
"""Whether this SQLite has ``json_each`` (built in since 3.38; most builds before too)."""


def json_ids(task_ids: Sequence[str]) -> bytes | None:
    """``task_ids`` as one JSON array whose strings SQLite reads back (``json_each``, then
    ``CAST(value AS BLOB)``) as exactly the keys ``_key`` makes, or None if one of them
    would not come back unchanged, or this SQLite has no ``json_each``."""
    if not _JSON_IDS:
        return None
    try:
        array = orjson.dumps(task_ids)
    except TypeError:  # a lone surrogate (a byte that was not UTF-8): bound instead
        return None
    return None if b"\\u0000" in array else array


Recorded = tuple[
    bytes,  # the id as stored (``_key``)
    str,  # state
    str | None,  # file, relative to the store's folder: None when there is no proof
    int | None,  # size
    int | None,  # ctime_ns
    int | None,  # ino
    float | None,  # time
    str | None,  # code
    bytes | None,  # the line, only when there is no proof
]
"""One row of ``OutcomeStore.recorded``."""
Row = tuple[
    int,  # seq
    str | None,  # file, relative to the store's folder: None unless a ``done`` proof
    int | None,  # size
    int | None,  # ctime_ns
    int | None,  # ino
    float | None,  # time
    str | None,  # code
    bytes,  # the id as stored (``_key``)
]
"""One row of ``OutcomeStore.rows_after`` and ``OutcomeStore.rows_of``: from ``file`` to
``code``, where a ``Proof`` has them."""
Proof = tuple[
    int,  # the position of the id in the sequence asked about
    str,  # file, relative to the store's folder
    int,  # size
    int,  # ctime_ns
    int,  # ino
    float | None,  # time
    str | None,  # code
]
"""One row of ``OutcomeStore.proofs``."""
_CACHE_KIB = 8192
"""The page cache per connection: bounded, whatever the number of ids."""


def _key(text: str) -> bytes:
    """How an id or a key is stored: its UTF-8 bytes, lone surrogates included (an id read
    from a file that was not UTF-8 is recorded too, never dropped)."""
    return text.encode("utf-8", "surrogatepass")


key_of = _key


def _text(key: bytes) -> str:
    return bytes(key).decode("utf-8", "surrogatepass")


def _add_proof_columns(db: sqlite3.Connection) -> None:
    """Give a store of version 1 the columns of version 2 (its rows keep no proof)."""
    have = {row[1] for row in db.execute("PRAGMA table_info(outcomes)")}
    for name, kind in _PROOF_COLUMNS:
        if name not in have:
            db.execute(f"ALTER TABLE outcomes ADD COLUMN {name} {kind}")


def is_store_path(path: str | os.PathLike[str]) -> bool:
    """True if a record at ``path`` is a store (by suffix), False for a JSONL manifest."""
    return Path(path).suffix.lower() in STORE_SUFFIXES


def _store_error(exc: sqlite3.Error | OSError, path: Path) -> OutputError:
    """The one place where SQLite's and the OS's errors about a store become ours."""
    if isinstance(exc, OSError):
        return output_error(exc, path, None)
    code = getattr(exc, "sqlite_errorcode", None)
    text = str(exc)
    if code == sqlite3.SQLITE_FULL or "full" in text:
        advice = "free some space, then resume"
        number: int | None = errno.ENOSPC
    elif code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
        advice = "choose a folder you can write to, or pass another --manifest"
        number = errno.EACCES
    elif code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        advice = "it is not an aiotts store: pass another path (JSONL manifests end in .jsonl)"
        number = None
    elif code == sqlite3.SQLITE_BUSY:
        advice = (
            "another run is writing it, or a reader (aiotts report) is in the middle of it:"
            " wait for it, or pass another path"
        )
        number = errno.EBUSY
    else:
        advice = "check the folder it is in"
        number = None
    return OutputError(
        f"cannot use the store {path}: {text}; {advice}", path=str(path), errno=number
    )


class OutcomeStore:
    """An open store. ``get`` and ``task_id_for`` are point queries; ``add`` plus
    ``commit`` (or ``append``) record outcomes; ``read_only`` opens it for reports."""

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._base = os.path.abspath(self.path.parent)
        self._base_path = Path(self._base)
        self._lock_fd: int | None = None
        self._seq = 0
        self._pending = 0
        self._clean_end: str | None = None
        self.rows_written = 0
        try:
            if read_only:
                self._db = self._connect_read_only()
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._lock_fd = self._take_writer_lock()
                self._db = self._connect_writer()
            # One cursor for the point queries (``get``, ``task_id_for``, ``ledger_entry``),
            # each read whole at once: no new cursor per look-up.
            self._point = self._db.cursor()
        except (sqlite3.Error, OSError) as exc:
            self._release_lock()
            if isinstance(exc, OutputError):
                raise
            raise _store_error(exc, self.path) from exc

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else f"rows_written={self.rows_written}"
        return f"<OutcomeStore {self.path} {mode}>"

    # -- opening -----------------------------------------------------------------------------

    def _refuse_non_regular(self) -> None:
        try:
            seen = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISREG(seen.st_mode):
            what = "a symbolic link" if stat.S_ISLNK(seen.st_mode) else "not a regular file"
            raise OutputError(
                f"the store {self.path} is {what}; aiotts opens a store only as a regular "
                "file, never through a link: remove it, or pass another path",
                path=str(self.path),
            )

    def _take_writer_lock(self) -> int:
        self._refuse_non_regular()
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(self.path, flags, 0o644)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OutputError(
                    f"the store {self.path} is not a regular file: pass another path",
                    path=str(self.path),
                )
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise OutputError(
                    f"the store {self.path} is being written by another run; wait for it to "
                    "end, or pass another path",
                    path=str(self.path),
                    errno=errno.EBUSY,
                ) from exc
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _connect_writer(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
            if db.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
                raise sqlite3.OperationalError("the write-ahead log cannot be used here")
            db.execute("PRAGMA synchronous = NORMAL")
            db.executescript(_SCHEMA)
            _create_ledger(db)
            _add_proof_columns(db)
            version = STORE_VERSION
            if "WITHOUT ROWID" in str(db.execute(_OUTCOMES_SQL).fetchone()[0]).upper():
                db.executescript(_ID_KEYED_INDEXES)  # built once for a store that lacks them
                version = 2
            # Proves the store writable (a read-only folder or a full disk fails here,
            # before any request), and records the format.
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (str(version),))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('opened', ?)", (repr(time.time()),))
            row = db.execute("SELECT value FROM meta WHERE key = 'clean_end'").fetchone()
            self._clean_end = None if row is None else str(row[0])
            db.execute("DELETE FROM meta WHERE key = 'clean_end'")
            db.execute("COMMIT")
            self._seq = db.execute("SELECT coalesce(max(seq), 0) FROM outcomes").fetchone()[0]
            db.execute("BEGIN")
        except BaseException:
            db.close()
            raise
        return db

    def _connect_read_only(self) -> sqlite3.Connection:
        self._refuse_non_regular()
        if not self.path.exists():
            raise OSError(errno.ENOENT, "no such store", str(self.path))
        uri = f"{self.path.absolute().as_uri()}?mode=ro"
        db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
        if db.execute(_HAS_OUTCOMES).fetchone() is None:
            # A writer killed between creating the file and its first commit leaves an
            # empty file: it reads as a store with no outcomes (an empty temporary table
            # stands in, on this connection only).
            db.execute(_EMPTY_OUTCOMES)
        return db

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    # -- outcomes ----------------------------------------------------------------------------

    def get(self, task_id: str) -> ManifestEntry | None:
        """The last entry recorded for ``task_id``, or None."""
        try:
            row = self._point.execute(_GET, (_key(task_id),)).fetchone()
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from exc
        if row is None:
            return None
        return self.entry_of(task_id, row[0])

    def entry_of(self, task_id: str, line: bytes) -> ManifestEntry | None:
        """The entry the recorded ``line`` of ``task_id`` holds (None if it holds none)."""
        entry = parse_line(line, self._base_path)
        if entry is None or entry.task_id == task_id:
            return entry
        # The line holds the id made printable: the key is the id itself.
        return dataclasses.replace(entry, task_id=task_id)

    @property
    def folder(self) -> str:
        """The absolute folder the recorded files are relative to."""
        return self._base

    def recorded(self, keys: Sequence[bytes]) -> list[Recorded]:
        """The rows recorded for ``keys`` (ids as ``key_of`` makes them; at most
        ``LOOKUP_CHUNK``), in no particular order; ids never recorded have none. One
        statement for them all: a resume asks about a chunk of ids at a time."""
        marks = ",".join("?" * len(keys))
        query = (
            "SELECT id, state, file, size, ctime_ns, ino, time, code,"
            f" CASE WHEN file IS NULL THEN line END FROM outcomes WHERE id IN ({marks})"
        )
        try:
            return self._db.execute(query, keys).fetchall()
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from exc

    def proofs(self, task_ids: Sequence[str]) -> list[Proof]:
        """The file proofs recorded for ``task_ids`` (distinct; at most ``LOOKUP_CHUNK``):
        one row per id whose record is ``done`` with a proof, in the order of ``task_ids``,
        each starting with the id's position there (``rows_of``, in that shape)."""
        position = {_key(task_id): n for n, task_id in enumerate(task_ids)}
        found: list[Proof] = [
            (position[row[7]], row[1], *row[2:7])  # type: ignore[misc]
            for row in self.rows_of(task_ids)
            if row[1] is not None
        ]
        found.sort()
        return found

    @property
    def last_seq(self) -> int:
        """The ``seq`` of the last row recorded (this run's own rows included): a row
        with a greater one is recorded after this was read."""
        return self._seq

    def rows_after(self, after: int, until: int, limit: int) -> list[Row]:
        """At most ``limit`` rows of ``done`` outcomes with a file proof whose ``seq`` is
        greater than ``after`` and at most ``until``, in the order of ``seq``: pages read in
        turn (the table's own, or for a table keyed by id, its index ``outcomes_proofs``)."""
        try:
            return self._db.execute(_ROWS_AFTER, (after, until, limit)).fetchall()
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from exc

    def rows_of(self, task_ids: Sequence[str]) -> list[Row]:
        """The rows recorded for ``task_ids`` (at most ``LOOKUP_CHUNK``), in no
        particular order; ids never recorded have none. ``file`` is None unless the row
        is a ``done`` outcome with a file proof.

        The ids travel as one JSON array (``json_each``), not as one bound value each:
        binding and the temporary index of an ``IN`` list cost more than the look-ups.
        Ids that JSON cannot carry unchanged (a lone surrogate, a NUL) are bound instead."""
        try:
            if (array := json_ids(task_ids)) is not None:
                return self._db.execute(_ROWS_BY_JSON, (array,)).fetchall()
            keys = [_key(task_id) for task_id in task_ids]
            marks = ",".join("?" * len(keys))
            return self._db.execute(_ROWS_BY_KEYS.format(marks=marks), keys).fetchall()
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from exc

    # -- a clean end ---------------------------------------------------------------------------

    @property
    def clean_end(self) -> str | None:
        """The ``clean_end`` mark found when the store was opened for writing (it was
        deleted then: see the module's docstring), or None."""
        return self._clean_end

    def record_clean_end(self, mark_of: Callable[[], str | None]) -> None:
        """Record, and commit, that a batch ended cleanly: the mark ``mark_of`` returns (of
        the batch's folder) once the store itself touches the folder no more.

        The store may live in that folder, and its write-ahead log is a file there that
        closing would delete. So the log is folded into the store first and the store
        leaves write-ahead mode for a kept rollback journal (created here, before the
        mark); neither the write of the mark nor the close then adds or removes a file.
        If another connection reads the store meanwhile the mode cannot change: no mark
        (the next batch reads the folder; the next writer returns to write-ahead mode)."""
        if self.read_only:
            return
        db = self._db
        try:
            self.commit()
            if db.in_transaction:
                db.execute("COMMIT")
            try:
                mode = db.execute("PRAGMA journal_mode = PERSIST").fetchone()[0]
            except sqlite3.OperationalError:  # locked: another connection has it open
                mode = "wal"
            if str(mode).lower() == "persist":
                # The journal exists from this write on, and is kept.
                db.execute("INSERT OR REPLACE INTO meta VALUES ('clean_end', '')")
                mark = mark_of()
                if mark is None:
                    db.execute("DELETE FROM meta WHERE key = 'clean_end'")
                else:
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('clean_end', ?)", (mark,))
            db.execute("BEGIN")
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from exc

    def add(self, outcome: Outcome) -> None:
        """Record ``outcome`` in the open transaction; durable only after ``commit``.

        A ``done`` outcome of one whole file is recorded with the file's proof (see the
        module's docstring): the caller vouches that the file is the one it checked."""
        names = [relative_name(file, self._base) for file in outcome.files]
        line = outcome_line(outcome, self._base, names)
        self._put(outcome.task_id, outcome.state.value, line, self._proof(outcome, names))

    def _proof(self, outcome: Outcome, names: list[str]) -> tuple[object, ...]:
        """The proof columns of ``outcome``'s file (``names``: the files relative to the
        store's folder), or all None."""
        files = outcome.files
        if (
            outcome.state is not OutcomeState.DONE
            or len(files) != 1
            or outcome.error is not None
            or outcome.messages
            or outcome.warnings
        ):
            return _NO_PROOF
        try:
            seen = os.lstat(files[0])
        except OSError:
            return _NO_PROOF
        if not stat.S_ISREG(seen.st_mode) or seen.st_size != outcome.bytes_written:
            return _NO_PROOF
        return (
            names[0],
            seen.st_size,
            seen.st_ctime_ns,
            seen.st_ino,
            outcome.finished_at,
            outcome.response_code,
        )

    def _put(
        self, task_id: str, state: str, line: bytes, proof: tuple[object, ...] = _NO_PROOF
    ) -> None:
        self._seq += 1
        try:
            self._db.execute(_PUT, (_key(task_id), self._seq, state, line, *proof))
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from exc
        self._pending += 1

    def commit(self) -> None:
        """Make every ``add`` so far durable (see the module's invariants)."""
        if not self._pending:
            return
        try:
            self._db.execute("COMMIT")
            self._db.execute("BEGIN")
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from exc
        self.rows_written += self._pending
        self._pending = 0

    def append(self, outcome: Outcome) -> None:
        """Record ``outcome`` and commit: the manifest's interface."""
        self.add(outcome)
        self.commit()

    def lines(self) -> Iterator[bytes]:
        """Every id's last line, in the order they were last written."""
        try:
            for (line,) in self._db.execute("SELECT line FROM outcomes ORDER BY seq"):
                yield bytes(line)
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from exc

    def entries(self) -> Iterator[ManifestEntry]:
        """Every id's last entry, in the order they were last written."""
        try:
            rows = self._db.execute("SELECT id, line FROM outcomes ORDER BY seq")
            for task_id, line in rows:
                entry = parse_line(line, self._base_path)
                if entry is not None:
                    yield dataclasses.replace(entry, task_id=_text(task_id))
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from exc

    def import_jsonl(self, manifest: str | os.PathLike[str]) -> int:
        """Import a JSONL manifest (last line per id wins), once: a manifest already
        imported (the same path, size and modification time) is not read again. Returns
        the number of lines imported."""
        source = Path(manifest)
        try:
            seen = os.stat(source)
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise output_error(exc, source, None) from exc
        mark = f"{os.path.abspath(source)}:{seen.st_size}:{seen.st_mtime_ns}"
        key = "imported:" + os.path.abspath(source)
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from exc
        if row is not None and row[0] == mark:
            return 0
        count = 0
        base = source.parent
        for line in manifest_lines(source):
            entry = parse_line(line, base)
            if entry is None:
                continue
            # No proof: nobody checked these files, so a resume checks them in full.
            outcome = entry.as_outcome()
            self._put(outcome.task_id, outcome.state.value, outcome_line(outcome, self._base))
            count += 1
        try:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, mark))
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from exc
        self._pending += 1
        self.commit()
        return count

    # -- the ledger of submitted texts ---------------------------------------------------------

    def _ledger_write(self, sql: str, values: tuple[object, ...], *, commit: bool) -> None:
        try:
            self._db.execute(sql, values)
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from exc
        self._pending += 1
        if commit:
            self.commit()

    def record_sending(self, key: str, digest: bytes, stem: str) -> None:
        """Record, and commit, that the text known by ``key`` is about to be sent: from
        here until ``record_submitted`` or ``record_unsent``, the text is in the uncertain
        window (a crash leaves it ``sending``)."""
        self._ledger_write(
            "INSERT OR REPLACE INTO ledger (key, digest, state, task_id, stem, error, time) "
            "VALUES (?, ?, 'sending', NULL, ?, NULL, ?)",
            (_key(key), digest, stem, time.time()),
            commit=True,
        )

    def record_submitted(self, key: str, task_id: str, *, commit: bool = True) -> None:
        """Record that the text known by ``key`` became ``task_id`` (the last word wins).
        Committed at once unless ``commit=False`` (then at the next ``commit``)."""
        self._ledger_write(
            "INSERT INTO ledger (key, state, task_id, time) VALUES (?, 'submitted', ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET state = 'submitted', task_id = excluded.task_id, "
            "error = NULL, time = excluded.time",
            (_key(key), _key(task_id), time.time()),
            commit=commit,
        )

    def record_unsent(self, key: str, error: str, *, uncertain: bool) -> None:
        """Record, and commit, that the text known by ``key`` got no task id: ``uncertain``
        if its POST may have reached the server, else ``unsent`` (nothing was created)."""
        self._ledger_write(
            "UPDATE ledger SET state = ?, task_id = NULL, error = ?, time = ? WHERE key = ?",
            ("uncertain" if uncertain else "unsent", error, time.time(), _key(key)),
            commit=True,
        )

    def ledger_entry(self, key: str) -> LedgerEntry | None:
        """What the ledger holds for ``key``, or None if the text was never sent."""
        try:
            row = self._point.execute(_LEDGER_GET, (_key(key),)).fetchone()
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from exc
        return None if row is None else _ledger_entry(key, row)

    def task_id_for(self, key: str) -> str | None:
        """The task the text known by ``key`` became, or None if it has none (yet)."""
        try:
            row = self._point.execute(_TASK_ID_GET, (_key(key),)).fetchone()
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from exc
        return None if row is None or row[0] is None else _text(row[0])

    def ledger(self) -> Iterator[LedgerEntry]:
        """Every text the ledger holds, oldest change first (nothing for a store written
        before the ledger had its present form)."""
        try:
            rows = self._db.execute(f"SELECT key, {_LEDGER_COLUMNS} FROM ledger ORDER BY time")
            for key, *rest in rows:
                yield _ledger_entry(_text(key), tuple(rest))
        except sqlite3.OperationalError as exc:
            if "no such" in str(exc):  # a store that predates the ledger: it has no texts
                return
            raise _store_error(exc, self.path) from exc
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from exc

    def close(self) -> None:
        """Commit what was added and close; idempotent."""
        db = getattr(self, "_db", None)
        if db is None:
            return
        try:
            if not self.read_only:
                with contextlib.suppress(sqlite3.Error):
                    self.commit()
            db.close()
        finally:
            self._db = None  # type: ignore[assignment]
            self._release_lock()

    def __enter__(self) -> OutcomeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


LEDGER_STATES = ("sending", "submitted", "uncertain", "unsent")
_LEDGER_COLUMNS = "digest, state, task_id, stem, error, time"
_LEDGER_GET = f"SELECT {_LEDGER_COLUMNS} FROM ledger WHERE key = ?"
_LEDGER_TABLE = """
CREATE TABLE IF NOT EXISTS ledger (
    key BLOB PRIMARY KEY, digest BLOB, state TEXT NOT NULL, task_id BLOB, stem TEXT,
    error TEXT, time REAL NOT NULL
) WITHOUT ROWID;
"""


@dataclasses.dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One text of the ledger: its key, the digest of its text (None if recorded by
    ``record_submitted`` alone), its state (``LEDGER_STATES``), its task id once it has
    one, the stem of its file, and why it has no id when it has none."""

    key: str
    digest: bytes | None
    state: str
    task_id: str | None
    stem: str | None
    error: str | None
    time: float

    def as_json(self) -> dict[str, object]:
        """The entry as one JSON object (``aiotts report --ledger``); no digest."""
        return {
            "key": self.key,
            "state": self.state,
            "id": self.task_id,
            "stem": self.stem,
            "error": self.error,
            "time": self.time,
        }


def _ledger_entry(key: str, row: tuple[Any, ...]) -> LedgerEntry:
    digest, state, task_id, stem, error, when = row
    return LedgerEntry(
        key=key,
        digest=None if digest is None else bytes(digest),
        state=str(state),
        task_id=None if task_id is None else _text(task_id),
        stem=None if stem is None else str(stem),
        error=None if error is None else str(error),
        time=float(when),
    )


def _create_ledger(db: sqlite3.Connection) -> None:
    """Create the ledger, or bring one of its first form (key, task_id, time) to the
    present one, keeping its rows as ``submitted``."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(ledger)")}
    if columns and "state" not in columns:
        db.execute("ALTER TABLE ledger RENAME TO ledger_first_form")
        db.executescript(_LEDGER_TABLE)
        db.execute(
            "INSERT INTO ledger (key, state, task_id, time) "
            "SELECT key, 'submitted', task_id, time FROM ledger_first_form"
        )
        db.execute("DROP TABLE ledger_first_form")
    else:
        db.executescript(_LEDGER_TABLE)


def _records(path: Path) -> Iterator[tuple[bytes, str, bytes]]:
    """(id, state, line) for every record in the store or JSONL manifest at ``path``,
    in the order written (a JSONL manifest may hold several lines per id)."""
    if is_store_path(path):
        with OutcomeStore(path, read_only=True) as store:
            try:
                rows = store._db.execute("SELECT id, state, line FROM outcomes ORDER BY seq")
                for task_id, state, line in rows:
                    yield bytes(task_id), str(state), bytes(line)
            except sqlite3.Error as exc:
                raise _store_error(exc, path) from exc
        return
    for line in manifest_lines(path):
        entry = parse_line(line, path.parent)
        if entry is not None:
            yield _key(entry.task_id), entry.state.value, line.rstrip(b"\n")


def merged_records(paths: Iterable[str | os.PathLike[str]]) -> Iterator[tuple[str, bytes]]:
    """(state, line) per id across the records at ``paths``: the last word per id wins,
    later paths after earlier ones (as a resume would read them). Merged in a temporary
    on-disk database, so memory stays flat whatever the number of ids."""
    merge = sqlite3.connect("", isolation_level=None)
    try:
        merge.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
        merge.execute(
            "CREATE TABLE m (id BLOB PRIMARY KEY, seq INTEGER, state TEXT, line BLOB) WITHOUT ROWID"
        )
        merge.execute("CREATE INDEX m_by_seq ON m (seq)")
        merge.execute("BEGIN")
        seq = 0
        for path in paths:
            for task_id, state, line in _records(Path(path)):
                seq += 1
                merge.execute(
                    "INSERT OR REPLACE INTO m VALUES (?, ?, ?, ?)", (task_id, seq, state, line)
                )
        for state, line in merge.execute("SELECT state, line FROM m ORDER BY seq"):
            yield str(state), bytes(line)
    finally:
        merge.close()


def open_record(path: str | os.PathLike[str]) -> Manifest | OutcomeStore:
    """The record at ``path`` opened for writing: a store if its suffix is ``.db``,
    ``.sqlite`` or ``.sqlite3``, else a JSONL manifest (as every earlier version wrote)."""
    return OutcomeStore(path) if is_store_path(path) else Manifest(path)
