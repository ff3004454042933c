"""The streaming scanner, rule by rule and fast: exact messages and offsets, every cap at
its edge, and the audio of every way to spell and split a data string.

The long property tests against orjson are in ``tests/test_decode.py``; here a seeded
generator of envelopes stands in for them, small enough to run against each mutant.
"""

from __future__ import annotations

import base64
import itertools
import random
from typing import Any

import orjson
import pytest

from aiotts._decode import (
    DEFAULT_MAX_VALUE_BYTES,
    MAX_FIELD_BYTES,
    MAX_RESULTS,
    EnvelopeScanner,
    ScannedEnvelope,
    ScannedResult,
    scan_body,
)
from aiotts._errors import DecodeError

WHOLE = 1 << 30
SIZES = (1, 2, 3, 5, 7, WHOLE)
RAW = bytes(range(256)) * 3 + b"\x00\xff"
B64 = base64.b64encode(RAW).decode()


def pieces_of(body: bytes, size: int = WHOLE, **kwargs: Any) -> tuple[ScannedEnvelope, list]:
    scanner = EnvelopeScanner(**kwargs)
    pieces = []
    for start in range(0, len(body), size):
        pieces.extend(scanner.feed(body[start : start + size]))
    envelope = scanner.finish()
    assert scanner.bytes_seen == len(body)
    return envelope, pieces


def scan(body: bytes, size: int = WHOLE, **kwargs: Any) -> tuple[ScannedEnvelope, list[bytes]]:
    """The envelope and each result's audio; checks the pieces' order and that none is empty."""
    envelope, pieces = pieces_of(body, size, **kwargs)
    count = 0 if envelope.results is None else len(envelope.results)
    audio = [bytearray() for _ in range(count)]
    last = -1
    for piece in pieces:
        assert piece.data, "an empty piece"
        assert piece.index >= last, "pieces out of order"
        last = piece.index
        audio[piece.index] += piece.data
    return envelope, [bytes(a) for a in audio]


def error(body: bytes, size: int = WHOLE, **kwargs: Any) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        pieces_of(body, size, **kwargs)
    return caught.value


def envelope_with(
    data: str, before: str = '{"id":"x","results":[{"type":"WavFile","data":'
) -> bytes:
    return (before + data + "}]}").encode()


# -- a seeded generator of envelopes, checked against orjson and base64 -----------------


def json_string(text: str, rng: random.Random) -> str:
    """``text`` as a JSON string, each character spelled one of the ways JSON allows."""
    out = ['"']
    for char in text:
        code = ord(char)
        roll = rng.random()
        if char in '"\\' or code < 0x20:
            short = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\b": "\\b"}
            out.append(short[char] if char in short and roll < 0.5 else f"\\u{code:04x}")
        elif code > 0xFFFF:
            high, low = divmod(code - 0x10000, 0x400)
            if roll < 0.5:
                out.append(f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04X}")
            else:
                out.append(char)
        elif roll < 0.15:
            out.append(f"\\u{code:04X}" if roll < 0.07 else f"\\u{code:04x}")
        elif char == "/" and roll < 0.3:
            out.append("\\/")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


ALPHABET = 'ab/"\\\n\t\b\x01 é€😀:,[]{}'


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(6)))
    if kind == 1:
        return rng.randrange(-(10**6), 10**6)
    if kind == 2:
        return rng.choice([1.5, -0.25, 1e300, 0.0])
    if kind == 3:
        return rng.choice([True, False])
    if kind == 4:
        return None
    if kind == 5:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {f"k{i}": random_value(rng, depth + 1) for i in range(rng.randrange(4))}


def encode(value: Any, rng: random.Random) -> str:
    """``value`` as JSON, with random whitespace and spellings."""

    def ws() -> str:
        return "".join(rng.choice(" \t\n\r") for _ in range(rng.choice([0, 0, 0, 1, 3])))

    if isinstance(value, str):
        return json_string(value, rng)
    if isinstance(value, list):
        return "[" + ws() + ",".join(ws() + encode(v, rng) + ws() for v in value) + "]"
    if isinstance(value, dict):
        members = [
            ws() + json_string(k, rng) + ws() + ":" + ws() + encode(v, rng) + ws()
            for k, v in value.items()
        ]
        return "{" + ws() + ",".join(members) + "}"
    return orjson.dumps(value).decode()


