"""Deterministic, audible WAV synthesis: speech when it can, one short tone per character else.

The format is the service's: canonical 44-byte header, PCM, mono, 22,050 Hz, 24-bit.

A result of natural length speaks its text with eSpeak NG when the ``speech`` extra is
installed (:mod:`aiotts.emulator._speech`; cached per text). A sized result (the size knob,
``audio_bytes``), or any result without the extra, is made of tones: each
character of the spoken text becomes a 1/15-second segment (so one second per 15
characters): a tone whose pitch and timbre come from the character's code point, with a few
harmonics and a raised-cosine envelope so segments join without clicks. Whitespace is a
quiet hum rather than silence, so no text renders as silence.

Speed is the point of the tones: a segment is computed once per distinct character
(cached), a text is a ``bytes.join`` of segments, and a size target is met by repeating or
cutting the joined audio. 30 MB takes a few milliseconds, not seconds.
"""

from __future__ import annotations

import functools
import math
import struct
from typing import TypeAlias

import pybase64

from aiotts.emulator import _speech

__all__ = [
    "BYTES_PER_SECOND",
    "CHARS_PER_SECOND",
    "HEADER_BYTES",
    "SAMPLE_RATE",
    "SAMPLE_WIDTH",
    "WATERMARK",
    "Runs",
    "base64_runs",
    "runs_length",
    "spoken_text",
    "synthesize",
    "tones",
    "wav_header",
    "wav_length",
]

SAMPLE_RATE = 22_050
SAMPLE_WIDTH = 3  # bytes: 24-bit
CHANNELS = 1
HEADER_BYTES = 44
BYTES_PER_SECOND = SAMPLE_RATE * SAMPLE_WIDTH * CHANNELS  # 66,150
CHARS_PER_SECOND = 15
SAMPLES_PER_CHAR = SAMPLE_RATE // CHARS_PER_SECOND  # 1,470: exact, 22,050 = 15 x 1,470
SEGMENT_BYTES = SAMPLES_PER_CHAR * SAMPLE_WIDTH

WATERMARK = "Please authenticate to the API to remove this message"
"""The phrase the trial endpoint speaks at the start of every result."""

_FULL_SCALE = 2**23 - 1
_FADE = 220  # samples (10 ms) of fade in and out per segment


def wav_header(data_bytes: int, *, riff_bytes: int | None = None) -> bytes:
    """The canonical 44-byte header for ``data_bytes`` of PCM data.

    ``riff_bytes`` overrides the RIFF chunk size (only to build a deliberately bad header).
    """
    riff = 36 + data_bytes if riff_bytes is None else riff_bytes
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        riff,
        b"WAVE",
        b"fmt ",
        16,  # fmt chunk size for PCM
        1,  # PCM
        CHANNELS,
        SAMPLE_RATE,
        BYTES_PER_SECOND,
        SAMPLE_WIDTH * CHANNELS,  # block align
        SAMPLE_WIDTH * 8,
        b"data",
        data_bytes,
    )


def spoken_text(text: str, *, watermark: bool = False) -> str:
    """What the audio of ``text`` says: the text, after the watermark phrase if asked."""
    return f"{WATERMARK}. {text}" if watermark else text


