"""The synthesised WAV: format, duration, audibility, determinism, size knob, watermark.

The tones' own properties are tested with ``speech=False``; speech is tested in
``test_speech.py``. Sized results are always tones.
"""

from __future__ import annotations

import io
import itertools
import math
import struct
import wave

import pybase64
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotts.emulator import WATERMARK, synthesize
from aiotts.emulator._audio import base64_runs, runs_length, wav_length


def samples(wav: bytes) -> list[int]:
    data = wav[44:]
    return [int.from_bytes(data[i : i + 3], "little", signed=True) for i in range(0, len(data), 3)]


def rms(values: list[int]) -> float:
    return math.sqrt(sum(v * v for v in values) / len(values))


def test_canonical_header_mono_22050_24bit() -> None:
    wav = synthesize("Read this text aloud")
    riff, riff_size, wave_id, fmt, fmt_size, pcm, channels, rate, byte_rate, align, bits = (
        struct.unpack_from("<4sI4s4sIHHIIHH", wav)
    )
    data_id, data_size = struct.unpack_from("<4sI", wav, 36)
    assert (riff, wave_id, fmt, data_id) == (b"RIFF", b"WAVE", b"fmt ", b"data")
    assert (fmt_size, pcm, channels, rate, byte_rate, align, bits) == (
        16,
        1,
        1,
        22050,
        66150,
        3,
        24,
    )
    assert data_size == len(wav) - 44
    assert riff_size == len(wav) - 8
    with wave.open(io.BytesIO(wav)) as reader:
        assert reader.getnchannels() == 1
        assert reader.getframerate() == 22050
        assert reader.getsampwidth() == 3
        assert reader.getnframes() * 3 == data_size


@pytest.mark.parametrize("length", [1, 15, 30, 151, 500])
def test_one_second_per_fifteen_characters(length: int) -> None:
    wav = synthesize("a" * length, speech=False)
    seconds = (len(wav) - 44) / 66150
    assert seconds == pytest.approx(length / 15)
    assert wav_length("a" * length, speech=False) == len(wav)
    assert wav_length("a" * length) == len(synthesize("a" * length))


def test_audible_and_deterministic() -> None:
    first = synthesize("Hello, world.", speech=False)
    assert first == synthesize("Hello, world.", speech=False)
    values = samples(first)
    assert rms(values) > 0.05 * 2**23  # far from silence
    assert max(values) < 2**23
    assert min(values) >= -(2**23)


def test_whitespace_alone_is_not_silence() -> None:
    assert rms(samples(synthesize("   ", speech=False))) > 0


def test_different_texts_sound_different() -> None:
    texts = ["abc", "abd", "cba", "ABC", "hello", "world"]
    audio = {synthesize(t, speech=False) for t in texts}
    assert len(audio) == len(texts)
    # Not just different bytes: a different letter changes that segment's pitch.
    a, b = samples(synthesize("a", speech=False)), samples(synthesize("b", speech=False))
    crossings_a = sum(1 for x, y in itertools.pairwise(a) if x < 0 <= y)
    crossings_b = sum(1 for x, y in itertools.pairwise(b) if x < 0 <= y)
    assert crossings_a != crossings_b


def test_watermark_is_spoken_in_trial_audio() -> None:
    plain = synthesize("Some text", speech=False)
    trial = synthesize("Some text", watermark=True, speech=False)
    spoken_mark = synthesize(WATERMARK, speech=False)[44:]
    assert spoken_mark in trial
    assert spoken_mark not in plain
    assert plain[44:] in trial
    assert len(trial) > len(plain)


@pytest.mark.parametrize("size", [47, 48, 49, 100, 100_000, 1_000_001])
def test_size_knob_gives_that_many_bytes_in_whole_samples(size: int) -> None:
    wav = synthesize("Sized", size=size)
    assert len(wav) == 44 + (size - 44) // 3 * 3
    assert len(wav) == wav_length("Sized", size=size)
    with wave.open(io.BytesIO(wav)) as reader:
        assert reader.getnframes() == (len(wav) - 44) // 3
    # Longer than the text: the text's audio repeats; shorter: it is cut.
    natural = synthesize("Sized", speech=False)[44:]
    assert wav[44:] == (natural * (len(wav) // len(natural) + 1))[: len(wav) - 44]


def test_size_knob_rejects_sizes_without_a_sample() -> None:
    with pytest.raises(ValueError, match="at least 47"):
        synthesize("x", size=46)


def test_thirty_megabytes() -> None:
    wav = synthesize("Big result", size=30_000_000)
    assert len(wav) == 29_999_999  # 44 + whole samples
    assert struct.unpack_from("<I", wav, 40)[0] == len(wav) - 44


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(min_size=1, max_size=40),
    size=st.one_of(st.none(), st.integers(min_value=47, max_value=400_000)),
    watermark=st.booleans(),
)
def test_base64_runs_are_the_base64_of_the_wav(
    text: str, size: int | None, watermark: bool
) -> None:
    runs = base64_runs(text, size=size, watermark=watermark)
    joined = b"".join(piece * times for piece, times in runs)
    assert runs_length(runs) == len(joined)
    assert joined == pybase64.b64encode(synthesize(text, size=size, watermark=watermark))


def test_base64_runs_of_thirty_megabytes_are_small() -> None:
    runs = base64_runs("Big result", size=30_000_000)
    assert sum(len(piece) for piece, _ in runs) < 1_000_000
    assert runs_length(runs) == 4 * math.ceil(29_999_999 / 3)
