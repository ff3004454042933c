"""Texts and their keys: the file a key names, the digest a ledger keeps of a text, and
the readers of the command line's input files (one text a line, JSON lines, CSV).

Pure and synchronous; the readers stream their file, so memory does not grow with it.

Invariants of ``file_stem`` (what ``synthesize`` names each text's file after):

* Injective: two different keys never share a stem, not even on a file system that
  ignores case. A key that is already a safe name (lower-case letters, digits, ``-`` and
  ``_``, starting with a letter or digit, at most 64 characters, not a name Windows
  reserves) is its own stem; any other key becomes a readable slug of it, ``+``, and 26
  characters (130 bits) of its SHA-256 in lower-case base 32. A plain stem never holds
  ``+``, so the two forms never meet, and two hashed stems differ in their hash.
* Safe: no separator, no ``..``, no control character, no ``.`` at all (the ``.N`` that
  numbers a task's further results cannot be mistaken for part of a stem), at most 100
  characters, never a reserved device name.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson

from aiotts._errors import UsageError

__all__ = [
    "INPUT_FORMATS",
    "MAX_KEY_LENGTH",
    "TextLine",
    "file_stem",
    "input_format",
    "read_texts",
    "shown_key",
    "text_digest",
]

MAX_KEY_LENGTH = 1000
"""Longer keys are refused: a key names a text, it is not one."""

_PLAIN_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_SLUG_UNSAFE = re.compile(r"[^a-z0-9]+")
_MAX_SLUG = 40
_RESERVED = frozenset(
    {"con", "prn", "aux", "nul"} | {f"com{n}" for n in range(10)} | {f"lpt{n}" for n in range(10)}
)
"""Device names Windows reserves whatever the extension (``con.wav`` included)."""


def file_stem(key: str) -> str:
    """The file name stem of the text known by ``key`` (see the module's invariants)."""
    if _PLAIN_KEY.fullmatch(key) and key not in _RESERVED:
        return key
    raw = key.encode("utf-8", "surrogatepass")
    digest = base64.b32encode(hashlib.sha256(raw).digest()).decode("ascii")[:26].lower()
    folded = unicodedata.normalize("NFKD", key).encode("ascii", "ignore").decode("ascii")
    slug = _SLUG_UNSAFE.sub("-", folded.lower()).strip("-")[:_MAX_SLUG].rstrip("-")
    return f"{slug}+{digest}"


def text_digest(text: str) -> bytes:
    """What the ledger keeps of a text: 16 bytes of BLAKE2b, enough to tell a changed text."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def shown_key(key: str) -> str:
    """A key as an error message shows it: quoted, escaped, cut to a sane length."""
    return repr(key) if len(key) <= 80 else repr(key[:77]) + "..."


# -- input files -------------------------------------------------------------------------------

INPUT_FORMATS = ("txt", "jsonl", "csv")


@dataclass(frozen=True, slots=True)
class TextLine:
    """One text of an input file, with the line it starts on (for error messages)."""

    key: str
    text: str
    line: int


def input_format(name: str, given: str | None) -> str:
    """The format of the input ``name``: ``given``, else by suffix (``.jsonl``/``.ndjson``,
    ``.csv``; anything else is one text a line)."""
    if given is not None:
        if given not in INPUT_FORMATS:
            raise UsageError(
                f"unknown input format {given!r}: use one of {', '.join(INPUT_FORMATS)}"
            )
        return given
    suffix = Path(name).suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    return "txt"


def _bad(name: str, line: int, problem: str) -> UsageError:
    return UsageError(f"{name}, line {line}: {problem}")


def _decoded(name: str, number: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad(name, number, "not valid UTF-8; save the file as UTF-8") from None


def _txt(file: IO[bytes], name: str) -> Generator[TextLine, None, None]:
    """One text a line; its key is its line number. Blank lines are skipped (their numbers
    are not reused, so keys stay the line numbers of the file)."""
    for number, raw in enumerate(file, start=1):
        text = _decoded(name, number, raw).rstrip("\r\n")
        if number == 1:
            text = text.removeprefix("\ufeff")
        if text.strip():
            yield TextLine(str(number), text, number)


def _jsonl(file: IO[bytes], name: str) -> Generator[TextLine, None, None]:
    """``{"key": ..., "text": ...}`` a line; a key may be a string or a whole number."""
    for number, raw in enumerate(file, start=1):
        if not raw.strip():
            continue
        try:
            item = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _bad(name, number, f"not a JSON object ({exc})") from None
        if not isinstance(item, dict):
            raise _bad(name, number, 'each line must be an object {"key": ..., "text": ...}')
        key, text = item.get("key"), item.get("text")
        if isinstance(key, int) and not isinstance(key, bool):
            key = str(key)
        if not isinstance(key, str):
            raise _bad(name, number, 'no "key" (a string or a whole number)')
        if not isinstance(text, str):
            raise _bad(name, number, 'no "text" string')
        yield TextLine(key, text, number)


def _csv(
    file: IO[bytes], name: str, key_column: str, text_column: str
) -> Generator[TextLine, None, None]:
    """A header row naming the columns, then a text a row (quoted texts may span lines;
    the line named is where the row starts)."""
    stream = io.TextIOWrapper(file, encoding="utf-8-sig", newline="")
    reader = csv.reader(stream)
    try:
        header = next(reader, None)
        if header is None:
            return
        for column in (key_column, text_column):
            if column not in header:
                raise _bad(
                    name,
                    1,
                    f"the header row has no column {column!r} (it has "
                    f"{', '.join(map(repr, header))}); name the columns with --key-column "
                    "and --text-column",
                )
        key_at, text_at = header.index(key_column), header.index(text_column)
        start = reader.line_num + 1
        for row in reader:
            if not row or not any(cell.strip() for cell in row):
                start = reader.line_num + 1
                continue
            if len(row) != len(header):
                raise _bad(name, start, f"{len(row)} columns where the header has {len(header)}")
            yield TextLine(row[key_at], row[text_at], start)
            start = reader.line_num + 1
    except UnicodeDecodeError:
        raise _bad(name, reader.line_num + 1, "not valid UTF-8; save the file as UTF-8") from None
    except csv.Error as exc:
        raise _bad(name, reader.line_num, f"not valid CSV ({exc})") from None
    finally:
        with contextlib.suppress(ValueError):  # the file was closed first: nothing to undo
            stream.detach()


def read_texts(
    file: IO[bytes],
    name: str,
    form: str,
    *,
    key_column: str = "key",
    text_column: str = "text",
) -> Iterator[TextLine]:
    """The texts of an open binary file, checked line by line: a malformed line, an empty
    text or a key that cannot be one raises a ``UsageError`` naming the line. (Duplicate
    keys are found by the caller, which keeps the keys it saw on disk.)"""
    if form == "jsonl":
        lines = _jsonl(file, name)
    elif form == "csv":
        lines = _csv(file, name, key_column, text_column)
    else:
        lines = _txt(file, name)
    with contextlib.closing(lines):  # a bad line ends the reading at once, not at collection
        for item in lines:
            if not item.key.strip():
                raise _bad(name, item.line, "the key is empty")
            if len(item.key) > MAX_KEY_LENGTH:
                raise _bad(name, item.line, f"the key is {len(item.key)} characters long")
            if not item.text.strip():
                raise _bad(name, item.line, f"the text of key {shown_key(item.key)} is empty")
            yield item
