"""The streaming scanner: unit tests for each rule, and property tests against orjson.

The property tests build random envelopes, encode them as JSON in random ways (key order,
whitespace, escapes, duplicate keys), split the bytes at random, and check that the
scanner finds what ``orjson.loads`` plus ``base64.b64decode`` find in the whole body.
"""

from __future__ import annotations

import base64
import os
import random
import tracemalloc
from collections.abc import Iterator, Sequence
from itertools import cycle
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiotts._decode import (
    AudioPiece,
    EnvelopeScanner,
    ScannedEnvelope,
    ScannedResult,
    scan_body,
)
from aiotts._errors import DecodeError, ResponseError

B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="

# -- helpers shared with test_decode_fuzz.py ---------------------------------------------


def chunks_of(body: bytes, sizes: Sequence[int]) -> Iterator[bytes]:
    """``body`` cut into pieces whose lengths cycle through ``sizes``."""
    i = 0
    for size in cycle(sizes):
        if i >= len(body):
            return
        yield body[i : i + size]
        i += size


def scan(
    body: bytes, sizes: Sequence[int] = (1 << 30,), **kwargs: Any
) -> tuple[ScannedEnvelope, list[bytes]]:
    """Feed ``body`` in pieces; check the pieces' order; return envelope and audio."""
    scanner = EnvelopeScanner(**kwargs)
    pieces: list[AudioPiece] = []
    for chunk in chunks_of(body, sizes):
        pieces.extend(scanner.feed(chunk))
    envelope = scanner.finish()
    assert scanner.bytes_seen == len(body)
    count = 0 if envelope.results is None else len(envelope.results)
    audio: list[bytearray] = [bytearray() for _ in range(count)]
    done: set[int] = set()
    last = -1
    for piece in pieces:
        assert piece.data, "no empty pieces"
        if piece.index != last:
            # All pieces of one index are contiguous, in increasing index order.
            assert piece.index not in done
            assert piece.index > last
            done.add(last)
            last = piece.index
        audio[piece.index] += piece.data
    return envelope, [bytes(a) for a in audio]


def reference(
    body: bytes,
) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes | None]] | None]:
    """What ``orjson.loads`` and ``base64.b64decode`` make of a whole body."""
    doc = orjson.loads(body)
    assert isinstance(doc, dict)
    fields = {k: v for k, v in doc.items() if k != "results"}
    results = doc.get("results")
    if results is None:
        return fields, None
    assert isinstance(results, list)
    out = []
    for item in results:
        assert isinstance(item, dict)
        data = item.get("data")
        audio = None if data is None else base64.b64decode(data, validate=True)
        out.append(({k: v for k, v in item.items() if k != "data"}, audio))
    return fields, out


def assert_matches(body: bytes, envelope: ScannedEnvelope, audio: list[bytes]) -> None:
    """The scanner's findings equal the whole-body reference."""
    fields, results = reference(body)
    assert envelope.fields == fields
    if results is None:
        assert envelope.results is None
        return
    assert envelope.results is not None
    assert len(envelope.results) == len(results) == len(audio)
    for got, got_audio, (want_fields, want_audio) in zip(
        envelope.results, audio, results, strict=True
    ):
        assert got.fields == want_fields
        assert got.data_length == (None if want_audio is None else len(want_audio))
        assert got_audio == (want_audio or b"")


# -- a random JSON encoder -----------------------------------------------------------------

_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


