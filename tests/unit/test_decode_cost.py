"""What reading a body costs the scanner: which way each part is read, and how often.

The scanner's fast paths (the usual head and tail in one step each, a plain member in
one step, a token parsed straight from its chunk, the data string decoded where it
lies) give the same answers as the general path they stand in for, so the other tests
cannot tell whether they were taken. These tests watch the work itself: every run handed
to a Base64 decoder, every text handed to ``orjson.loads``, every step taken in one go
and every run that needed the slow path. A fast path that stops applying, or a run tried
twice, shows here and nowhere else.
"""

from __future__ import annotations

import base64
import binascii
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pybase64
import pytest

from aiotts._decode import EnvelopeScanner
from aiotts._errors import DecodeError

AUDIO = bytes(range(256)) * 400  # 102,400 bytes
DATA = base64.b64encode(AUDIO)
HEAD = (
    b'{"id":"TTSa","responseStatusCode":"Ok","taskStatus":"Completed",'
    b'"results":[{"type":"WavFile","data":"'
)
TAIL = b'"}],"error":null}'
USUAL = HEAD + DATA + TAIL
# The usual body's keys and values besides the audio, quotes included: 98 bytes, of
# which "error" and null (11) are in the tail; the longest token is the key
# "responseStatusCode" (20 bytes).
USUAL_HELD = 98
USUAL_LONGEST = 20


