"""Files: safe names from task ids, and atomic writes of results.

Invariants:

* A file at its final name is always whole. Audio is written to a temporary file beside
  the target (same folder, so the final ``os.replace`` is atomic) and takes its final name
  only after the body ended, the task was ``Completed`` and the WAV header agrees with the
  number of bytes written. Every other path out of a write removes the temporary file.
* Whatever a task id contains (``../``, separators, NUL, control characters, thousands of
  characters), the name built from it is one plain file name inside the output folder,
  and no two (id, result index) pairs share a name (``safe_stem``).
* Nothing already at a final name is followed or opened: a link or FIFO there is replaced
  by the new file's directory entry (``os.replace``), never written through.
* Every ``OSError`` leaves as an ``OutputError`` naming the path and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import re
import shutil
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiotts._errors import DecodeError, OutputError
from aiotts._syncer import sync_and_close

__all__ = [
    "PART_SUFFIX",
    "WAV_HEAD_BYTES",
    "OutputTarget",
    "ResultFile",
    "check_wav",
    "commit_all",
    "is_out_of_descriptors",
    "output_error",
    "remove_stale_parts",
    "safe_stem",
    "share_file",
]

PART_SUFFIX = ".part"
"""Temporary files end with this; they start with a dot, so listings of ``*.wav`` skip them."""

_MAX_STEM = 100
_MAX_CLEANED = 80
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
WAV_HEAD_BYTES = 4096
"""How much of the start of a WAV file ``check_wav`` reads its chunks from."""
_CREATE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_temp_numbers = itertools.count()
_pid = os.getpid()
"""This process's id, for temporary names: asked once (a system call each time), and again
in a child after a fork, so the names of parent and child never meet."""


def _forked() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def safe_stem(task_id: str) -> str:
    """A file name stem for ``task_id`` that cannot leave the output folder.

    Names map back to exactly one (id, result index), so no two results ever share a file:

    * Ids of the observed form (a letter or digit, then letters, digits, ``_`` and ``-``,
      at most 100 characters) are used as they are: ``TTSb4705-...-b49fb7921aa1.wav``.
    * Any other id becomes ``_`` + its safe characters + ``-`` + a 128-bit hash of the whole
      id. The leading ``_`` keeps these apart from the ids used as they are, and the hash
      keeps them apart from each other.
    * No stem ever contains ``.``, so the ``.N`` that numbers a task's further results
      (``OutputTarget.path``) cannot be mistaken for part of another id: id ``a`` with two
      results writes ``a.wav`` and ``a.1.wav``, while id ``a.1`` writes ``_a_1-<hash>.wav``.
    """
    if len(task_id) <= _MAX_STEM and _SAFE_ID.fullmatch(task_id):
        return task_id
    digest = hashlib.sha256(task_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    cleaned = _UNSAFE_CHARS.sub("_", task_id).strip("_")[:_MAX_CLEANED]
    return f"_{cleaned}-{digest}" if cleaned else f"_{digest}"


_SUFFIXES = {"WavFile": ".wav"}


@dataclass(frozen=True, slots=True)
class OutputTarget:
    """Where the results of one task go: ``folder/stem.wav``, ``folder/stem.1.wav``, ...

    Writing there never follows what is already at a final name: the temporary file is
    created with ``O_EXCL`` (which refuses any existing entry, a link included) and takes
    its final name with ``os.replace``, which swaps the directory entry itself. So a link
    planted at a final name is replaced by the file, and whatever it pointed to (inside the
    folder or outside) is left untouched; a FIFO there is replaced without being opened.
    """

    folder: Path
    stem: str
    suffix: str = ".wav"
    _base: str = field(init=False, repr=False, compare=False)
    """``folder/stem`` as a string, built once: every file name of the target starts with it."""

    def __post_init__(self) -> None:
        folder = os.fspath(self.folder)
        if os.altsep is None and folder:  # one separator: os.path.join by hand, for less
            base = folder + self.stem if folder.endswith(os.sep) else f"{folder}{os.sep}{self.stem}"
        else:
            base = os.path.join(folder, self.stem)
        object.__setattr__(self, "_base", base)

    @classmethod
    def in_folder(cls, folder: str | os.PathLike[str], task_id: str) -> OutputTarget:
        return cls(folder if isinstance(folder, Path) else Path(folder), safe_stem(task_id))

    @classmethod
    def at_path(cls, path: str | os.PathLike[str], task_id: str) -> OutputTarget:
        """``path`` is a folder (existing, or written with a trailing separator) or a file name."""
        text = os.fspath(path)
        target = Path(text)
        if target.is_dir() or text.endswith((os.sep, "/")):
            return cls.in_folder(target, task_id)
        return cls(target.parent, target.stem, target.suffix or ".wav")

    def path(self, index: int, result_type: str = "WavFile") -> Path:
        return Path(self.name(index, result_type))

    def name(self, index: int, result_type: str = "WavFile") -> str:
        """``path`` as a string (what the files are opened and renamed by)."""
        suffix = self.suffix if result_type in _SUFFIXES else ".bin"
        return self._base + suffix if index == 0 else f"{self._base}.{index}{suffix}"


def output_error(exc: OSError, path: Path, task_id: str | None) -> OutputError:
    """An ``OutputError`` that says what went wrong with ``path`` and what to do about it."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        advice = "free some space, then resume"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        advice = "choose a folder you can write to"
    elif exc.errno in (errno.ENOENT, errno.ENOTDIR):
        advice = "check that the output folder exists"
    elif exc.errno in (errno.EMFILE, errno.ENFILE):
        advice = (
            "this process has too many files and connections open at once; lower the "
            "number of downloads in flight or raise the limit (ulimit -n)"
        )
    else:
        advice = "check the output folder"
    who = f"task {task_id}: " if task_id else ""
    return OutputError(
        f"{who}cannot write {path}: {reason}; {advice}",
        path=str(path),
        errno=exc.errno,
        task_id=task_id,
    )