class Encoder:
    """Writes JSON with random, valid choices of whitespace, key order and escapes."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.indent = rnd.choice([None, None, 0, 2, 4, "\t"])
        self.ws_chance = rnd.choice([0.0, 0.0, 0.3, 0.9])
        self.u_chance = rnd.choice([0.0, 0.0, 0.05, 0.5, 1.0])  # \uXXXX for any character
        self.slash_chance = rnd.choice([0.0, 1.0, 0.5])  # "\/" for "/"
        self.ensure_ascii = rnd.random() < 0.3
        self.upper = rnd.choice([True, False, None])  # hex case; None: random per escape
        self.dup_chance = rnd.choice([0.0, 0.0, 0.3])  # an earlier duplicate of a key

    def ws(self, depth: int = 0, newline: bool = False) -> str:
        if newline and self.indent is not None:
            unit = self.indent if isinstance(self.indent, str) else " " * self.indent
            return "\n" + unit * depth
        if self.ws_chance and self.rnd.random() < self.ws_chance:
            return "".join(self.rnd.choice(" \t\n\r") for _ in range(self.rnd.randint(1, 4)))
        return ""

    def u_escape(self, code: int) -> str:
        if code > 0xFFFF:
            code -= 0x10000
            return self.u_escape(0xD800 | (code >> 10)) + self.u_escape(0xDC00 | (code & 0x3FF))
        digits = f"{code:04x}"
        upper = self.upper if self.upper is not None else self.rnd.random() < 0.5
        return "\\u" + (digits.upper() if upper else digits)

    def string(self, text: str, u_chance: float | None = None) -> str:
        chance = self.u_chance if u_chance is None else u_chance
        out = ['"']
        for ch in text:
            code = ord(ch)
            if chance and self.rnd.random() < chance:
                out.append(self.u_escape(code))
            elif ch in _SHORT and (code >= 0x20 or self.rnd.random() < 0.7):
                out.append(_SHORT[ch])
            elif code < 0x20 or (code > 0x7E and self.ensure_ascii):
                out.append(self.u_escape(code))
            elif ch == "/" and self.rnd.random() < self.slash_chance:
                out.append("\\/")
            else:
                out.append(ch)
        out.append('"')
        return "".join(out)

    def value(self, value: Any, depth: int = 0) -> str:
        if value is None:
            return "null"
        if value is True:
            return "true"
        if value is False:
            return "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            return repr(value)
        if isinstance(value, str):
            return self.string(value)
        if isinstance(value, list):
            return self.array([self.value(v, depth + 1) for v in value], depth)
        if isinstance(value, dict):
            return self.object(
                [(k, self.value(v, depth + 1)) for k, v in value.items()], depth, shuffle=True
            )
        if isinstance(value, Data):
            return value.encode(self)
        raise TypeError(value)

    def array(self, items: list[str], depth: int) -> str:
        if not items:
            return "[" + self.ws() + "]"
        inner = ("," + self.ws()).join(
            self.ws(depth + 1, True) + item + self.ws() for item in items
        )
        return "[" + inner + self.ws(depth, True) + "]"

    def object(self, pairs: list[tuple[str, str]], depth: int, shuffle: bool) -> str:
        pairs = list(pairs)
        if shuffle:
            self.rnd.shuffle(pairs)
        if self.dup_chance:
            for key, _ in list(pairs):
                if key not in ("data", "results") and self.rnd.random() < self.dup_chance:
                    pairs.insert(0, (key, self.rnd.choice(["null", "1", '"dup"', "[]"])))
        if not pairs:
            return "{" + self.ws() + "}"
        inner = ("," + self.ws()).join(
            self.ws(depth + 1, True)
            + self.string(k)
            + self.ws()
            + ":"
            + (" " if self.indent is not None else self.ws())
            + v
            + self.ws()
            for k, v in pairs
        )
        return "{" + inner + self.ws(depth, True) + "}"


class Data:
    """The ``data`` value: Base64 of ``raw``, written with random escapes."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def encode(self, enc: Encoder) -> str:
        text = base64.b64encode(self.raw).decode()
        # The data string gets its own escape rates: all, some or none of its characters.
        chance = enc.rnd.choice([0.0, 0.0, 0.02, 0.3, 1.0])
        plus = enc.rnd.random() < 0.3  # "+" as "\u002B", as System.Text.Json writes it
        out = ['"']
        for ch in text:
            if chance and enc.rnd.random() < chance:
                out.append(enc.u_escape(ord(ch)))
            elif ch == "/" and enc.rnd.random() < enc.slash_chance:
                out.append("\\/")
            elif ch == "+" and plus:
                out.append("\\u002B")
            else:
                out.append(ch)
        out.append('"')
        return "".join(out)


def encode(envelope: dict[str, Any], rnd: random.Random) -> bytes:
    enc = Encoder(rnd)
    lead = enc.ws() if rnd.random() < 0.2 else ""
    trail = enc.ws() + ("\n" if rnd.random() < 0.3 else "")
    return (lead + enc.value(envelope) + trail).encode()


# -- strategies ----------------------------------------------------------------------------

