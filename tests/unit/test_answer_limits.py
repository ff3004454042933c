"""The scanner's caps on what it keeps besides the audio, and the WAV check's chunk walk."""

from __future__ import annotations

import struct

import pytest

from aiotts._decode import EnvelopeScanner
from aiotts._errors import DecodeError
from aiotts._files import check_wav
from aiotts.emulator._audio import wav_header


def scan(body: bytes, chunk: int, **caps: int) -> None:
    scanner = EnvelopeScanner(**caps)
    for start in range(0, len(body), chunk):
        scanner.feed(body[start : start + chunk])
    scanner.finish()


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_non_audio_json_is_capped_in_total_not_only_per_value(chunk: int) -> None:
    fields = b",".join(b'"k%d":"%s"' % (n, b"x" * 90) for n in range(20))  # ~2 KB in all
    scan(b"{" + fields + b"}", chunk, max_field_bytes=4096)
    with pytest.raises(DecodeError, match=r"more than 1024 bytes of JSON .*MAX_FIELD_BYTES"):
        scan(b"{" + fields + b"}", chunk, max_field_bytes=1024)


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_the_number_of_results_is_capped(chunk: int) -> None:
    body = b'{"results":[' + b",".join([b"{}"] * 5) + b"]}"
    scan(body, chunk, max_results=5)
    with pytest.raises(DecodeError, match=r"more than 4 elements \(MAX_RESULTS\)"):
        scan(body, chunk, max_results=4)


def riff(chunks: bytes) -> bytes:
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def chunk(name: bytes, data: bytes) -> bytes:
    return name + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


FMT = wav_header(0)[12:36]


def test_check_wav_walks_to_the_data_chunk_past_other_chunks() -> None:
    whole = riff(FMT + chunk(b"LIST", b"INFOabc") + chunk(b"data", b"\1" * 30))
    check_wav(whole, len(whole))
    odd = riff(FMT + chunk(b"data", b"\1" * 31))  # RIFF pads a chunk of odd size
    check_wav(odd, len(odd))


def test_check_wav_refuses_bytes_beyond_the_data_chunk() -> None:
    # The RIFF size counts them, so only the data chunk's own size tells.
    trailing = riff(FMT + chunk(b"LIST", b"INFOabc") + chunk(b"data", b"\1" * 30) + b"junk")
    with pytest.raises(DecodeError, match="data chunk declares 30 bytes but 34 follow"):
        check_wav(trailing, len(trailing))


def test_check_wav_refuses_a_file_without_a_data_chunk() -> None:
    nothing = riff(FMT + chunk(b"LIST", b"INFOabc"))
    with pytest.raises(DecodeError, match="no data chunk"):
        check_wav(nothing, len(nothing))
