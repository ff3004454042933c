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
  error text, server messages and the time.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson

from aiotts._files import check_wav, output_error
from aiotts._models import Outcome, OutcomeState, printable_id

__all__ = ["Manifest", "ManifestEntry", "file_is_complete", "read_manifest"]


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    task_id: str
    state: OutcomeState
    files: tuple[Path, ...]
    bytes_written: int
    error: str | None
    messages: tuple[str, ...]
    time: float

    def as_outcome(self) -> Outcome:
        return Outcome(
            task_id=self.task_id,
            state=self.state,
            files=self.files,
            bytes_written=self.bytes_written,
            error=self.error,
            messages=self.messages,
            finished_at=self.time,
            resumed=True,
        )


def _entry(line: bytes) -> ManifestEntry | None:
    try:
        data = orjson.loads(line)
        return ManifestEntry(
            task_id=str(data["id"]),
            state=OutcomeState(data["state"]),
            files=tuple(Path(p) for p in data.get("files") or ()),
            bytes_written=int(data.get("bytes") or 0),
            error=data.get("error"),
            messages=tuple(str(m) for m in data.get("messages") or ()),
            time=float(data.get("time") or 0.0),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        for line in file:
            if line.endswith(b"\n"):  # a line without its newline is a torn write
                yield line


def read_manifest(path: str | os.PathLike[str]) -> dict[str, ManifestEntry]:
    """The last entry for each id; a missing file is an empty manifest."""
    entries: dict[str, ManifestEntry] = {}
    target = Path(path)
    if not target.exists():
        return entries
    for line in _lines(target):
        entry = _entry(line)
        if entry is not None:
            entries[entry.task_id] = entry
    return entries


def file_is_complete(path: Path, expected_size: int | None = None) -> bool:
    """True if ``path`` is a whole WAV file (and of ``expected_size`` bytes, when given)."""
    try:
        size = path.stat().st_size
        if expected_size is not None and size != expected_size:
            return False
        with path.open("rb") as file:
            head = file.read(44)
        check_wav(head, size)
    except (OSError, ValueError):
        return False
    return True


class Manifest:
    """An open manifest, appended to as outcomes arrive."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[bytes] = self.path.open("ab")
            if self._file.tell() > 0 and not self._ends_with_newline():
                self._file.write(b"\n")
                self._file.flush()
        except OSError as exc:
            raise output_error(exc, self.path, None) from exc
        self.lines_written = 0

    def __repr__(self) -> str:
        return f"<Manifest {self.path} lines_written={self.lines_written}>"

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as file:
            file.seek(-1, os.SEEK_END)
            return file.read(1) == b"\n"

    def append(self, outcome: Outcome) -> None:
        line = orjson.dumps(
            {
                "id": printable_id(outcome.task_id),
                "state": outcome.state.value,
                "files": [str(p) for p in outcome.files],
                "bytes": outcome.bytes_written,
                "error": outcome.error,
                "messages": list(outcome.messages),
                "time": round(outcome.finished_at, 3),
            }
        )
        try:
            self._file.write(line + b"\n")
            self._file.flush()
        except OSError as exc:
            raise output_error(exc, self.path, outcome.task_id) from exc
        self.lines_written += 1

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
