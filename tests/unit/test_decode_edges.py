"""The scanner at the seams between its ways of reading: bytes that look like the usual
tail where none may be, escapes cut next to other escapes, runs longer than the slow
path's window, a token that passes a cap mid-chunk, and the chunk itself, decoded where
it lies."""

from __future__ import annotations

import base64
import random
import tracemalloc

import pytest

from aiotts._decode import EnvelopeScanner
from aiotts._errors import DecodeError

SIZES = (1, 2, 3, 4, 5, 6, 7, 1 << 20)


def outcome(body: bytes, size: int, **caps: int) -> tuple[object, bytes]:
    """The envelope (or the error and its offset) and the audio, ``body`` fed in chunks."""
    scanner = EnvelopeScanner(**caps)
    audio = bytearray()
    try:
        for start in range(0, len(body), size):
            for piece in scanner.feed(body[start : start + size]):
                audio += piece.data
        return scanner.finish(), bytes(audio)
    except DecodeError as exc:
        return (exc.message, exc.offset), bytes(audio)


@pytest.mark.parametrize(
    "body",
    [
        b'{"id":"x"}]}',
        b'{"results":[],"id":"x"}]}',
        b'{"results":[{"data":"QUJD"}],"x":1}]}',
    ],
)
def test_what_looks_like_a_results_tail_after_the_end_is_refused(body: bytes) -> None:
    at = body.index(b"]", body.index(b"}", len(body) - 4) - 1)
    for size in SIZES:
        got, _ = outcome(body, size)
        assert got == (
            f"unexpected ']' after the end of the JSON document (at byte {at})",
            at,
        ), size


def test_junk_right_after_the_usual_tail_in_the_same_chunk() -> None:
    body = b'{"results":[{"data":"QUJD"}],"error":null} x'
    at = body.index(b"x")
    for size in SIZES:
        got, _ = outcome(body, size)
        assert got == (f"unexpected 'x' after the end of the JSON document (at byte {at})", at)


@pytest.mark.parametrize(
    ("spelled", "text"),
    [
        ("\\/\\u0041AB", "/AAB"),
        ("\\u0041\\/AB", "A/AB"),
        ("\\/\\/\\u0041\\u0042", "//AB"),
        ("A\\/\\u0030\\/", "A/0/"),
        ("\\u002b\\/AB", "+/AB"),
        ("AB\\/\\u002B", "AB/+"),
    ],
)
def test_escapes_next_to_each_other_cut_at_every_byte(spelled: str, text: str) -> None:
    """Every split of a run where a ``\\u`` escape follows another escape (so that two
    backslashes lie among a run's last bytes) reads the same audio."""
    data = (spelled * 3).encode()
    body = b'{"results":[{"data":"' + data + b'"}]}'
    expect = base64.b64decode(text * 3)
    start = body.index(data)
    for a in range(start, start + len(data)):
        for b in range(a + 1, start + len(data) + 1):
            scanner = EnvelopeScanner()
            chunks = (body[:a], body[a:b], body[b:])
            audio = b"".join(piece.data for chunk in chunks for piece in scanner.feed(chunk))
            scanner.finish()
            assert audio == expect, (a, b)


@pytest.mark.parametrize(
    ("first", "second", "text"),
    [
        ("QUJD\\/\\", "/AB", "QUJD//AB"),
        ("QUJD\\/\\u0", "041AB", "QUJD/AAB"),
        ("QUJD\\u0041\\u00", "41AB", "QUJDAAAB"),
    ],
)
def test_a_chunk_ending_in_a_cut_escape_after_another_escape(
    first: str, second: str, text: str
) -> None:
    scanner = EnvelopeScanner()
    audio = scanner.feed(b'{"results":[{"data":"' + first.encode())
    audio += scanner.feed(second.encode() + b'"}]}')
    scanner.finish()
    assert b"".join(p.data for p in audio) == base64.b64decode(text)


def test_a_long_escaped_run_in_one_chunk_leaves_as_one_piece() -> None:
    raw = random.Random(5).randbytes(60_000)
    data = base64.b64encode(raw).replace(b"/", b"\\/").replace(b"A", b"\\u0041")
    assert len(data) > 3 * 16 * 1024  # several windows of the slow path
    scanner = EnvelopeScanner()
    scanner.feed(b'{"results":[{"data":"')
    pieces = scanner.feed(data + b'"}]}')
    scanner.finish()
    assert [p.data for p in pieces] == [raw]


@pytest.mark.parametrize("inside", range(1, 6))
def test_a_u_escape_cut_by_a_window_boundary_of_the_slow_path(inside: int) -> None:
    """The slow path unescapes 16 KiB windows of a run: an escape that a window's end
    cuts waits for the next window."""
    lead = 16 * 1024 - inside  # the escape starts this far into the run
    fill = -(lead + 1) % 4
    text = "Q" * lead + "A" + "Q" * fill + "QUJD" * 8
    data = ("Q" * lead + "\\u0041" + "Q" * fill + "QUJD" * 8).encode()
    for head in (b'{"results":[{"data":"', b'{"results":[{"data":"QUJD\\/'):
        prefix = "QUJD/" if head.endswith(b"/") else ""
        if prefix:  # shift the run by the 5 characters before: keep the quads whole
            data2, text2 = data[5:], text[5:]
        else:
            data2, text2 = data, text
        body = head + data2 + b'"}]}'
        got, audio = outcome(body, 1 << 20)
        assert not isinstance(got, tuple), got
        assert audio == base64.b64decode(prefix + text2)


@pytest.mark.parametrize("opening", [b'"', b"[", b"1"])
def test_a_token_is_refused_in_the_chunk_that_passes_the_value_cap(opening: bytes) -> None:
    scanner = EnvelopeScanner(max_value_bytes=10)
    scanner.feed(b'{"id":' + opening)
    scanner.feed(b"1" * (10 - len(opening)))  # the token holds 10 bytes, and goes on
    with pytest.raises(DecodeError) as caught:
        scanner.feed(b"1")
    assert caught.value.message == "'id' is longer than 10 bytes (at byte 6)"


def test_a_token_is_refused_in_the_chunk_that_passes_the_field_cap() -> None:
    scanner = EnvelopeScanner(max_field_bytes=14)
    scanner.feed(b'{"id":"')  # "id" holds 4 bytes
    scanner.feed(b"x" * 9)  # and the value 10, so far
    with pytest.raises(DecodeError) as caught:
        scanner.feed(b"x")
    assert caught.value.message.startswith("the answer holds more than 14 bytes of JSON")


def test_a_bytes_chunk_is_decoded_where_it_lies() -> None:
    """The scanner copies no ``bytes`` chunk: feeding one holds little more than its
    audio."""
    raw = bytes(range(256)) * 8192  # 2 MiB of audio
    body = b'{"results":[{"data":"' + base64.b64encode(raw) + b'"}]}'
    scanner = EnvelopeScanner()
    tracemalloc.start()
    try:
        pieces = scanner.feed(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert b"".join(p.data for p in pieces) == raw
    assert peak < len(raw) + len(body) // 4  # a copy of the body would add all of it