TRICKY = [
    '"data":"',
    '"results":[{"data":"QUJD"}]',
    "\\",
    "\\\\u0022",
    '"',
    "}]}",
    "{[",
    "QUJD==",
    "é",
    "😀",
    "\u2028",
    "\x00",
    "\x1f",
    "/",
    "</script>",
]

texts = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=20),
    st.lists(st.sampled_from(TRICKY), max_size=4).map("".join),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=12,
)
extra_keys = texts.filter(lambda k: k not in ("results", "data"))


@st.composite
def results_items(draw: st.DrawFn) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if draw(st.booleans()):
        item["type"] = draw(st.sampled_from(["WavFile", "Mp3File"]) | texts)
    choice = draw(st.sampled_from(["bytes", "bytes", "bytes", "null", "absent", "empty"]))
    if choice == "bytes":
        item["data"] = Data(draw(st.binary(max_size=700)))
    elif choice == "empty":
        item["data"] = Data(b"")
    elif choice == "null":
        item["data"] = None
    item.update(draw(st.dictionaries(extra_keys, json_values, max_size=2)))
    return item


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    env: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        env["id"] = draw(st.sampled_from(["TTSb4705-728d-4258-8cca-b49fb7921aa1"]) | texts)
    if draw(st.integers(0, 9)):
        env["responseStatusCode"] = draw(st.sampled_from(["Ok", "NotReady", "Error"]) | texts)
    if draw(st.integers(0, 9)):
        env["taskStatus"] = draw(st.sampled_from(["Completed", "Pending", "Error", "NotExist"]))
    results = draw(st.sampled_from(["list", "list", "list", "null", "absent"]))
    if results == "list":
        env["results"] = draw(st.lists(results_items(), max_size=3))
    elif results == "null":
        env["results"] = None
    if draw(st.booleans()):
        env["error"] = draw(
            st.none()
            | st.fixed_dictionaries(
                {"messages": st.lists(texts, max_size=3), "warnings": st.lists(texts, max_size=3)}
            )
        )
    env.update(draw(st.dictionaries(extra_keys, json_values, max_size=3)))
    return env


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """A valid JSON encoding of a random envelope."""
    return encode(draw(envelopes()), draw(st.randoms(use_true_random=False)))


splits = st.one_of(
    st.just([1]),
    st.lists(st.integers(1, 7), min_size=1, max_size=5),
    st.lists(st.integers(1, 400), min_size=1, max_size=5),
    st.just([1 << 30]),
)

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- property tests ------------------------------------------------------------------------


@PROPERTY
@given(body=bodies(), sizes=splits)
def test_matches_orjson_and_b64decode(body: bytes, sizes: list[int]) -> None:
    envelope, audio = scan(body, sizes)
    assert_matches(body, envelope, audio)


@PROPERTY
@given(body=bodies(), sizes=splits, kind=st.sampled_from(["bytearray", "memoryview"]))
def test_accepts_any_bytes_like(body: bytes, sizes: list[int], kind: str) -> None:
    scanner = EnvelopeScanner()
    pieces = []
    for chunk in chunks_of(body, sizes):
        view = bytearray(chunk) if kind == "bytearray" else memoryview(b"xx" + chunk)[2:]
        pieces.extend(scanner.feed(view))
    assert scanner.finish() == scan(body)[0]
    assert b"".join(p.data for p in pieces) == b"".join(scan(body)[1])


@PROPERTY
@given(body=bodies(), data=st.data())
def test_every_cut_short_body_fails_at_finish(body: bytes, data: st.DataObject) -> None:
    end = len(body.rstrip())
    cut = data.draw(st.integers(0, end - 1))
    scanner = EnvelopeScanner()
    for chunk in chunks_of(body[:cut], data.draw(splits)):
        scanner.feed(chunk)  # a prefix of a valid body is never wrong by itself
    with pytest.raises(DecodeError) as info:
        scanner.finish()
    assert info.value.offset == cut


# -- envelopes by hand ---------------------------------------------------------------------

RAW = bytes(range(256)) * 3 + b"\xff"  # 769 bytes: "=="-padded Base64
B64 = base64.b64encode(RAW).decode()
assert "/" in B64
assert "+" in B64
assert B64.endswith("==")


def body_with(data: str, before: str = '{"id":"x","results":[{"type":"WavFile","data":') -> bytes:
    return (before + data + '}],"error":null}').encode()