def data_string(raw: bytes, rng: random.Random) -> str:
    """The Base64 of ``raw`` as a JSON string, some characters escaped."""
    out = ['"']
    for char in base64.b64encode(raw).decode():
        roll = rng.random()
        if char == "/" and roll < 0.5:
            out.append("\\/")
        elif roll < 0.1:
            out.append(f"\\u{ord(char):04x}" if roll < 0.05 else f"\\u{ord(char):04X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def random_envelope(rng: random.Random) -> tuple[bytes, dict[str, Any], list[Any] | None]:
    """A body, the fields it holds and its results as ``(fields, audio or None)``."""
    fields = {key: random_value(rng) for key in rng.sample(["id", "taskStatus", "error", "x"], 3)}
    members = [(json_string(k, rng), encode(v, rng)) for k, v in fields.items()]
    results: list[Any] | None = None
    roll = rng.random()
    if roll < 0.1:
        members.append(('"results"', "null"))
    elif roll < 0.9:
        results = []
        items = []
        for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
            rfields = {"type": rng.choice(["WavFile", "Other"])}
            if rng.random() < 0.3:
                rfields["extra"] = random_value(rng)
            item = [(json_string(k, rng), encode(v, rng)) for k, v in rfields.items()]
            audio: bytes | None = None
            kind = rng.random()
            if kind < 0.1:
                item.append(('"data"', "null"))
            elif kind < 0.9:
                audio = rng.randbytes(rng.choice([0, 1, 2, 3, 4, 5, 47, 300]))
                item.append(('"d\\u0061ta"' if kind < 0.15 else '"data"', data_string(audio, rng)))
            rng.shuffle(item)
            items.append("{" + ",".join(f" {k} : {v} " for k, v in item) + "}")
            results.append((rfields, audio))
        members.append(('"results"', "[" + ",".join(items) + " ]"))
    rng.shuffle(members)
    body = "{" + ",".join(f"{k}:{v}" for k, v in members) + "}"
    return body.encode(), fields, results


@pytest.mark.parametrize("seed", range(4))
def test_random_envelopes_read_as_orjson_and_base64_read_them(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(40):
        body, fields, results = random_envelope(rng)
        assert orjson.loads(body).keys() - {"results"} == fields.keys()
        size = rng.choice([1, 2, 3, 4, 5, 7, 16, 64, WHOLE])
        envelope, audio = scan(body, size)
        assert envelope.fields == fields, body
        if results is None:
            assert envelope.results is None
            continue
        assert envelope.results == tuple(
            ScannedResult(f, None if a is None else len(a)) for f, a in results
        ), body
        assert audio == [a or b"" for _, a in results], body


# -- what a valid envelope gives ---------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_the_documented_envelope(size: int) -> None:
    body = (
        b'{\n  "id": "TTS01232-9d40",\n  "responseStatusCode": "Ok",\n'
        b'  "taskStatus": "Completed",\n  "results": [{"type": "WavFile", "data": "'
        + B64.encode()
        + b'"}],\n  "error": null\n}\n'
    )
    assert scan(body, size) == (
        ScannedEnvelope(
            {
                "id": "TTS01232-9d40",
                "responseStatusCode": "Ok",
                "taskStatus": "Completed",
                "error": None,
            },
            (ScannedResult({"type": "WavFile"}, len(RAW)),),
        ),
        [RAW],
    )
    assert scan_body(body) == scan(body)


@pytest.mark.parametrize("size", SIZES)
def test_several_results_and_their_data_kinds(size: int) -> None:
    body = (
        b'{"results":[{"data":"AAEC","type":"a"},{"type":"b"},{"data":null},{"data":""},'
        b'{"data" : "/w==" , "n":[1,{"x":"]}"}]}],"id":"x"}'
    )
    envelope, audio = scan(body, size)
    assert envelope == ScannedEnvelope(
        {"id": "x"},
        (
            ScannedResult({"type": "a"}, 3),
            ScannedResult({"type": "b"}, None),
            ScannedResult({}, None),
            ScannedResult({}, 0),
            ScannedResult({"n": [1, {"x": "]}"}]}, 1),
        ),
    )
    assert audio == [b"\x00\x01\x02", b"", b"", b"", b"\xff"]


@pytest.mark.parametrize(
    ("body", "results"),
    [
        (b'{"a":1}', None),
        (b'{"a":1,"results":null}', None),
        (b'{"results" :\tnull\n,"a":1}', None),
        (b'{"results":[],"a":1}', ()),
        (b'{"a":1,"results":[ ]}', ()),
    ],
)
def test_results_null_absent_or_empty(body: bytes, results: tuple[()] | None) -> None:
    for size in SIZES:
        assert scan(body, size) == (ScannedEnvelope({"a": 1}, results), [])


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":"x","a":"y"}',  # plain members
        b'{"a":"\\u0078","a":"\\u0079"}',  # members through the general path
        b'{"a":["x"],"a":["y"]}',
    ],
)
def test_a_repeated_key_keeps_its_last_value(body: bytes) -> None:
    for size in SIZES:
        envelope, _ = scan(body, size)
        assert envelope.fields == orjson.loads(body)
    inner = b'{"results":[' + body + b"]}"
    for size in SIZES:
        envelope, _ = scan(inner, size)
        assert envelope.results == (ScannedResult(orjson.loads(body), None),)


