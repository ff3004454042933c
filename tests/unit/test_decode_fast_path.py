"""The scanner's one-step head and tail mean exactly what the general path means.

The usual ``Completed`` answer's head (``{`` ... ``"data":"``) and tail (``"}]`` ...
``}``) are each taken in one step when they arrive whole in a chunk. Fed one byte at a
time, no head or tail is ever whole in a chunk, so the general path reads every byte:
both ways must give the same envelope, the same audio, and the same error at the same
offset, caps included.
"""

from __future__ import annotations

import base64

import pytest

from aiotts._decode import EnvelopeScanner
from aiotts._errors import DecodeError

AUDIO = b"RIFF" + bytes(range(256)) * 4
DATA = base64.b64encode(AUDIO)


def _scan(body: bytes, step: int | None, **caps: int) -> object:
    """What scanning ``body`` gives (fed whole, or ``step`` bytes at a time)."""
    scanner = EnvelopeScanner(**caps)
    audio = bytearray()
    size = step or len(body)
    try:
        for start in range(0, len(body), size):
            for piece in scanner.feed(body[start : start + size]):
                audio += piece.data
        envelope = scanner.finish()
    except DecodeError as exc:
        return ("error", str(exc), exc.offset)
    return ("ok", envelope, bytes(audio))


def _body(head: bytes, tail: bytes = b'"}],"error":null}') -> bytes:
    return head + DATA + tail


BODIES = {
    "usual": _body(
        b'{"id":"TTSa","responseStatusCode":"Ok","taskStatus":"Completed",'
        b'"results":[{"type":"WavFile","data":"'
    ),
    "spaced": _body(
        b'{ "id" : "TTSa" ,\n\t"results" : [ { "type" : null , "data" : "',
        b'" } ] , "error" : null , "x" : "y" }  ',
    ),
    "bare": _body(b'{"results":[{"data":"', b'"}]}'),
    "repeated key, last wins": _body(b'{"id":"a","id":"b","results":[{"data":"', b'"}],"id":"c"}'),
    "results twice": _body(b'{"results":null,"results":[{"data":"'),
    "results again after": _body(b'{"results":[{"data":"', b'"}],"results":null}'),
    "data twice": _body(b'{"results":[{"data":null,"data":"'),
    "data again after": _body(b'{"results":[{"data":"', b'","data":null}]}'),
    "data at the top, results in a result": _body(
        b'{"data":"x","results":[{"results":"y","data":"', b'"}],"data":null}'
    ),
    "error object": _body(
        b'{"results":[{"data":"', b'"}],"error":{"messages":["m"],"warnings":[]}}'
    ),
    "escaped key": _body(b'{"i\\u0064":"a","results":[{"data":"'),
    "number value": _body(b'{"n":1,"results":[{"data":"'),
    "second result": _body(b'{"results":[{"data":"', b'"},{"data":"' + DATA + b'"}]}'),
    "trailing comma": _body(b'{"id":"a",,"results":[{"data":"'),
    "no closing brace": _body(b'{"results":[{"data":"', b'"}],"error":null'),
    "junk after": _body(b'{"results":[{"data":"', b'"}]} x'),
}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_whole_and_byte_by_byte_agree(name: str) -> None:
    body = BODIES[name]
    assert _scan(body, None) == _scan(body, 1)


def test_the_usual_answer_is_read_whole() -> None:
    kind, envelope, audio = _scan(BODIES["usual"], None)  # type: ignore[misc]
    assert kind == "ok"
    assert audio == AUDIO
    assert envelope.fields == {  # type: ignore[attr-defined]
        "id": "TTSa",
        "responseStatusCode": "Ok",
        "taskStatus": "Completed",
        "error": None,
    }
    assert envelope.results[0].fields == {"type": "WavFile"}  # type: ignore[attr-defined]


# The usual body holds 98 bytes of JSON besides the audio (keys and values, quotes
# included): a cap of 98 lets it through and 97 refuses it, whichever way it is read.
@pytest.mark.parametrize("cap", [97, 98])
def test_max_field_bytes_counts_the_same(cap: int) -> None:
    body = BODIES["usual"]
    whole = _scan(body, None, max_field_bytes=cap)
    assert whole == _scan(body, 1, max_field_bytes=cap)
    assert whole[0] == ("ok" if cap == 98 else "error")


@pytest.mark.parametrize("cap", [10, 11, 12])
def test_max_value_bytes_counts_the_same(cap: int) -> None:
    body = BODIES["usual"]  # its longest key or value: "Completed", 11 bytes with quotes
    assert _scan(body, None, max_value_bytes=cap) == _scan(body, 1, max_value_bytes=cap)


@pytest.mark.parametrize("cap", [0, 1])
def test_max_results_counts_the_same(cap: int) -> None:
    body = BODIES["usual"]
    whole = _scan(body, None, max_results=cap)
    assert whole == _scan(body, 1, max_results=cap)
    assert whole[0] == ("ok" if cap else "error")