def one_audio(body: bytes, sizes: Sequence[int] = (1 << 30,)) -> bytes:
    envelope, audio = scan(body, sizes)
    assert envelope.results is not None
    assert len(audio) == 1
    return audio[0]


def error_of(body: bytes, sizes: Sequence[int] = (1 << 30,)) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        scan(body, sizes)
    return info.value


def test_the_documented_envelope() -> None:
    body = (
        b'{\n  "id": "TTS01232-9d40-4f2d-8eda-f1fc0b12bce6",\n  "responseStatusCode": "Ok",\n'
        b'  "taskStatus": "Completed",\n  "results": [{"type": "WavFile", "data": "'
        + B64.encode()
        + b'"}],\n  "error": null\n}'
    )
    envelope, audio = scan(body, [256])
    assert envelope == ScannedEnvelope(
        {
            "id": "TTS01232-9d40-4f2d-8eda-f1fc0b12bce6",
            "responseStatusCode": "Ok",
            "taskStatus": "Completed",
            "error": None,
        },
        (ScannedResult({"type": "WavFile"}, len(RAW)),),
    )
    assert audio == [RAW]


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 64, 1 << 30])
def test_any_split(size: int) -> None:
    assert one_audio(body_with(f'"{B64}"'), [size]) == RAW


def test_key_orders() -> None:
    pairs = ['"id":"x"', f'"results":[{{"data":"{B64}","type":"WavFile"}}]', '"error":null']
    for order in ([0, 1, 2], [1, 0, 2], [2, 1, 0], [1, 2, 0]):
        body = ("{" + ",".join(pairs[i] for i in order) + "}").encode()
        envelope, audio = scan(body, [3])
        assert envelope.fields == {"id": "x", "error": None}
        assert envelope.results == (ScannedResult({"type": "WavFile"}, len(RAW)),)
        assert audio == [RAW]


def test_whitespace_everywhere() -> None:
    ws = " \t\r\n "
    body = ws.join(["", "{", '"results"', ":", "[", "{", '"data"', ":", f'"{B64}"', "}", "]"])
    body += ws.join(["", ",", '"id"', ":", '"x"', "}", ""])
    for size in (1, 3, 1 << 30):
        envelope, audio = scan(body.encode(), [size])
        assert envelope.fields == {"id": "x"}
        assert audio == [RAW]


@pytest.mark.parametrize("bad", [b"\x0b", b"\x0c", b"\xa0", b"\xc2\xa0", b"\x00", b"\xef\xbb\xbf"])
def test_only_json_whitespace(bad: bytes) -> None:
    for body in (
        bad + b"{}",
        b"{" + bad + b"}",
        b'{"a"' + bad + b":1}",
        b'{"results":' + bad + b"[]}",
        b'{"results":[' + bad + b"]}",
        b"{}" + bad,
    ):
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(body)
        assert error_of(body).offset == body.index(bad)


def test_slash_and_plus_escapes() -> None:
    escaped = B64.replace("/", "\\/").replace("+", "\\u002B")
    assert one_audio(body_with(f'"{escaped}"')) == RAW
    escaped = B64.replace("/", "\\u002f").replace("+", "\\u002b")
    for size in (1, 2, 5, 6, 7):
        assert one_audio(body_with(f'"{escaped}"'), [size]) == RAW


@pytest.mark.parametrize("upper", [False, True])
def test_every_base64_character_escaped(upper: bool) -> None:
    text = base64.b64encode(bytes(range(256)) * 2 + b"\xfb\xff").decode()
    assert set(text) == set(B64_ALPHABET)
    escaped = "".join(f"\\u{ord(c):04X}" if upper else f"\\u{ord(c):04x}" for c in text)
    for size in (1, 4, 5, 6, 7, 100, 1 << 30):
        assert one_audio(body_with(f'"{escaped}"'), [size]) == base64.b64decode(text)


def test_escaped_keys() -> None:
    body = f'{{"r\\u0065sults":[{{"\\u0064ata":"{B64}","t\\/y":1}}],"\\"id\\"":"x"}}'.encode()
    envelope, audio = scan(body, [2])
    assert envelope.fields == {'"id"': "x"}
    assert envelope.results == (ScannedResult({"t/y": 1}, len(RAW)),)
    assert audio == [RAW]