def test_plain_members_at_every_level() -> None:
    body = b'{"a":"x","b":null,"results":[{"c":"y" , "d" : null}] , "e" : "z"}'
    for size in SIZES:
        envelope, _ = scan(body, size)
        assert envelope == ScannedEnvelope(
            {"a": "x", "b": None, "e": "z"}, (ScannedResult({"c": "y", "d": None}, None),)
        )


def test_keys_named_data_or_results_elsewhere_are_plain_fields() -> None:
    body = b'{"data":"!!","results":[{"results":"r","error":{"data":"x"}}],"e":{"results":2}}'
    for size in SIZES:
        envelope, audio = scan(body, size)
        assert envelope.fields == {"data": "!!", "e": {"results": 2}}
        assert envelope.results == (ScannedResult({"results": "r", "error": {"data": "x"}}, None),)
        assert audio == [b""]


def test_strings_and_scalars_cut_anywhere() -> None:
    body = (
        b'{"s":"a\\"b\\\\c\\/d\\u00e9\\n","n":-12.5e3,"t":true,"f":false,"z":null,'
        b'"l":[1,"]",{"k":"}"},[]],"o":{"a":{"b":[]}},"k\\u0065y":1}'
    )
    for size in SIZES:
        envelope, _ = scan(body, size)
        assert envelope.fields == orjson.loads(body)


def test_every_base64_character_and_escape_cut_anywhere() -> None:
    raw = bytes(range(256)) * 2 + b"\xfb\xff"
    text = base64.b64encode(raw).decode()
    spellings = [
        text,
        text.replace("/", "\\/"),
        "".join(f"\\u{ord(c):04x}" for c in text),
        "".join(f"\\u{ord(c):04X}" for c in text),
        "".join(c if i % 3 else f"\\u{ord(c):04x}" for i, c in enumerate(text)),
    ]
    for spelling in spellings:
        body = envelope_with(f'"{spelling}"')
        for size in (1, 4, 5, 6, 7, 11, WHOLE):
            assert scan(body, size)[1] == [raw]


@pytest.mark.parametrize("raw", [b"", b"a", b"ab", b"abc", b"abcd", b"abcde", RAW])
def test_every_padding(raw: bytes) -> None:
    body = envelope_with('"' + base64.b64encode(raw).decode() + '"')
    for size in SIZES:
        envelope, audio = scan(body, size)
        assert audio == [raw]
        assert envelope.results == (ScannedResult({"type": "WavFile"}, len(raw)),)


def test_padding_escaped() -> None:
    body = envelope_with('"QQ\\u003d\\u003D"')
    for size in SIZES:
        assert scan(body, size)[1] == [b"A"]


def test_long_escaped_data_across_windows() -> None:
    raw = random.Random(1).randbytes(60_000)
    text = base64.b64encode(raw).decode()
    for spelling in (text.replace("/", "\\/").replace("+", "\\u002b"), "\\/" * 12_000 + "AAAA"):
        expect = base64.b64decode(spelling.replace("\\/", "/").replace("\\u002b", "+"))
        body = envelope_with(f'"{spelling}"')
        for size in (1000, 16_384, 16_385, 65_536, WHOLE):
            assert scan(body, size)[1] == [expect]


