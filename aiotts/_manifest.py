"""The manifest: an append-only JSONL file, one line per task outcome.

Invariants:

* A line is written (and flushed to the operating system) before its outcome is handed to
  the caller, so a crash never loses an outcome that anyone saw.
* A line is only ever appended. A crash in the middle of a line leaves a torn last line;
  reading skips it, and opening for append first ends it with a newline, so the next line
  always starts clean.
* The last line about an id wins: a resumed run that retries a failed task appends its new
  outcome below the old one.
* No secret or token is ever written: a line holds the id, the state, files, byte count,
  error text, the server's messages, warnings and ``responseStatusCode``, and the time.
* The manifest is opened only as a regular file and never through a symbolic link
  (``O_NOFOLLOW``; ``O_NONBLOCK`` so a FIFO planted at its name cannot block the open):
  anything else is an ``OutputError`` naming the path, raised before any request.

Paths. A line carries ``"v": 2`` and its ``files`` relative to the folder the manifest is
in, so a resume works from any working directory, and a manifest moved together with its
output folder stays valid. Lines without ``"v"`` (older versions) hold paths relative to
the working directory of the run that wrote them: such a path is taken as it is when it
names a file in the output folder from here, and otherwise looked up by its name in the
output folder (where every file of a batch is written).

On resume a ``done`` entry counts only if each recorded file is a regular file directly in
the output folder, whole (its WAV header agrees with its size), and the sizes add up to the
recorded ``bytes``; a path outside the folder, a link, a FIFO or a short file makes the id
be fetched again. Files are checked with ``lstat`` and a non-blocking, non-following open,
so no check can block the event loop.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson

from aiotts._errors import OutputError
from aiotts._files import WAV_HEAD_BYTES, check_wav, output_error
from aiotts._models import Outcome, OutcomeState, printable_id

__all__ = [
    "MANIFEST_VERSION",
    "Manifest",
    "ManifestEntry",
    "complete_size",
    "file_is_complete",
    "manifest_lines",
    "outcome_line",
    "parse_line",
    "read_manifest",
    "relative_name",
    "whole_files",
]

MANIFEST_VERSION = 2
"""Lines of this version record paths relative to the manifest's own folder."""

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC
# Read and write: opening checks the last byte for a torn line.
_APPEND_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    task_id: str
    state: OutcomeState
    files: tuple[Path, ...]
    """Where the files were recorded: joined to the manifest's folder (version 2 lines), or
    as written (older lines, relative to their run's working directory)."""
    bytes_written: int
    error: str | None
    messages: tuple[str, ...]
    time: float
    warnings: tuple[str, ...] = ()
    response_code: str | None = None
    legacy_paths: bool = False
    """True for a line of an older version, whose paths are relative to another cwd."""

    def as_outcome(self, files: tuple[Path, ...] | None = None) -> Outcome:
        return Outcome(
            task_id=self.task_id,
            state=self.state,
            files=self.files if files is None else files,
            bytes_written=self.bytes_written,
            error=self.error,
            messages=self.messages,
            warnings=self.warnings,
            response_code=self.response_code,
            finished_at=self.time,
            resumed=True,
        )


