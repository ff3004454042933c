"""The decoding floor of benchmarks/compare.py (a) does the work it claims: the audio it
writes is exactly the answer's, however the body is cut into reads."""

from __future__ import annotations

import base64
import io
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from compare import StreamedAudio

AUDIO = random.Random(7).randbytes(301)


def answer(audio: bytes = AUDIO, status: str = "Completed") -> bytes:
    data = base64.b64encode(audio).decode()
    return (
        f'{{"id":"TTS1","responseStatusCode":"Ok","taskStatus":"{status}",'
        f'"results":[{{"type":"WavFile","data":"{data}"}}],"error":null}}'
    ).encode()


def decoded(pieces: list[bytes]) -> bytes:
    file = io.BytesIO()
    audio = StreamedAudio(file)
    for piece in pieces:
        audio.feed(piece)
    audio.finish()
    return file.getvalue()


def test_every_cut_of_the_body_gives_the_audio() -> None:
    body = answer()
    for cut in range(len(body) + 1):
        assert decoded([body[:cut], body[cut:]]) == AUDIO, cut


def test_a_body_in_many_small_reads_gives_the_audio() -> None:
    body = answer()
    for size in (1, 2, 3, 5, 7):
        assert decoded([body[i : i + size] for i in range(0, len(body), size)]) == AUDIO


def test_a_body_cut_inside_the_data_string_is_refused() -> None:
    body = answer()
    with pytest.raises(ValueError, match="ended early"):
        decoded([body[: body.index(b'"data":"') + 20]])


def test_an_answer_that_is_not_completed_is_refused() -> None:
    with pytest.raises(ValueError, match="not a Completed answer"):
        decoded([answer(status="Pending")])