def test_audio_leaves_as_soon_as_each_quad_is_complete() -> None:
    # (how the character is spelled, the Base64 character it stands for)
    head = [(c, c) for c in "AAEC"] + [("\\u0041", "A"), ("w", "w"), ("\\/", "/"), ("Q", "Q")]
    one_pad = [(c, c) for c in "FBgcICQ="]
    two_pads = [("C", "C"), ("Q", "Q"), ("\\u003d", "="), ("=", "=")]
    for units, split_escapes in itertools.product((head + one_pad, head + two_pads), (False, True)):
        scanner = EnvelopeScanner()
        scanner.feed(DATA.encode() + b'"')
        got = b""
        text = ""
        for spelled, char in units:
            pieces = [spelled[:1], spelled[1:]] if split_escapes else [spelled]
            for part in filter(None, pieces):
                got += b"".join(p.data for p in scanner.feed(part.encode()))
            text += char
            assert got == base64.b64decode(text[: len(text) // 4 * 4]), text
        scanner.feed(b'"}]}')
        assert scanner.finish().results == (ScannedResult({"type": "WavFile"}, len(got)),)
        assert got == base64.b64decode(text)


def test_pieces_after_each_chunk_hold_every_complete_quad() -> None:
    raw = bytes(range(200)) * 30
    text = base64.b64encode(raw).decode().replace("/", "\\/")
    body = envelope_with(f'"{text}"')
    start = body.index(b'"data":"') + len(b'"data":"')
    for size in (4, 5, 7, 100, 333):
        scanner = EnvelopeScanner()
        got = bytearray()
        for offset in range(0, len(body), size):
            got += b"".join(p.data for p in scanner.feed(body[offset : offset + size]))
            fed = body[start : offset + size]
            if fed.endswith(b"\\"):
                fed = fed[:-1]  # an escape cut in two waits for its second half
            chars = len(fed.replace(b"\\/", b"/").split(b'"')[0])
            assert len(got) == min(chars // 4 * 3, len(raw)), (size, offset)
        scanner.finish()
        assert bytes(got) == raw


def test_bytes_like_chunks() -> None:
    body = envelope_with(f'"{B64}"')
    for kind in (bytearray, memoryview):
        scanner = EnvelopeScanner()
        got = b""
        for offset in range(0, len(body), 100):
            got += b"".join(p.data for p in scanner.feed(kind(body[offset : offset + 100])))
        scanner.finish()
        assert got == RAW


# -- errors: exact offsets and messages -----------------------------------------------


@pytest.mark.parametrize(
    ("body", "offset", "message"),
    [
        (b"", 0, "the body ended early: empty body"),
        (b" \n", 2, "the body ended early: unfinished JSON (DOC_START)"),
        (b"{", 1, "the body ended early: unfinished JSON (OBJ_OPEN)"),
        (b'{"id"', 5, "the body ended early: unfinished JSON (COLON)"),
        (b'{"id":', 6, "the body ended early: unfinished JSON (VALUE)"),
        (b'{"id":"x', 8, "the body ended early: inside 'id'"),
        (b'{"id":"x\\', 9, "the body ended early: inside 'id'"),
        (b'{"id":"x"', 9, "the body ended early: unfinished JSON (AFTER)"),
        (b'{"id":"x",', 10, "the body ended early: unfinished JSON (OBJ_KEY)"),
        (b'{"id":12', 8, "the body ended early: inside 'id'"),
        (b'{"a":[1,', 8, "the body ended early: inside 'a'"),
        (b'{"a":{"b":"}', 12, "the body ended early: inside 'a'"),
        (b'{"results":[', 12, "the body ended early: unfinished JSON (ARR_OPEN)"),
        (b'{"results":[{},', 15, "the body ended early: unfinished JSON (ARR_ITEM)"),
        (b'{"results":[{"da', 16, "the body ended early: inside a key"),
        (b'{"results":[{"a":"x', 19, "the body ended early: inside results[0].a"),
        (b'{"results":[{"data":"QUJD', 25, "the body ended early: inside results[0].data"),
        (b'{"results":[{},{"data":"QU', 26, "the body ended early: inside results[1].data"),
        (b'{"results":[{"data":nu', 22, "the body ended early: inside results[0].data"),
        (b'{"results":nul', 14, "the body ended early: inside 'results'"),
        (b'{"results":[{"data":"QUJD"}', 27, "the body ended early: unfinished JSON (AFTER)"),
        (b'{"results":[{"data":"QUJD"}]', 28, "the body ended early: unfinished JSON (AFTER)"),
        (b"x", 0, "the body must be a JSON object, found 'x'"),
        (b" []", 1, "the body must be a JSON object, found '['"),
        (b"\x00", 0, "the body must be a JSON object, found byte 0x00"),
        (b"{,}", 1, "expected a key or '}', found ','"),
        (b"{ a", 2, "expected a key or '}', found 'a'"),
        (b'{"id":"x",}', 10, "expected a key after ',', found '}'"),
        (b'{"id":"x", ,', 11, "expected a key after ',', found ','"),
        (b'{"id" "x"}', 6, "expected ':' after a key, found '\"'"),
        (b'{"id"::1}', 6, "expected a value for 'id', found ':'"),
        (b'{"id":}', 6, "expected a value for 'id', found '}'"),
        (b'{"id":,', 6, "expected a value for 'id', found ','"),
        (b'{"id":]', 6, "expected a value for 'id', found ']'"),
        (b'{"results":[{"a":}', 17, "expected a value for results[0].a, found '}'"),
        (b'{"id":"x" "t":1}', 10, "expected ',' or '}', found '\"'"),
        (b'{"id":"x"]', 9, "expected ',' or '}', found ']'"),
        (b'{"results":[{}}', 14, "expected ',' or ']', found '}'"),
        (b'{"results":[{} "x"]}', 15, "expected ',' or ']', found '\"'"),
        (b'{"results":[{"a":1]}', 18, "expected ',' or '}', found ']'"),
        (b'{"results":[]]', 13, "expected ',' or '}', found ']'"),
        (b'{"id":"x"}}', 10, "unexpected '}' after the end of the JSON document"),
        (b'{"id":"x"} \t x', 13, "unexpected 'x' after the end of the JSON document"),
        (b'{"results":{}}', 11, "'results' must be an array or null, found '{'"),
        (b'{"results":"QUJD"}', 11, "'results' must be an array or null, found '\"'"),
        (b'{"results":0}', 11, "'results' must be an array or null, found '0'"),
        (b'{"results":[1]}', 12, "results[0] must be an object, found '1'"),
        (b'{"results":[{},null]}', 15, "results[1] must be an object, found 'n'"),
        (b'{"results":[{},]}', 15, "results[1] must be an object, found ']'"),
        (b'{"results":[,]}', 12, "results[0] must be an object, found ','"),
        (b'{"results":[{"data":1}]}', 20, "results[0].data must be a string or null, found '1'"),
        (b'{"results":[{"data":[]}]}', 20, "results[0].data must be a string or null, found '['"),
        (b'{"results":[{"data":"","data":""}]}', 23, "results[0].data appears twice"),
        (b'{"results":[{"data":null,"d\\u0061ta":""}]}', 25, "results[0].data appears twice"),
        (b'{"results":[],"id":1,"results":[]}', 21, "the key 'results' appears twice"),
        (b'{"results":null,"results":null}', 16, "the key 'results' appears twice"),
    ],
)
def test_structure_errors(body: bytes, offset: int, message: str) -> None:
    for size in SIZES:
        caught = error(body, size)
        assert (caught.offset, caught.message) == (offset, f"{message} (at byte {offset})"), size


@pytest.mark.parametrize(
    ("body", "offset", "what"),
    [
        (b'{"id":tru}', 9, "'id'"),
        (b'{"id":x}', 6, "'id'"),  # orjson's position 0 is the token's first byte
        (b'{"id":01}', 6, "'id'"),
        (b'{"id":X}', 6, "'id'"),  # any byte that may start a value is orjson's to judge
        (b'{"results":nulL}', 11, "'results'"),
        (b'{"results":[{"data":nil}]}', 20, "results[0].data"),
        (b'{"id":"\xff"}', 6, "'id'"),  # not UTF-8: the offset is still found
        (b'{"id":"\xc3\xa9\x01"}', 9, "'id'"),  # after a character of two bytes
        (b'{"\\q":1}', 2, "key"),
        (b'{"results":[{"a":tru}]}', 20, "results[0].a"),
    ],
)
def test_values_are_judged_by_orjson_at_their_byte_offset(
    body: bytes, offset: int, what: str
) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)
    for size in SIZES:
        caught = error(body, size)
        assert caught.offset == offset, size
        assert caught.message.startswith(f"invalid JSON in {what}: "), size
        assert caught.message.endswith(f" (at byte {offset})"), size


DATA = '{"results":[{"type":"WavFile","data":'
AT = len(DATA) + 1  # the offset of the data string's first character

NOT_B64 = "results[0].data: {} is not a Base64 character"
ESCAPE = "results[0].data: an escape that is not a Base64 character"
PADDING = "results[0].data: Base64 padding '=' is allowed only at the end"
LENGTH = "results[0].data: Base64 length is not a multiple of 4"


@pytest.mark.parametrize(
    ("data", "bad_at", "message"),
    [
        ("QUJD!UJD", 4, NOT_B64.format("'!'")),
        ("QUJD UJD", 4, NOT_B64.format("' '")),
        ("QUJD~UJD", 4, NOT_B64.format("'~'")),
        ("QUJD\x7fUJD", 4, NOT_B64.format("byte 0x7f")),
        ("QUJD\x1fUJD", 4, NOT_B64.format("byte 0x1f")),
        ("QUJDé", 4, NOT_B64.format("byte 0xc3")),
        ("QUJD-_==", 4, NOT_B64.format("'-'")),
        ("QUJD\\u0021QUJD", 4, ESCAPE),
        ("\\u0051UJD!UJD", 9, NOT_B64.format("'!'")),  # after an escape in the same run
        ("\\u0051U==!", 9, NOT_B64.format("'!'")),
        ("\\/UJD\\u0051U\\/\\u003d=A", 20, PADDING),
        ("QUJD\\u00e9", 4, ESCAPE),
        ("QUJD\\nQUJD", 4, ESCAPE),
        ("QUJD\\\\QUJD", 4, ESCAPE),
        ('QUJD\\"QUJD', 4, ESCAPE),
        ("QUJD\\u00", 4, ESCAPE),
        ("QUJD\\", 4, ESCAPE),
        ("QUJD\\u00G1", 4, "results[0].data: invalid \\u escape"),
        ("QUJD\\ugggg", 4, "results[0].data: invalid \\u escape"),
        ("QUJD\\x", 4, "results[0].data: invalid escape"),
        ("QQ==QUJD", 4, PADDING),
        ("QQ==\\u0041", 4, PADDING),
        ("QQ==\\u003d", 4, PADDING),
        ("QUJD=QUJ", 4, PADDING),
        ("Q===", 1, PADDING),
        ("QQ=A", 3, PADDING),
        ("QUI==", 4, PADDING),
        ("QUI=A", 4, PADDING),
        ("====", 0, PADDING),
        ("QUJDQ", 5, LENGTH),
        ("QQ=", 3, LENGTH),
        ("QUJDQU", 6, LENGTH),
        ("QUJDQ\\u0055", 11, LENGTH),
        ("Q", 1, LENGTH),
    ],
)
def test_data_errors(data: str, bad_at: int, message: str) -> None:
    body = (DATA + '"' + data + '"}]}').encode()
    offset = AT + len(data[:bad_at].encode())
    for size in SIZES:
        caught = error(body, size)
        assert (caught.offset, caught.message) == (offset, f"{message} (at byte {offset})"), size


def test_a_data_error_deep_in_a_long_run_is_found_at_its_offset() -> None:
    text = bytearray(base64.b64encode(random.Random(2).randbytes(60_000)))
    for bad in (b"*", b"="):
        for at in (0, 5, 40_001, len(text) - 7):  # never where "=" may pad
            spoiled = bytearray(text)
            spoiled[at : at + 1] = bad
            body = envelope_with('"' + spoiled.decode() + '"', before=DATA)
            for size in (4096, 65_536, WHOLE):
                assert error(body, size).offset == AT + at


def test_a_data_error_after_escapes_in_a_long_run() -> None:
    text = base64.b64encode(random.Random(3).randbytes(60_000)).decode().replace("/", "\\/")
    bad = text.index("\\/", 30_000)
    body = envelope_with('"' + text[:bad] + "\\u0021" + text[bad:] + '"', before=DATA)
    for size in (4096, 16_384, WHOLE):
        caught = error(body, size)
        assert (caught.offset, caught.message) == (AT + bad, f"{ESCAPE} (at byte {AT + bad})")


def test_an_invalid_value_names_its_byte_offset_after_multibyte_text() -> None:
    body = '{"id":"ééé\\q"}'.encode()
    caught = error(body)
    assert caught.offset == body.index(b"\\q")
    assert caught.message.startswith("invalid JSON in 'id': ")


# -- caps at their edges ---------------------------------------------------------------


def test_the_default_caps() -> None:
    assert (DEFAULT_MAX_VALUE_BYTES, MAX_FIELD_BYTES, MAX_RESULTS) == (1 << 20, 1 << 20, 1000)


@pytest.mark.parametrize(
    ("body", "start", "what"),
    [
        (b'{"id":"' + b"x" * 98 + b'"}', 6, "'id'"),  # a plain member
        (b'{"id":"\\/' + b"x" * 96 + b'"}', 6, "'id'"),  # an escape: the general path
        (b'{"id":' + b"1" * 100 + b"}", 6, "'id'"),
        (b'{"id":[' + b"1," * 48 + b"11]}", 6, "'id'"),
        (b'{"' + b"k" * 98 + b'":1}', 1, "a key"),
        (b'{"results":[{"t":"\\/' + b"x" * 96 + b'"}]}', 17, "results[0].t"),
        (b'{"results":[{"t":"' + b"x" * 98 + b'"}]}', 17, "results[0].t"),
    ],
)
def test_a_value_of_the_cap_is_kept_and_one_byte_more_refused(
    body: bytes, start: int, what: str
) -> None:
    # The token at ``start`` is exactly 100 bytes in every case.
    for size in SIZES:
        scan(body, size, max_value_bytes=100)
        caught = error(body, size, max_value_bytes=99)
        assert (caught.offset, caught.message) == (
            start,
            f"{what} is longer than 99 bytes (at byte {start})",
        ), size


@pytest.mark.parametrize(
    ("body", "held", "start_of_last"),
    [
        (b'{"ab":"cd","e":null}', 15, 15),  # plain members: 4 + 4 + 3 + 4
        (b'{"ab":"c\\/","e":1}', 13, 16),  # the general path: 4 + 5 + 3 + 1
        (b'{"e":null,"ab":"cd"}', 15, 15),  # null counts 4 bytes, as written
        (b'{"results":[{"ab":[1,2]}],"c":2}', 22, 30),  # 9 + 4 + 5 + 3 + 1
    ],
)
def test_the_bytes_held_besides_the_audio_are_capped_exactly(
    body: bytes, held: int, start_of_last: int
) -> None:
    for size in SIZES:
        scan(body, size, max_field_bytes=held)
        caught = error(body, size, max_field_bytes=held - 1)
        assert caught.message == (
            f"the answer holds more than {held - 1} bytes of JSON besides the audio "
            f"(MAX_FIELD_BYTES); the real API sends a few hundred (at byte {start_of_last})"
        ), size
        assert caught.offset == start_of_last


def feed_all(scanner: EnvelopeScanner, chunks: list[bytes]) -> None:
    for chunk in chunks:
        scanner.feed(chunk)


def test_a_token_past_a_cap_is_refused_before_it_ends() -> None:
    """What a capture keeps stays under the caps even when the token never ends."""
    for kwargs, message in (
        ({"max_value_bytes": 100}, "'id' is longer than 100 bytes (at byte 6)"),
        (
            {"max_field_bytes": 100},
            "the answer holds more than 100 bytes of JSON besides the audio "
            "(MAX_FIELD_BYTES); the real API sends a few hundred (at byte 6)",
        ),
    ):
        for opening in (b'"', b"[", b"1"):
            scanner = EnvelopeScanner(**kwargs)
            scanner.feed(b'{"id":' + opening)
            with pytest.raises(DecodeError) as caught:
                feed_all(scanner, [b"1111111"] * 30)  # and no finish(): it never ends
            assert caught.value.message == message


@pytest.mark.parametrize(
    ("chunks", "bad_at", "message"),
    [
        (["QQ=", "=QUJD"], 4, PADDING),  # a quad completed across chunks, then more quads
        (["QUJDQQ=", "A"], 7, PADDING),  # a chunk that ends inside a padded quad
        (["QUJDQQ=", "=A"], 8, PADDING),
        (["QUJDQ", "Q=", "=", "QUJD"], 8, PADDING),
    ],
)
def test_padding_split_across_chunks(chunks: list[str], bad_at: int, message: str) -> None:
    scanner = EnvelopeScanner()
    scanner.feed((DATA + '"').encode())
    with pytest.raises(DecodeError) as caught:
        feed_all(scanner, [chunk.encode() for chunk in chunks] + [b'"}]}'])
    offset = AT + bad_at
    assert (caught.value.offset, caught.value.message) == (offset, f"{message} (at byte {offset})")


def test_a_plain_member_past_the_value_cap_is_refused_like_any_other() -> None:
    body = b'{"id":"' + b"x" * 20 + b'"}'
    caught = error(body, max_value_bytes=21)
    assert caught.message == "'id' is longer than 21 bytes (at byte 6)"
    long_key = b'{"' + b"k" * 20 + b'":"x"}'
    caught = error(long_key, max_value_bytes=21)
    assert caught.message == "a key is longer than 21 bytes (at byte 1)"
    assert scan(long_key, max_value_bytes=22)[0].fields == {"k" * 20: "x"}


@pytest.mark.parametrize("size", SIZES)
def test_results_of_the_cap_are_kept_and_one_more_refused(size: int) -> None:
    three = b'{"results":[{},{"data":"AAAA"},{}]}'
    envelope, audio = scan(three, size, max_results=3)
    assert envelope.results is not None and len(envelope.results) == 3
    assert audio == [b"", b"\x00\x00\x00", b""]
    caught = error(three, size, max_results=2)
    assert (caught.offset, caught.message) == (
        31,
        "'results' has more than 2 elements (MAX_RESULTS); the real API sends one (at byte 31)",
    )


@pytest.mark.parametrize(
    ("prefix", "suffix", "outer", "what"),
    [(b'{"a":', b"}", 1, "'a'"), (b'{"results":[{"a":', b"}]}", 3, "results[0].a")],
)
def test_nesting_is_capped_at_orjsons_depth(
    prefix: bytes, suffix: bytes, outer: int, what: str
) -> None:
    deepest = 1024 - outer
    for open_, close in ((b"[", b"]"), (b'{"b":', b"}")):
        inner = b"1" if open_ != b"[" else b""
        ok = prefix + open_ * deepest + inner + close * deepest + suffix
        orjson.loads(ok)
        for size in (1, 7, WHOLE):
            scan(ok, size)
        deep = prefix + open_ * (deepest + 1) + inner + close * (deepest + 1) + suffix
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(deep)
        at = len(prefix) + len(open_) * deepest
        for size in (1, 7, WHOLE):
            caught = error(deep, size)
            assert (caught.offset, caught.message) == (
                at,
                f"{what} is nested deeper than 1024 levels (at byte {at})",
            )


# -- the life of a scanner ------------------------------------------------------------


def test_repr_and_bytes_seen_follow_the_body() -> None:
    scanner = EnvelopeScanner()
    assert repr(scanner) == "<EnvelopeScanner state=DOC_START bytes_seen=0 results=->"
    assert scanner.feed(b"") == []
    scanner.feed(b'{"results":[{}')
    assert scanner.bytes_seen == 14
    assert repr(scanner) == "<EnvelopeScanner state=AFTER bytes_seen=14 results=1>"
    scanner.feed(b',{"data":"QU')
    assert repr(scanner) == "<EnvelopeScanner state=DATA bytes_seen=26 results=1>"
    scanner.feed(b'JD"}]}')
    assert repr(scanner) == "<EnvelopeScanner state=DOC_END bytes_seen=32 results=2>"


def test_an_error_is_raised_again_by_every_later_call() -> None:
    scanner = EnvelopeScanner()
    with pytest.raises(DecodeError) as first:
        scanner.feed(b'{"id" 1}')
    assert repr(scanner) == "<EnvelopeScanner state=FAILED bytes_seen=8 results=->"
    for call in (lambda: scanner.feed(b"}"), lambda: scanner.feed(b""), scanner.finish):
        with pytest.raises(DecodeError) as again:
            call()
        assert again.value is first.value
    assert scanner.bytes_seen == 8


def test_an_early_end_is_raised_again_by_every_later_call() -> None:
    scanner = EnvelopeScanner()
    scanner.feed(b"{")
    with pytest.raises(DecodeError) as first:
        scanner.finish()
    with pytest.raises(DecodeError) as again:
        scanner.finish()
    assert again.value is first.value
    with pytest.raises(DecodeError) as fed:
        scanner.feed(b"}")
    assert fed.value is first.value


def test_finish_is_final() -> None:
    scanner = EnvelopeScanner()
    scanner.feed(b'{"id":"x"} ')
    envelope = scanner.finish()
    assert envelope == ScannedEnvelope({"id": "x"}, None)
    assert scanner.finish() is envelope
    for chunk in (b" ", b""):
        with pytest.raises(DecodeError) as caught:
            scanner.feed(chunk)
        assert (caught.value.offset, caught.value.message) == (
            11,
            "the body already ended: feed() after finish() (at byte 11)",
        )
    assert scanner.finish() is envelope


def test_scan_body_gives_each_result_its_audio() -> None:
    body = b'{"results":[{"data":"AAAA"},{},{"data":"/w=="}]}'
    envelope, audio = scan_body(body)
    assert audio == [b"\x00\x00\x00", b"", b"\xff"]
    assert envelope.results == (ScannedResult({}, 3), ScannedResult({}, None), ScannedResult({}, 1))
    assert scan_body(b'{"results":null}') == (ScannedEnvelope({}, None), [])
    with pytest.raises(DecodeError):
        scan_body(b'{"results":[')
