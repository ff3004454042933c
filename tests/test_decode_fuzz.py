"""Fuzzing the streaming scanner with random and mutated bodies.

Whatever the bytes, the scanner either raises its own DecodeError (with an offset inside
the body) or succeeds, and then ``orjson.loads`` + ``base64.b64decode`` accept the body too
and find the same fields and audio. Never another exception, never a hang.

The normal run is short. ``AIOTTS_FUZZ=1`` enables the long run (``-m fuzz``), with
``AIOTTS_FUZZ_EXAMPLES`` examples per test (default 20,000).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiotts._decode import EnvelopeScanner
from aiotts._errors import DecodeError
from tests.test_decode import assert_matches, bodies, chunks_of, scan, splits

FUZZ = os.environ.get("AIOTTS_FUZZ") == "1"
FUZZ_EXAMPLES = int(os.environ.get("AIOTTS_FUZZ_EXAMPLES", "20000"))

_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
QUICK = settings(max_examples=100, deadline=None, suppress_health_check=_HEALTH)
LONG = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=_HEALTH)
# A generous time limit for the long run (about 20 ms an example here), still catching a hang.
LONG_TIMEOUT = 300 + FUZZ_EXAMPLES // 10

INTERESTING = [
    b'"',
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"=",
    b"==",
    b"null",
    b"true",
    b"0",
    b"-1e5",
    b"\\u00",
    b"\\u0041",
    b"\\u002B",
    b"\\u002b",
    b"\\u00e9",
    b"\\/",
    b'\\"',
    b"\\\\",
    b" ",
    b"\n",
    b"\t",
    b"\r\n",
    b"\x0b",
    b"\x00",
    b"\xff",
    b"\xc3\xa9",
    b"\xf0\x9f\x98\x80",
    b'"data":"',
    b'"data":null',
    b'"results":',
    b'"results":[{"data":"QUJD"}]',
    b"A",
    b"+",
    b"/",
    b"QUJD",
]


@st.composite
def mutated_bodies(draw: st.DrawFn) -> bytes:
    """A valid body, then a few flips, inserts, deletions, cuts and splices."""
    body = bytearray(draw(bodies()))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "copy", "splice"]))
        pos = draw(st.integers(0, len(body)))
        if kind == "flip" and pos < len(body):
            body[pos] = draw(st.integers(0, 255) | st.sampled_from(b'"\\{}[],:= \nAz+/0'))
        elif kind == "insert":
            body[pos:pos] = draw(st.sampled_from(INTERESTING) | st.binary(min_size=1, max_size=4))
        elif kind == "delete":
            del body[pos : pos + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del body[pos:]
        elif kind == "copy":
            start = draw(st.integers(0, len(body)))
            body[pos:pos] = body[start : start + draw(st.integers(1, 30))]
        elif kind == "splice":
            other = draw(bodies())
            body[pos:] = other[draw(st.integers(0, len(other))) :]
    return bytes(body)


PREFIXES = [
    b"",
    b"{",
    b'{"id":',
    b'{"error":{"messages":["',
    b'{"results":',
    b'{"results":[',
    b'{"results":[{"data":"',
    b'{"results":[{"data":"QUJD',
    b'{"results":[{"type":"WavFile","data":"QQ==',
    b'{"results":[{"data":"QUJD"}',
    b'{"results":[{"data":"QUJD"}]',
    b'{"results":[{"data":"QUJD"}]}',
]

random_bodies = st.builds(
    lambda prefix, parts: prefix + b"".join(parts),
    st.sampled_from(PREFIXES),
    st.lists(st.sampled_from(INTERESTING) | st.binary(max_size=6), max_size=12),
)


def check(body: bytes, sizes: list[int]) -> None:
    """The fuzzing property; see the module docstring."""
    failure: DecodeError | None = None
    try:
        envelope, audio = scan(body, sizes)
    except DecodeError as exc:
        failure = exc
    if failure is not None:
        assert 0 <= failure.offset <= len(body), (failure.offset, len(body))
        return
    # Accepted: the whole-body reference must accept it too, and agree.
    assert_matches(body, envelope, audio)


def check_sticky(body: bytes, sizes: list[int], more: bytes) -> None:
    """After an error, every later call raises the same error."""
    scanner = EnvelopeScanner()
    failure: DecodeError | None = None
    try:
        for chunk in chunks_of(body, sizes):
            scanner.feed(chunk)
        scanner.finish()
    except DecodeError as exc:
        failure = exc
    if failure is None:
        with pytest.raises(DecodeError):
            scanner.feed(more or b" ")
        return
    with pytest.raises(DecodeError) as again:
        scanner.feed(more)
    assert again.value is failure
    with pytest.raises(DecodeError) as at_finish:
        scanner.finish()
    assert at_finish.value is failure


# -- the normal, short run -----------------------------------------------------------------


@QUICK
@given(body=mutated_bodies(), sizes=splits)
def test_mutated_bodies(body: bytes, sizes: list[int]) -> None:
    check(body, sizes)


@QUICK
@given(body=random_bodies, sizes=splits)
def test_random_bytes(body: bytes, sizes: list[int]) -> None:
    check(body, sizes)


@QUICK
@given(body=st.binary(max_size=200), sizes=splits)
def test_noise(body: bytes, sizes: list[int]) -> None:
    check(body, sizes)


@QUICK
@given(body=mutated_bodies(), sizes=splits, more=st.binary(max_size=4))
def test_errors_stick(body: bytes, sizes: list[int], more: bytes) -> None:
    check_sticky(body, sizes, more)


# -- the long run (AIOTTS_FUZZ=1) ----------------------------------------------------------


@pytest.mark.fuzz
@pytest.mark.skipif(not FUZZ, reason="the long fuzzing run needs AIOTTS_FUZZ=1")
@pytest.mark.timeout(LONG_TIMEOUT)
@LONG
@given(body=mutated_bodies(), sizes=splits)
def test_long_mutated_bodies(body: bytes, sizes: list[int]) -> None:
    check(body, sizes)


@pytest.mark.fuzz
@pytest.mark.skipif(not FUZZ, reason="the long fuzzing run needs AIOTTS_FUZZ=1")
@pytest.mark.timeout(LONG_TIMEOUT)
@LONG
@given(body=random_bodies, sizes=splits)
def test_long_random_bytes(body: bytes, sizes: list[int]) -> None:
    check(body, sizes)


@pytest.mark.fuzz
@pytest.mark.skipif(not FUZZ, reason="the long fuzzing run needs AIOTTS_FUZZ=1")
@pytest.mark.timeout(LONG_TIMEOUT)
@LONG
@given(body=mutated_bodies(), sizes=splits, more=st.binary(max_size=4))
def test_long_errors_stick(body: bytes, sizes: list[int], more: bytes) -> None:
    check_sticky(body, sizes, more)