def test_several_results() -> None:
    one, two = os.urandom(1000), os.urandom(3)
    body = (
        f'{{"results":[{{"data":"{base64.b64encode(one).decode()}","type":"WavFile"}},'
        f'{{"type":"Other"}},{{"data":null}},{{"data":""}},'
        f'{{"data":"{base64.b64encode(two).decode()}"}}]}}'
    ).encode()
    for size in (1, 5, 1 << 30):
        envelope, audio = scan(body, [size])
        assert envelope.results == (
            ScannedResult({"type": "WavFile"}, 1000),
            ScannedResult({"type": "Other"}, None),
            ScannedResult({}, None),
            ScannedResult({}, 0),
            ScannedResult({}, 3),
        )
        assert audio == [one, b"", b"", b"", two]


@pytest.mark.parametrize(
    ("body", "results"),
    [
        (b'{"taskStatus":"Pending"}', None),
        (b'{"taskStatus":"Pending","results":null}', None),
        (b'{"results" : null ,"taskStatus":"Pending"}', None),
        (b'{"taskStatus":"Pending","results":[]}', ()),
        (b'{"results":[ ],"taskStatus":"Pending"}', ()),
    ],
)
def test_null_absent_and_empty_results(body: bytes, results: tuple[()] | None) -> None:
    for size in (1, 1 << 30):
        envelope, audio = scan(body, [size])
        assert envelope == ScannedEnvelope({"taskStatus": "Pending"}, results)
        assert audio == []


def test_empty_data_is_zero_bytes() -> None:
    scanner = EnvelopeScanner()
    assert scanner.feed(body_with('""')) == []
    assert scanner.finish().results == (ScannedResult({"type": "WavFile"}, 0),)


def test_padding_kinds() -> None:
    for raw in (b"", b"a", b"ab", b"abc", b"abcd", os.urandom(301)):
        text = base64.b64encode(raw).decode()
        for size in (1, 2, 3, 1 << 30):
            assert one_audio(body_with(f'"{text}"'), [size]) == raw


def test_pieces_come_as_the_bytes_arrive() -> None:
    raw = os.urandom(30_000)
    body = body_with(f'"{base64.b64encode(raw).decode()}"')
    start = body.index(b'"data":"') + len(b'"data":"')  # the first Base64 character
    end = body.index(b'"}')  # the closing quote
    scanner = EnvelopeScanner()
    got = bytearray()
    for chunk in chunks_of(body, [4095]):
        pieces = scanner.feed(chunk)
        got += b"".join(p.data for p in pieces)
        # Every complete quad seen so far is decoded: only up to 3 characters wait.
        seen = min(scanner.bytes_seen, end) - start
        assert len(got) == max(seen, 0) // 4 * 3 or scanner.bytes_seen > end
    scanner.finish()
    assert got == raw


def test_large_body_in_client_chunks() -> None:
    raw = os.urandom(3 * 1024 * 1024 + 1)
    body = body_with(f'"{base64.b64encode(raw).decode()}"')
    assert one_audio(body, [256 * 1024]) == raw
    assert one_audio(body, [64 * 1024, 1, 3, 10_000]) == raw


def test_memory_stays_bounded() -> None:
    """What the scanner allocates and keeps is about one chunk's output, not the body."""
    raw = os.urandom(4 * 1024 * 1024)
    for text in (
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().replace("/", "\\/"),
    ):
        body = body_with(f'"{text}"')
        chunks = list(chunks_of(body, [256 * 1024]))
        scanner = EnvelopeScanner()
        total = 0
        tracemalloc.start()
        try:
            for chunk in chunks:
                for piece in scanner.feed(chunk):
                    total += len(piece.data)
            scanner.finish()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert total == len(raw)
        assert peak < 1024 * 1024


# -- Base64 errors -------------------------------------------------------------------------

PREFIX = '{"id":"x","results":[{"type":"WavFile","data":'
DATA_AT = len(PREFIX) + 1  # offset of the first character of the data string


