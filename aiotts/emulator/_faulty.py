"""Deliberately bad answers (pure): what a client must detect and never save as audio."""

from __future__ import annotations

import struct

import pybase64

from aiotts.emulator._audio import HEADER_BYTES, Runs

__all__ = [
    "HTML_PAGE",
    "NON_JSON_BODY",
    "UNKNOWN_STATUS",
    "corrupt_base64",
    "corrupt_runs",
    "misstate_runs",
    "misstate_wav_sizes",
]

NON_JSON_BODY = b"upstream connect error or disconnect/reset before headers. reset reason: overflow"
"""A 200 body that is not JSON at all (what a misbehaving proxy sends)."""

HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><h1>502 Bad Gateway</h1><p>The server returned an invalid response.</p>"
    b"</body></html>\n"
)
"""An error page sent with status 200 and ``text/html``."""

UNKNOWN_STATUS = "Queued"
"""A ``taskStatus`` outside the documented set."""

_BAD = b"!*!*"


def corrupt_base64(data: bytes) -> bytes:
    """``data`` with one 4-character group, near the middle, replaced by non-Base64 bytes."""
    if len(data) < 8:
        return _BAD + data[4:]
    pos = len(data) // 2 // 4 * 4
    return data[:pos] + _BAD + data[pos + 4 :]


def misstate_wav_sizes(data: bytes) -> bytes:
    """Base64 of the same WAV whose RIFF and data sizes claim 1,000 samples more than it has.

    Only the first 60 characters change: they encode exactly the 44-byte header plus one
    data byte (45 bytes = 15 groups), so the rest of the cached Base64 is reused as is.
    """
    head = bytearray(pybase64.b64decode(data[:60]))
    (riff,) = struct.unpack_from("<I", head, 4)
    (size,) = struct.unpack_from("<I", head, HEADER_BYTES - 4)
    struct.pack_into("<I", head, 4, riff + 3000)
    struct.pack_into("<I", head, HEADER_BYTES - 4, size + 3000)
    return pybase64.b64encode(bytes(head)) + data[60:]


def corrupt_runs(runs: Runs) -> Runs:
    """:func:`corrupt_base64` of the whole string ``runs`` stands for (materialised: a fault
    path, so its cost does not matter)."""
    return ((corrupt_base64(b"".join(piece * times for piece, times in runs)), 1),)


def misstate_runs(runs: Runs) -> Runs:
    """:func:`misstate_wav_sizes` on runs: the header is always inside the first piece,
    which is written once and is at least 60 characters long."""
    (first, times), *rest = runs
    assert times == 1
    assert len(first) >= 60
    return ((misstate_wav_sizes(first), 1), *rest)