def check_wav(head: bytes, size: int, *, task_id: str | None = None) -> None:
    """Raise ``DecodeError`` unless ``head`` starts a RIFF/WAVE file of exactly ``size`` bytes.

    The RIFF size must match, and the chunks are walked to the ``data`` chunk (within the
    first ``WAV_HEAD_BYTES``), which must end the file: not one byte may follow what the
    header declares (but the pad byte RIFF puts after a chunk of odd size).
    """
    if size < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise DecodeError("the audio is not a RIFF/WAVE file", offset=0, task_id=task_id)
    (riff_size,) = struct.unpack_from("<I", head, 4)
    if riff_size + 8 != size:
        raise DecodeError(
            f"the WAV header declares {riff_size + 8} bytes but {size} were received",
            offset=4,
            task_id=task_id,
        )
    position = 12
    while position + 8 <= min(len(head), size):
        chunk_id = head[position : position + 4]
        (chunk_size,) = struct.unpack_from("<I", head, position + 4)
        if chunk_id == b"data":
            end = position + 8 + chunk_size
            if end == size or (chunk_size % 2 == 1 and end + 1 == size):
                return
            raise DecodeError(
                f"the WAV data chunk declares {chunk_size} bytes but "
                f"{size - position - 8} follow its header",
                offset=position + 4,
                task_id=task_id,
            )
        position += 8 + chunk_size + (chunk_size & 1)
    raise DecodeError(
        f"the WAV file has no data chunk within its first {WAV_HEAD_BYTES} bytes",
        offset=min(position, size),
        task_id=task_id,
    )


def is_out_of_descriptors(exc: BaseException) -> bool:
    """True for "too many open files" (EMFILE, ENFILE), raised here or as the cause of
    this error (a file, or a socket that could not be opened): local and transient."""
    seen: BaseException | None = exc
    for _ in range(8):  # a short chain: ours, aiohttp's, the OSError
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno in (errno.EMFILE, errno.ENFILE):
            return True
        seen = seen.__cause__
    return False


def _temp_name(final: str) -> str:
    """A fresh temporary name beside ``final``: ``folder/.NAME.PID.N.part``."""
    if os.altsep is None:  # one separator: split by hand, a third of os.path.split's cost
        folder, sep, name = final.rpartition(os.sep)
        return f"{folder}{sep}.{name}.{_pid}.{next(_temp_numbers)}{PART_SUFFIX}"
    folder, name = os.path.split(final)
    return os.path.join(folder, f".{name}.{_pid}.{next(_temp_numbers)}{PART_SUFFIX}")