@pytest.mark.parametrize(
    ("data", "bad_at"),
    [
        ("QUJD!UJD", 4),  # not in the alphabet
        ("QUJD QUJD", 4),  # no whitespace inside Base64
        ("QUJD\\nQUJD", 4),  # nor escaped line breaks
        ("QUJDQUJD\r\n", 8),
        ("QUJD-_==", 4),  # the URL-safe alphabet is not the standard one
        ("QUJD\\u00e9QUJD", 4),  # an escape that spells no Base64 character
        ("QUJD\\u0021QUJD", 4),
        ("QUJD\\\\QUJD", 4),  # an escaped backslash
        ('QUJD\\"QUJD', 4),  # an escaped quote
        ("QUJDé", 4),
        ("QUJD\x01QUJD", 4),
        ("QQ==QUJD", 4),  # padding only at the very end
        ("QQ==\\u0041", 4),
        ("QUJD=QUJ", 4),
        ("Q===", 1),
        ("QQ=A", 3),
        ("QUI==", 4),
        ("====", 0),
        ("QUJDQ", 5),  # 5 characters: the closing quote is where it fails
        ("QQ=", 3),
        ("QUJDQU", 6),
        ("QUJDQ\\u0055", 11),
        ("QUJD\\u00", 4),  # a cut escape: invalid JSON
        ("QUJD\\u00G1", 4),
        ("QUJD\\x", 4),
        ("QUJD\\", 4),
    ],
)
def test_bad_base64_names_its_offset(data: str, bad_at: int) -> None:
    body = (PREFIX + '"' + data + '"}]}').encode()
    for size in (1, 2, 3, 5, 1 << 30):
        err = error_of(body, [size])
        assert err.offset == DATA_AT + len(data[:bad_at].encode()), (size, str(err))
        assert "results[0].data" in str(err)


def test_bad_base64_in_a_long_run() -> None:
    text = bytearray(base64.b64encode(os.urandom(300_000)))
    text[123_457] = ord("*")
    body = body_with('"' + text.decode() + '"')
    for size in (256 * 1024, 4096, 7):
        assert error_of(body, [size]).offset == DATA_AT + 123_457
    text[123_457] = ord("=")
    body = body_with('"' + text.decode() + '"')
    for size in (256 * 1024, 4096, 7):
        assert error_of(body, [size]).offset == DATA_AT + 123_457


def test_bad_base64_in_an_escaped_run() -> None:
    text = base64.b64encode(os.urandom(30_000)).decode().replace("/", "\\/")
    bad = text.index("\\/", 10_000)
    body = body_with('"' + text[:bad] + "\\u0021" + text[bad:] + '"')
    for size in (256 * 1024, 4096, 7):
        assert error_of(body, [size]).offset == DATA_AT + bad


# -- structure errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "at"),
    [
        (b"", 0),
        (b"   ", 3),
        (b"{", 1),
        (b'{"id"', 5),
        (b'{"id":', 6),
        (b'{"id":"x"', 9),
        (b'{"id":"x",', 10),
        (b'{"id":1', 7),
        (b'{"results":[', 12),
        (b'{"results":[{"data":"QUJD', 25),
        (b'{"results":[{"data":"QUJD"}', 27),
        (b'{"results":[{"data":"QUJD"}]', 28),
        (b'{"results":nul', 14),
        (b'{"results":[{"data":nu', 22),
    ],
)
def test_truncated_raises_at_finish(body: bytes, at: int) -> None:
    scanner = EnvelopeScanner()
    scanner.feed(body)
    with pytest.raises(DecodeError) as info:
        scanner.finish()
    assert info.value.offset == at


def test_truncation_at_every_position() -> None:
    body = body_with(
        f'"{B64[:40]}\\/\\u002B=="', before='{"id":"x\\"y","results":[{"type":"W","data":'
    )
    assert one_audio(body) == base64.b64decode(B64[:40] + "/+==")
    for cut in range(len(body)):
        for size in (1, 3, 1 << 30):
            scanner = EnvelopeScanner()
            for chunk in chunks_of(body[:cut], [size]):
                scanner.feed(chunk)
            with pytest.raises(DecodeError) as info:
                scanner.finish()
            assert info.value.offset == cut