@functools.lru_cache(maxsize=4096)
def _segment(char: str) -> bytes:
    """The 1/15 s of 24-bit PCM for one character (pure; cached per character)."""
    code = ord(char)
    if char.isspace():
        base, amplitude = 110.0, 0.04
    else:
        # Two octaves of pitch from the low bits and a timbre from the next ones, so that
        # neighbouring letters differ in both.
        base, amplitude = 180.0 * 2.0 ** ((code % 25) / 12.0), 0.35
    timbre = (code // 25) % 4
    weights = (1.0, 0.5 / (1 + timbre), 0.25 * (timbre % 2), 0.12 * (timbre // 2))
    step = 2.0 * math.pi * base / SAMPLE_RATE
    norm = amplitude * _FULL_SCALE / sum(weights)
    out = bytearray()
    for n in range(SAMPLES_PER_CHAR):
        edge = min(n, SAMPLES_PER_CHAR - 1 - n)
        envelope = 0.5 - 0.5 * math.cos(math.pi * edge / _FADE) if edge < _FADE else 1.0
        phase = step * n
        value = sum(w * math.sin((k + 1) * phase) for k, w in enumerate(weights) if w)
        out += int(norm * envelope * value).to_bytes(3, "little", signed=True)
    return bytes(out)


def _data_bytes(size: int) -> int:
    if size < HEADER_BYTES + SAMPLE_WIDTH:
        raise ValueError(f"size must be at least {HEADER_BYTES + SAMPLE_WIDTH} bytes, got {size}")
    return (size - HEADER_BYTES) // SAMPLE_WIDTH * SAMPLE_WIDTH


def tones(text: str) -> bytes:
    """``text`` as 24-bit PCM tones (no header): 1/15 s per character, never silent."""
    return b"".join([_segment(c) for c in text])


def _natural(spoken: str, speech: bool) -> bytes:
    """The PCM of ``spoken`` at its natural length: speech if asked and possible, else tones."""
    if speech:
        pcm = _speech.speak(spoken)
        if pcm is not None:
            return pcm
    return tones(spoken)


def wav_length(
    text: str, *, size: int | None = None, watermark: bool = False, speech: bool = True
) -> int:
    """The length of ``synthesize(text, ...)`` with the same arguments.

    Cheap for a sized result or tones; speech is synthesised (once: it is cached per text).
    """
    if size is not None:
        return HEADER_BYTES + _data_bytes(size)
    if speech:
        return HEADER_BYTES + len(_natural(spoken_text(text, watermark=watermark), speech))
    return HEADER_BYTES + len(spoken_text(text, watermark=watermark)) * SEGMENT_BYTES


def synthesize(
    text: str, *, size: int | None = None, watermark: bool = False, speech: bool = True
) -> bytes:
    """A complete WAV file speaking ``text``; the same arguments always give the same bytes.

    Without ``size`` the file speaks the text (after the watermark phrase when
    ``watermark``) with eSpeak NG if the ``speech`` extra is installed and ``speech`` is
    true, or else renders it as tones lasting ``len(text) / 15`` seconds. With ``size`` it
    is tones, exactly ``size`` bytes rounded down to whole samples: the audio is repeated,
    or cut, to fit. Raises ``ValueError`` if ``size`` cannot hold the header and one sample.
    """
    spoken = spoken_text(text, watermark=watermark)
    if size is None:
        data = _natural(spoken, speech)
        return wav_header(len(data)) + data
    want = _data_bytes(size)
    data = tones(spoken) or bytes(SAMPLE_WIDTH)
    whole, rest = divmod(want, len(data))
    # One join of whole repeats and a partial tail: two passes over the bytes, not four.
    return b"".join([wav_header(want), data * whole, data[:rest]])


Runs: TypeAlias = tuple[tuple[bytes, int], ...]
"""A byte string written as ``(piece, times)`` pairs: each piece repeated ``times`` times."""


def runs_length(runs: Runs) -> int:
    """Length of the byte string ``runs`` stands for."""
    return sum(len(piece) * times for piece, times in runs)


def base64_runs(
    text: str, *, size: int | None = None, watermark: bool = False, speech: bool = True
) -> Runs:
    """Standard Base64 of ``synthesize(text, ...)`` with the same arguments, as runs.

    Without ``size`` that is one piece. With ``size`` the audio is periodic, and so is its
    Base64: a 30 MB file is three pieces, the middle one (one period, a few hundred KB of
    Base64) repeated, so neither making nor holding it costs 40 MB.

    Why it is exact: Base64 encodes 3-byte groups counted from the file's first byte. The
    header is 44 bytes, so the first group boundary inside the data is at byte 45 (data
    byte 1). From there the data repeats with period ``P`` = its natural length, a multiple
    of 3 (whole 3-byte samples), so every period starts on a group boundary and encodes to
    the same text. The remainder, the last piece, carries the ``=`` padding if any.
    """
    if size is None:
        return ((pybase64.b64encode(synthesize(text, watermark=watermark, speech=speech)), 1),)
    want = _data_bytes(size)
    data = tones(spoken_text(text, watermark=watermark)) or bytes(SAMPLE_WIDTH)
    unit = data[1:] + data[:1]  # the period as seen from data byte 1
    whole, rest = divmod(want - 1, len(unit))
    runs = [(pybase64.b64encode(wav_header(want) + data[:1]), 1)]
    if whole:
        runs.append((pybase64.b64encode(unit), whole))
    if rest:
        runs.append((pybase64.b64encode(unit[:rest]), 1))
    return tuple(runs)