class ResultFile:
    """One result being written to a temporary file; ``commit`` or ``discard`` it.

    Writes are plain blocking writes from the event loop: a 256 KiB piece takes tens of
    microseconds, far less than handing it to a thread. ``close`` as soon as the last
    byte is written: a closed file keeps its temporary name and can still be verified,
    synced (reopened read-only) and renamed, so a writer holds one descriptor at a time.
    ``final`` may change until the rename (``name_as``): the name depends on the result's
    ``type``, which an answer may send after the audio. ``verify`` checks the bytes once;
    ``commit_all`` only checks again a file written to since.
    """

    __slots__ = (
        "_fd",
        "_final",
        "_head",
        "_temp",
        "_verified",
        "result_type",
        "size",
        "task_id",
    )

    def __init__(
        self, final: str | os.PathLike[str], *, task_id: str, result_type: str = "WavFile"
    ) -> None:
        self.task_id = task_id
        self.result_type = result_type
        # The writer's pid is in the name, so a later run can tell a crashed run's leftovers
        # from the files of a process that is still writing (``remove_stale_parts``); the
        # counter keeps the names of one process apart. Kept as strings: this runs per file.
        self._final = os.fspath(final)
        self._temp = _temp_name(self._final)
        self.size = 0
        self._head = b""
        self._verified = False
        try:
            self._fd: int | None = os.open(self._temp, _CREATE_NEW, 0o644)
        except OSError as exc:
            raise output_error(exc, self.final, task_id) from exc

    @property
    def final(self) -> Path:
        """The name the file takes at ``rename``."""
        return Path(self._final)

    def name_as(self, final: str | os.PathLike[str], result_type: str) -> None:
        """Set the final name and the type (which decides whether the WAV check applies)."""
        self._final = os.fspath(final)
        if result_type != self.result_type:
            self.result_type = result_type
            self._verified = False

    @property
    def temp(self) -> Path:
        """The temporary file the bytes go to until ``rename``."""
        return Path(self._temp)

    def __repr__(self) -> str:
        state = "open" if self._fd is not None else "closed"
        return f"<ResultFile {os.path.basename(self._final)} {state} {self.size} bytes>"

    def write(self, data: bytes | memoryview) -> None:
        fd = self._fd
        if fd is None:
            raise RuntimeError("write to a closed ResultFile")
        self._verified = False
        if len(self._head) < WAV_HEAD_BYTES:
            self._head += bytes(data[: WAV_HEAD_BYTES - len(self._head)])
        view = memoryview(data)
        try:
            while view:
                written = os.write(fd, view)
                view = view[written:]
        except OSError as exc:
            self.discard()
            raise output_error(exc, self.final, self.task_id) from exc
        self.size += len(data)

    def verify(self) -> None:
        """Check the bytes written form a whole WAV file (raises ``DecodeError``)."""
        if self.result_type == "WavFile" and not self._verified:
            check_wav(self._head, self.size, task_id=self.task_id)
        self._verified = True

    async def sync(self) -> None:
        """Flush to disk and close, off the event loop (fsync can take milliseconds)."""
        fd, self._fd = self._fd, None  # the syncer owns it now, and closes it in any case
        try:
            if fd is None:  # closed when its last byte was written: reopen it to sync
                fd = os.open(self._temp, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            await sync_and_close(fd)
        except OSError as exc:
            raise output_error(exc, self.final, self.task_id) from exc

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def rename(self) -> None:
        try:
            os.replace(self._temp, self._final)
        except OSError as exc:
            raise output_error(exc, self.final, self.task_id) from exc

    def discard(self) -> None:
        """Close and remove the temporary file. Idempotent; never raises."""
        with contextlib.suppress(OSError):
            self.close()
        with contextlib.suppress(OSError):
            os.unlink(self._temp)


def _writer_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def remove_stale_parts(folder: Path) -> int:
    """Remove the temporary files that crashed processes left in ``folder``; return how many.

    Only files named like ours whose writing process no longer runs are removed, so a batch
    writing into the same folder at the same time keeps its files.
    """
    removed = 0
    try:
        # Read as it goes, not listed first: a folder of a million results would cost a
        # hundred megabytes as a list. Removing entries while reading is allowed; an
        # entry added meanwhile is the file of a live process, skipped either way.
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                if not (name.startswith(".") and name.endswith(PART_SUFFIX)):
                    continue
                parts = name[: -len(PART_SUFFIX)].rsplit(".", 2)
                if len(parts) != 3 or not parts[1].isdigit() or _writer_alive(int(parts[1])):
                    continue
                try:
                    os.unlink(entry.path)
                    removed += 1
                except OSError:
                    pass
    except OSError:
        pass
    return removed


async def commit_all(files: Sequence[ResultFile], *, durable: bool) -> None:
    """Give every file its final name, or none of them.

    All are verified before any is renamed, so a task with a bad second result leaves no
    first result behind either. On any failure every temporary file is removed.
    """
    try:
        for file in files:
            file.verify()
        for file in files:
            if durable:
                await file.sync()
            else:
                file.close()
        for file in files:
            file.rename()
    except BaseException:
        for file in files:
            file.discard()
        raise


def share_file(source: Path, destination: Path, *, task_id: str) -> Path:
    """Give ``destination`` the content of the whole file ``source``: a hard link where the
    file system allows one, else a copy. Atomic like every write here: the new entry is
    made at a temporary name and takes its final name with ``os.replace``."""
    if destination == source:
        return destination
    temp = destination.with_name(f".{destination.name}.{_pid}.{next(_temp_numbers)}{PART_SUFFIX}")
    try:
        try:
            os.link(source, temp)
        except OSError:
            shutil.copyfile(source, temp)
        os.replace(temp, destination)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise output_error(exc, destination, task_id) from exc
    return destination