@dataclass
class Work:
    """What the scanner did while a test fed it."""

    decoded: list[int] = field(default_factory=list)  # each run given to a decoder
    parsed: list[bytes] = field(default_factory=list)  # each text given to orjson
    taken: Counter[str] = field(default_factory=Counter)  # one-step reads that applied
    refused: Counter[str] = field(default_factory=Counter)  # ... and that did not
    slow: int = 0  # runs of the data string that took the slow path
    captured: int = 0  # tokens captured rather than parsed straight from their chunk


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> Work:
    seen = Work()

    def spy(real: Callable[..., Any], record: Callable[[Any], None]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            record(args[0])
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(
        pybase64, "b64decode", spy(pybase64.b64decode, lambda s: seen.decoded.append(len(s)))
    )
    monkeypatch.setattr(
        binascii, "a2b_base64", spy(binascii.a2b_base64, lambda s: seen.decoded.append(len(s)))
    )
    monkeypatch.setattr(orjson, "loads", spy(orjson.loads, lambda s: seen.parsed.append(s)))
    for name in ("_fast_head", "_fast_tail", "_plain_member"):
        real = getattr(EnvelopeScanner, name)

        def one_step(self: EnvelopeScanner, m: Any, real: Any = real, name: str = name) -> bool:
            took: bool = real(self, m)
            (seen.taken if took else seen.refused)[name] += 1
            return took

        monkeypatch.setattr(EnvelopeScanner, name, one_step)
    for name, count in (("_data_slow", "slow"), ("_start_capture", "captured")):
        real = getattr(EnvelopeScanner, name)

        def counted(*args: Any, real: Any = real, count: str = count) -> Any:
            setattr(seen, count, getattr(seen, count) + 1)
            return real(*args)

        monkeypatch.setattr(EnvelopeScanner, name, counted)
    return seen


def feed(body: bytes, *chunks_at: int, **caps: int) -> tuple[object, bytes]:
    """Scan ``body`` cut at the offsets ``chunks_at``: the envelope (or the error) and audio."""
    scanner = EnvelopeScanner(**caps)
    audio = bytearray()
    cuts = [0, *chunks_at, len(body)]
    try:
        for start, end in itertools.pairwise(cuts):
            for piece in scanner.feed(body[start:end]):
                audio += piece.data
        return scanner.finish(), bytes(audio)
    except DecodeError as exc:
        return str(exc), bytes(audio)


def test_the_usual_answer_fed_whole_is_one_decode_and_no_parse(work: Work) -> None:
    _, audio = feed(USUAL)
    assert audio == AUDIO
    assert work.taken == {"_fast_head": 1, "_fast_tail": 1}
    assert work.refused == {}
    assert work.decoded == [len(DATA)]
    assert work.parsed == []
    assert (work.slow, work.captured) == (0, 0)


def test_the_usual_head_after_whitespace_is_still_one_step(work: Work) -> None:
    _, audio = feed(b" \r\n\t" + USUAL)
    assert audio == AUDIO
    assert work.taken == {"_fast_head": 1, "_fast_tail": 1}


def test_the_usual_answer_in_chunks_decodes_each_character_once(work: Work) -> None:
    cuts = list(range(65_536, len(USUAL), 65_536))  # the head and tail whole in a chunk
    assert cuts[0] > len(HEAD) and cuts[-1] < len(USUAL) - len(TAIL)
    _, audio = feed(USUAL, *cuts)
    assert audio == AUDIO
    assert work.taken == {"_fast_head": 1, "_fast_tail": 1}
    # One decode per chunk (and one 4-character quad completed across each cut),
    # nothing refused and tried again.
    assert sum(work.decoded) == len(DATA)
    assert len(work.decoded) == 2 * len(cuts) + 1
    assert work.parsed == []
    assert work.slow == 0


def test_a_chunk_that_opens_with_the_closing_quote_decodes_nothing(work: Work) -> None:
    body = b'{"results":[{"data":"QUJDQQ' + b'"}]}'
    _, audio = feed(body, len(body) - 6, len(body) - 4)  # ... "QQ" | '"}]}'
    assert audio == b"ABC"
    # "QUJD" whole, then the carry "QQ" is checked; the last chunk hands nothing over.
    assert work.decoded == [4]


def test_an_error_in_the_carry_at_the_closing_quote_decodes_nothing(work: Work) -> None:
    body = b'{"results":[{"data":"QUJDQQ"}]}'
    error, _ = feed(body, len(body) - 4)
    assert error == ("results[0].data: Base64 length is not a multiple of 4 (at byte 27)")
    assert work.decoded == [4]


def test_a_data_string_that_ends_before_the_chunks_last_bytes(work: Work) -> None:
    """When the first quote in the chunk's last bytes is not the data string's end, the
    optimistic decode is refused once; the run up to the real end is still decoded where
    it lies, never unescaped."""
    first, second = DATA[:400], base64.b64encode(b"second result" * 30)
    body = b'{"results":[{"data":"' + first + b'"},{"data":"' + second + b'"}]}'
    assert len(second) > 256
    _, audio = feed(body)
    assert audio == AUDIO[:300] + b"second result" * 30
    assert work.slow == 0
    assert work.decoded[1:] == [len(first), len(second)]
    assert len(work.decoded) == 3  # one refused try, over both strings and what lies between
    assert work.parsed == [b'"data"']  # the second result's key: the general path


def test_a_run_with_an_escape_is_tried_once_then_unescaped(work: Work) -> None:
    body = b'{"results":[{"data":"QUJD\\/UJD"}]}'
    _, audio = feed(body)
    assert audio == b"ABC\xfdBC"  # "QUJD/UJD"
    assert work.slow == 1
    # The fast try of the run as it lies (refused at the backslash), then the decode of
    # its unescaped text: the same run is not tried fast a second time.
    assert work.decoded == [8, 8]
    assert work.parsed == [b'"QUJD\\/UJD"']


def test_plain_members_off_the_usual_head_are_read_without_parsing(work: Work) -> None:
    body = b'{"n":1,"a":"x","b":null,"results":null,"c":"y"}'
    envelope, _ = feed(body)
    assert envelope.fields == {"n": 1, "a": "x", "b": None, "c": "y"}  # type: ignore[attr-defined]
    assert work.taken == {"_plain_member": 3}
    assert work.parsed == [b'"n"', b"1", b'"results"', b"null"]


def test_a_token_that_ends_in_its_chunk_is_parsed_from_it(work: Work) -> None:
    body = '{"n":12,"é":"é","t":true,"s":"a\\/"}'.encode()
    envelope, _ = feed(body)
    assert envelope.fields == {"n": 12, "é": "é", "t": True, "s": "a/"}  # type: ignore[attr-defined]
    assert work.captured == 1  # only the string with an escape
    e_acute = '"é"'.encode()
    assert work.parsed == [b'"n"', b"12", e_acute, e_acute, b'"t"', b"true", b'"s"', b'"a\\/"']


@pytest.mark.parametrize(
    "caps",
    [
        {"max_field_bytes": USUAL_HELD},
        {"max_value_bytes": USUAL_LONGEST},
        {"max_results": 1},
    ],
    ids=["field bytes", "value bytes", "results"],
)
def test_the_usual_answer_at_each_cap_exactly_is_still_read_in_two_steps(
    work: Work, caps: dict[str, int]
) -> None:
    _, audio = feed(USUAL, **caps)
    assert audio == AUDIO
    assert work.taken == {"_fast_head": 1, "_fast_tail": 1}
    assert work.parsed == []


def test_a_head_at_the_field_cap_exactly_is_read_in_one_step(work: Work) -> None:
    # "id" 4 + "a" 3 + "results" 9 + "type" 6 + "b" 3 + "data" 6 = 31 bytes.
    body = b'{"id":"a","results":[{"type":"b","data":"QUJD"}]}'
    _, audio = feed(body, max_field_bytes=31)
    assert audio == b"ABC"
    assert work.taken == {"_fast_head": 1, "_fast_tail": 1}
    error, _ = feed(body, max_field_bytes=30)
    assert "more than 30 bytes of JSON" in str(error)


LONG = b'"0123456789abcdefghij"'  # 22 bytes, longer than any other token below


@pytest.mark.parametrize(
    "body",
    [
        b'{"id":' + LONG + b',"results":[{"data":"QUJD"}],"error":null}',  # a top value
        b"{" + LONG + b':"x","results":[{"data":"QUJD"}],"error":null}',  # a top key
        b'{"results":[{"type":' + LONG + b',"data":"QUJD"}],"error":null}',  # a result's
        b'{"results":[{"data":"QUJD"}],"error":' + LONG + b"}",  # in the tail
        b'{"results":[{"data":"QUJD"}],' + LONG + b":null}",
    ],
)
def test_a_member_of_the_value_cap_exactly_is_read_in_one_step(work: Work, body: bytes) -> None:
    _, audio = feed(body, max_value_bytes=len(LONG))
    assert audio == b"ABC"
    assert work.taken == {"_fast_head": 1, "_fast_tail": 1}
    assert work.parsed == []
    error, _ = feed(body, max_value_bytes=len(LONG) - 1)
    assert f"is longer than {len(LONG) - 1} bytes (at byte {body.index(LONG)})" in str(error)


def test_the_key_results_meets_the_value_cap_as_any_key() -> None:
    body = b'{"results":[{"data":"QUJD"}]}'
    for size in (1, len(body)):
        error, _ = feed(body, *range(size, len(body), size), max_value_bytes=8)
        assert error == "a key is longer than 8 bytes (at byte 1)"


def test_a_bare_head_at_the_value_cap_of_its_key_results_is_read_in_one_step(
    work: Work,
) -> None:
    _, audio = feed(b'{"results":[{"data":"QUJD"}]}', max_value_bytes=9)
    assert audio == b"ABC"
    assert work.taken == {"_fast_head": 1, "_fast_tail": 1}


def test_plain_members_at_each_cap_exactly_are_read_in_one_step(work: Work) -> None:
    # "n" 3 + 1 1 + "ab" 4 + "cdefg" 7 + "e" 3 + null 4 = 22 bytes; the longest is 7.
    body = b'{"n":1,"ab":"cdefg","e":null}'
    for caps in ({"max_field_bytes": 22}, {"max_value_bytes": 7}):
        envelope, _ = feed(body, **caps)
        assert envelope.fields == {"n": 1, "ab": "cdefg", "e": None}  # type: ignore[attr-defined]
    assert work.taken == {"_plain_member": 4}
    assert work.refused == {}