@pytest.mark.parametrize(
    ("body", "at"),
    [
        (b'{"id":"x" "taskStatus":"Ok"}', 10),  # missing comma
        (b'{"id":"x",}', 10),  # trailing comma
        (b'{,"id":"x"}', 1),
        (b'{"id" "x"}', 6),  # missing colon
        (b'{"id"::"x"}', 6),
        (b'{"id":}', 6),  # missing value
        (b'{"id":,"a":1}', 6),
        (b"{'id':'x'}", 1),  # single quotes
        (b'{id:"x"}', 1),  # unquoted key
        (b'{1:"x"}', 1),
        (b'{"results":[{"data":"QUJD"},]}', 28),  # trailing comma in the array
        (b'{"results":[,{"data":"QUJD"}]}', 12),
        (b'{"results":[{"data":"QUJD"}{"data":"QUJD"}]}', 27),
        (b'{"results":[{"data":"QUJD"} "x"]}', 28),
        (b'{"results":[{"data":"QUJD"}}', 27),
        (b'{"results":[{"data":"QUJD"]}', 26),
        (b'{"results":nulL}', 11),
        (b'{"results":[{"data":nil}]}', 20),
        (b'{"results":[{"data":"QUJD",}]}', 27),
        (b'{"id":"x"}}', 10),  # trailing garbage
        (b'{"id":"x"} x', 11),
        (b'{"id":"x"}{}', 10),
        (b'{"id":"x"}\x00', 10),
        (b'{"id":"x"},', 10),
        (b'{"id":tru}', 6),  # the values are orjson's to judge
        (b'{"id":01}', 6),
        (b'{"id":1.}', 6),
        (b'{"id":NaN}', 6),
        (b'{"id":1e400}', 6),
        (b'{"id":-}', 6),
        (b'{"id":[1,]}', 6),
        (b'{"id":[1}', 6),
        (b'{"id":{"a" 1}}', 6),
        (b'{"id":"a\x01"}', 6),
        (b'{"id":"\xff"}', 6),
        (b'{"id":"\\x"}', 6),
        (b'{"id":"\\ud800"}', 6),
        (b'{"\xff":1}', 1),  # and keys too
        (b'{"\\q":1}', 1),
        (b'{"results":[{"\\q":1}]}', 13),
        (b'{"results":[{"type":tru}]}', 20),
    ],
)
def test_bad_structure(body: bytes, at: int) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)  # all of these are invalid JSON, or not the envelope's shape
    for size in (1, 1 << 30):
        err = error_of(body, [size])
        assert at <= err.offset <= at + 6, str(err)  # orjson's own offset, within the token
        assert isinstance(err, ResponseError)
        assert isinstance(err, ValueError)


@pytest.mark.parametrize(
    ("body", "at", "what"),
    [
        (b'{"results":{}}', 11, "'results' must be an array or null"),
        (b'{"results":"QUJD"}', 11, "'results' must be an array or null"),
        (b'{"results":0}', 11, "'results' must be an array or null"),
        (b'{"results":true}', 11, "'results' must be an array or null"),
        (b'{"results":[1]}', 12, "results[0] must be an object"),
        (b'{"results":[{},null]}', 15, "results[1] must be an object"),
        (b'{"results":[[]]}', 12, "results[0] must be an object"),
        (b'{"results":[{"data":1}]}', 20, "results[0].data must be a string or null"),
        (b'{"results":[{"data":["QUJD"]}]}', 20, "results[0].data must be a string or null"),
        (b'{"results":[{"data":{}}]}', 20, "results[0].data must be a string or null"),
        (b'{"results":[{"data":false}]}', 20, "results[0].data must be a string or null"),
    ],
)
def test_shape_errors_are_about_the_envelope(body: bytes, at: int, what: str) -> None:
    orjson.loads(body)  # valid JSON, but not the envelope
    for size in (1, 1 << 30):
        err = error_of(body, [size])
        assert err.offset == at
        assert what in str(err)


def test_duplicate_data_and_results_are_refused() -> None:
    err = error_of(b'{"results":[{"data":"QUJD","type":"W","data":"QUJD"}]}')
    assert err.offset == 38
    assert "twice" in str(err)
    error_of(b'{"results":[{"data":null,"data":"QUJD"}]}')
    error_of(b'{"results":[{"\\u0064ata":"","data":""}]}')
    err = error_of(b'{"results":[],"id":"x","results":[]}')
    assert err.offset == 23
    error_of(b'{"results":null,"results":null}')


def test_other_duplicate_keys_last_wins() -> None:
    body = b'{"id":"a","results":[{"type":"A","data":"","type":"B"}],"id":"b"}'
    envelope, _ = scan(body)
    assert envelope.fields == {"id": "b"}
    assert orjson.loads(body)["id"] == "b"
    assert envelope.results == (ScannedResult({"type": "B"}, 0),)