def _texts(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(str(item) for item in value)


def relative_name(path: str | os.PathLike[str], base: str) -> str:
    """``os.path.relpath(os.path.abspath(path), base)``, for ``base`` absolute and
    normalised (``os.path.abspath``'s result).

    The usual case costs a third of that: a file written by a batch is an absolute path
    already normalised, inside ``base``, so its name relative to ``base`` is what follows
    ``base`` and a separator. Anything else (a relative path, ``..``, a doubled separator,
    a file outside ``base``) takes ``os.path.relpath`` itself.
    """
    text = os.fspath(path)
    prefix = base if base.endswith(os.sep) else base + os.sep
    if (
        len(text) > len(prefix)
        and text.startswith(prefix)
        and not text.startswith(os.sep, len(prefix))  # "//": normpath keeps two at the start
        and os.path.normpath(text) == text
    ):
        return text[len(prefix) :]
    return os.path.relpath(os.path.abspath(text), base)


def outcome_line(outcome: Outcome, base: str, names: list[str] | None = None) -> bytes:
    """The record of ``outcome`` as one JSON object (no newline), its files relative to
    ``base`` (an absolute folder): the line of a JSONL manifest and the row of a store.
    ``names``: those relative names, if the caller has them already."""
    if names is None:
        names = [relative_name(p, base) for p in outcome.files]
    return orjson.dumps(
        {
            "v": MANIFEST_VERSION,
            "id": printable_id(outcome.task_id),
            "state": outcome.state.value,
            "files": names,
            "bytes": outcome.bytes_written,
            "error": outcome.error,
            "messages": list(outcome.messages),
            "warnings": list(outcome.warnings),
            "code": outcome.response_code,
            "time": round(outcome.finished_at, 3),
        }
    )


def parse_line(line: bytes, base: Path) -> ManifestEntry | None:
    """The entry a record line holds (files joined to ``base``), or None if it is not one."""
    try:
        data = orjson.loads(line)
        legacy = data.get("v") is None
        files = tuple(Path(p) for p in data.get("files") or ())
        code = data.get("code")
        return ManifestEntry(
            task_id=str(data["id"]),
            state=OutcomeState(data["state"]),
            files=files if legacy else tuple(base / p for p in files),
            bytes_written=int(data.get("bytes") or 0),
            error=data.get("error"),
            messages=_texts(data.get("messages")),
            time=float(data.get("time") or 0.0),
            warnings=_texts(data.get("warnings")),
            response_code=code if isinstance(code, str) else None,
            legacy_paths=legacy,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None


def _not_regular(path: Path, what: str) -> OutputError:
    return OutputError(
        f"the manifest {path} is {what}; aiotts reads and writes a manifest only as a "
        "regular file, never through a link: remove it, or pass another manifest path",
        path=str(path),
    )


def _open_regular(path: Path, flags: int) -> int:
    """A descriptor on ``path`` if it is a regular file (not a link, FIFO or device)."""
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _not_regular(path, "a symbolic link") from exc
        raise output_error(exc, path, None) from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _not_regular(path, "not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def manifest_lines(path: Path) -> Iterator[bytes]:
    """The whole lines of the manifest at ``path`` (none if it is missing), in order.

    Raises ``OutputError`` if ``path`` is a symbolic link or not a regular file."""
    try:
        fd = _open_regular(path, _READ_FLAGS)
    except OutputError as exc:
        if exc.errno == errno.ENOENT:
            return
        raise
    with os.fdopen(fd, "rb") as file:
        yield from _lines(file)


def _lines(file: IO[bytes]) -> Iterator[bytes]:
    for line in file:
        if line.endswith(b"\n"):  # a line without its newline is a torn write
            yield line


def read_manifest(path: str | os.PathLike[str]) -> dict[str, ManifestEntry]:
    """The last entry for each id, read whole: a JSONL manifest, or a store (a path ending
    in ``.db``, ``.sqlite`` or ``.sqlite3``). A missing file, of either kind, is an empty
    record (as when a run was stopped before it wrote one). For large records, ask a store
    per id instead (``OutcomeStore.get``).

    Raises ``OutputError`` if ``path`` is a symbolic link or not a regular file."""
    target = Path(path)
    from aiotts._store import OutcomeStore, is_store_path  # the store is built on this module

    if is_store_path(target):
        if not os.path.lexists(target):
            return {}
        with OutcomeStore(target, read_only=True) as store:
            return {entry.task_id: entry for entry in store.entries()}
    entries: dict[str, ManifestEntry] = {}
    base = target.parent
    for line in manifest_lines(target):
        entry = parse_line(line, base)
        if entry is not None:
            entries[entry.task_id] = entry
    return entries


def complete_size(path: Path) -> int | None:
    """The size of ``path`` if it is a regular file (not a link) holding a whole WAV, else
    None. Never blocks: ``lstat`` first, then a non-blocking, non-following open of what
    ``lstat`` saw, so a FIFO or device is never opened and a link never followed."""
    try:
        seen = os.lstat(path)
        if not stat.S_ISREG(seen.st_mode):
            return None
        fd = os.open(path, _READ_FLAGS)
        try:
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) != (seen.st_dev, seen.st_ino):
                return None  # replaced between the lstat and the open
            head = os.pread(fd, WAV_HEAD_BYTES, 0)
        finally:
            os.close(fd)
        check_wav(head, opened.st_size)
    except (OSError, ValueError):
        return None
    return opened.st_size


def file_is_complete(path: Path, expected_size: int | None = None) -> bool:
    """True if ``path`` is a whole WAV in a regular file (of ``expected_size`` bytes, when
    given); see ``complete_size``."""
    size = complete_size(path)
    return size is not None and (expected_size is None or size == expected_size)


def _in_folder(path: Path, folder: Path, folder_real: Callable[[], str]) -> bool:
    # The recorded parent spelled as the folder is the folder; anything else is compared
    # by real path (a link or ``..`` may still lead there).
    return path.parent == folder or os.path.realpath(path.parent) == folder_real()


def _located(
    entry: ManifestEntry, recorded: Path, folder: Path, folder_real: Callable[[], str]
) -> Path | None:
    """Where ``recorded`` is now, if it names a file directly in ``folder``."""
    if _in_folder(recorded, folder, folder_real):
        return folder / recorded.name
    if entry.legacy_paths and not recorded.is_absolute() and ".." not in recorded.parts:
        # Written relative to another working directory: every file of a batch is written
        # directly in its output folder, so look for it there by name.
        return folder / recorded.name
    return None


def whole_files(entry: ManifestEntry, folder: Path) -> tuple[Path, ...] | None:
    """The files of a ``done`` entry as paths in ``folder``, if every one is a whole regular
    file directly in ``folder`` and their sizes add up to the recorded bytes; else None."""
    if entry.state is not OutcomeState.DONE or not entry.files:
        return None
    real: list[str] = []

    def folder_real() -> str:  # asked for only when a path is not spelled as the folder
        if not real:
            real.append(os.path.realpath(folder))
        return real[0]

    found: list[Path] = []
    total = 0
    for recorded in entry.files:
        path = _located(entry, recorded, folder, folder_real)
        size = None if path is None else complete_size(path)
        if path is None or size is None:
            return None
        total += size
        found.append(path)
    if total != entry.bytes_written:
        return None
    return tuple(found)


class Manifest:
    """An open manifest, appended to as outcomes arrive."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise output_error(exc, self.path, None) from exc
        fd = _open_regular(self.path, _APPEND_FLAGS)
        try:
            size = os.fstat(fd).st_size
            if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
                os.write(fd, b"\n")
        except OSError as exc:
            os.close(fd)
            raise output_error(exc, self.path, None) from exc
        self._file: IO[bytes] = os.fdopen(fd, "ab")
        # Recorded paths are relative to this folder (see the module docstring).
        self._base = os.path.abspath(self.path.parent)
        self.lines_written = 0

    def __repr__(self) -> str:
        return f"<Manifest {self.path} lines_written={self.lines_written}>"

    def append(self, outcome: Outcome) -> None:
        line = outcome_line(outcome, self._base)
        try:
            self._file.write(line + b"\n")
            self._file.flush()
        except OSError as exc:
            raise output_error(exc, self.path, outcome.task_id) from exc
        self.lines_written += 1

    def add(self, outcome: Outcome) -> None:
        """``append``: every line is flushed as it is written, so there is nothing to commit."""
        self.append(outcome)

    def commit(self) -> None:
        """Nothing to do: each line was flushed to the operating system when added."""

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