def test_keys_named_data_or_results_elsewhere_are_plain_fields() -> None:
    body = b'{"data":"!!","results":[{"results":[1],"error":{"data":"x"}}],"error":{"results":2}}'
    envelope, audio = scan(body)
    assert envelope.fields == {"data": "!!", "error": {"results": 2}}
    assert envelope.results == (ScannedResult({"results": [1], "error": {"data": "x"}}, None),)
    assert audio == [b""]


def test_an_error_message_that_looks_like_data() -> None:
    body = (
        b'{"error":{"messages":["\\"data\\":\\"QUJD\\"","\\"results\\":[{\\"data\\":\\"QQ==\\"}]"],'
        b'"warnings":["}]}"]},"taskStatus":"Error","results":null}'
    )
    for size in (1, 1 << 30):
        envelope, audio = scan(body, [size])
        want = orjson.loads(body)
        del want["results"]
        assert envelope.fields == want
        assert envelope.results is None
        assert audio == []


def test_nesting_depth_agrees_with_orjson() -> None:
    outcomes = set()
    for depth in (1020, 1021, 1022, 1023, 1024):
        for body in (
            b'{"a":' + b"[" * depth + b"]" * depth + b"}",
            b'{"results":[{"a":' + b"[" * depth + b"]" * depth + b"}]}",
            b'{"a":' + b'{"b":' * depth + b"1" + b"}" * depth + b"}",
        ):
            try:
                want = orjson.loads(body)
            except orjson.JSONDecodeError:
                error_of(body)
                outcomes.add("refused")
            else:
                envelope, _ = scan(body)  # accepted by both (too deep to compare with ==)
                assert envelope.fields.keys() == want.keys() - {"results"}
                outcomes.add("accepted")
    assert outcomes == {"accepted", "refused"}


def test_values_larger_than_the_limit_are_refused() -> None:
    body = b'{"id":"' + b"x" * 1000 + b'","results":[]}'
    assert scan(body, max_value_bytes=1002)[0].fields == {"id": "x" * 1000}
    err = error_of_kw(body, max_value_bytes=1001)
    assert err.offset == 6
    assert "longer than" in str(err)
    error_of_kw(b'{"' + b"k" * 100 + b'":1}', max_value_bytes=50)
    error_of_kw(b'{"a":[' + b"1," * 100 + b"1]}", max_value_bytes=50)
    error_of_kw(b'{"a":' + b"1" * 100 + b"}", max_value_bytes=50)


def error_of_kw(body: bytes, **kwargs: Any) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        scan(body, [7], **kwargs)
    return info.value


# -- the lifecycle -------------------------------------------------------------------------


def test_an_error_sticks() -> None:
    scanner = EnvelopeScanner()
    with pytest.raises(DecodeError) as first:
        scanner.feed(b'{"id" 1}')
    with pytest.raises(DecodeError) as again:
        scanner.feed(b"}")
    assert again.value is first.value
    with pytest.raises(DecodeError) as at_finish:
        scanner.finish()
    assert at_finish.value is first.value
    assert "FAILED" in repr(scanner)


def test_finish_is_final() -> None:
    scanner = EnvelopeScanner()
    assert scanner.feed(b'{"id":"x"}') == []
    envelope = scanner.finish()
    assert scanner.finish() is envelope
    with pytest.raises(DecodeError, match="after finish"):
        scanner.feed(b" ")
    with pytest.raises(DecodeError, match="after finish"):
        scanner.feed(b"")


def test_empty_feeds_and_bytes_seen() -> None:
    scanner = EnvelopeScanner()
    assert scanner.feed(b"") == []
    assert scanner.feed(b'{"results":[') == []
    assert scanner.bytes_seen == 12
    assert scanner.feed(b"") == []
    assert "ARR_OPEN" in repr(scanner)
    assert "bytes_seen=12" in repr(scanner)
    scanner.feed(b'{"data":"QUJD"}]}')
    assert scanner.finish().results == (ScannedResult({}, 3),)


def test_scan_body() -> None:
    envelope, audio = scan_body(body_with(f'"{B64}"'))
    assert envelope.results == (ScannedResult({"type": "WavFile"}, len(RAW)),)
    assert audio == [RAW]


def test_the_error_message_names_the_offset() -> None:
    err = error_of(b'{"id":"x",}')
    assert err.offset == 10
    assert str(err).endswith("(at byte 10)")
