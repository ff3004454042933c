"""Speech in the emulator's results (eSpeak NG through the ``speech`` extra), and its fallback.

The dev set-up installs the extra, so these tests drive the real library. Its absence is
simulated in a subprocess that cannot import ``espeakng_loader``.
"""

from __future__ import annotations

import array
import hashlib
import io
import math
import subprocess
import sys
import threading
import wave

import pytest

from aiotts.emulator import WATERMARK, _speech, synthesize
from aiotts.emulator._audio import base64_runs, tones, wav_length
from aiotts.emulator._cache import ByteLRU

SHORT = "Hello."
LONG = "Hello. This sentence goes on for quite a bit longer than the first one did."


def samples(wav: bytes) -> list[int]:
    data = wav[44:]
    return [int.from_bytes(data[i : i + 3], "little", signed=True) for i in range(0, len(data), 3)]


def rms(values: list[int]) -> float:
    return math.sqrt(sum(v * v for v in values) / len(values))


@pytest.fixture
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_speech, "_cache", ByteLRU(_speech._CACHE_BYTES))


def test_the_speech_extra_is_installed_here() -> None:
    assert _speech.available(), "install the speech extra: pip install -e '.[speech]' (make does)"


def test_speech_is_in_the_service_format_and_not_silent() -> None:
    wav = synthesize(LONG)
    with wave.open(io.BytesIO(wav)) as reader:
        assert (reader.getnchannels(), reader.getframerate(), reader.getsampwidth()) == (
            1,
            22_050,
            3,
        )
        assert reader.getnframes() * 3 == len(wav) - 44
    assert len(wav) == wav_length(LONG)
    values = samples(wav)
    assert rms(values) > 0.02 * 2**23
    # eSpeak's 16-bit samples are widened, not rescaled: the low byte of each is zero.
    assert set(wav[44::3]) == {0}
    assert wav != synthesize(LONG, speech=False)  # speech, not the tones


def test_length_grows_with_the_text() -> None:
    lengths = [len(synthesize(" ".join([SHORT] * n))) for n in (1, 3, 9)]
    assert lengths[0] < lengths[1] < lengths[2]
    assert lengths[2] - 44 > 2 * (lengths[1] - 44)
    assert len(synthesize(LONG)) > len(synthesize(SHORT))


def test_trial_audio_is_longer_by_the_watermark() -> None:
    plain, trial = synthesize(SHORT), synthesize(SHORT, watermark=True)
    assert len(trial) - len(plain) > 0.5 * (len(synthesize(WATERMARK)) - 44)


def test_deterministic_across_processes(fresh_cache: None) -> None:
    here = hashlib.sha256(synthesize(LONG)).hexdigest()
    code = (
        "import hashlib; from aiotts.emulator import synthesize; "
        f"print(hashlib.sha256(synthesize({LONG!r})).hexdigest())"
    )
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert there.stdout.strip() == here


def test_threads_get_what_one_thread_gets(fresh_cache: None) -> None:
    texts = [f"Sentence number {n} of the threaded test." for n in range(12)]
    alone = {text: _speech.speak(text) for text in texts}
    _speech._cache = ByteLRU(_speech._CACHE_BYTES)
    together: dict[str, bytes | None] = {}

    def work(share: list[str]) -> None:
        for text in share:
            together[text] = _speech.speak(text)

    threads = [threading.Thread(target=work, args=(texts[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert together == alone
    assert all(audio for audio in alone.values())


def test_text_without_anything_to_say_is_tones() -> None:
    assert _speech.speak("...") is None
    assert synthesize("...") == synthesize("...", speech=False)
    assert rms(samples(synthesize("   "))) > 0


def test_sized_results_never_synthesise_speech(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(text: str) -> bytes | None:
        raise AssertionError(f"speech asked for a sized result: {text!r}")

    monkeypatch.setattr(_speech, "speak", refuse)
    wav = synthesize("Sized", size=100_000)
    assert wav[44:] == (tones("Sized") * 100)[: len(wav) - 44]
    assert len(base64_runs("Sized", size=30_000_000)) == 3
    assert wav_length("Sized", size=100_000) == len(wav)


def test_a_failing_engine_falls_back_to_tones(
    monkeypatch: pytest.MonkeyPatch, fresh_cache: None
) -> None:
    class Broken:
        rate = 22_050

        def synth(self, text: str) -> bytes:
            raise RuntimeError("espeak_Synth returned 1")

    monkeypatch.setattr(_speech, "_engine", Broken())
    assert _speech.speak("Anything at all.") is None
    assert synthesize("Anything at all.") == synthesize("Anything at all.", speech=False)


FALLBACK = """
import sys
sys.modules["espeakng_loader"] = None  # as if the speech extra were not installed
from aiotts.emulator import _speech, synthesize
from aiotts.emulator._audio import SEGMENT_BYTES
text = "Hello without the extra."
wav = synthesize(text)
assert not _speech.available()
assert wav == synthesize(text, speech=False)
assert len(wav) == 44 + len(text) * SEGMENT_BYTES
print("tones")
"""


def test_without_the_extra_results_are_tones() -> None:
    result = subprocess.run(
        [sys.executable, "-c", FALLBACK], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "tones"


def test_resampling_interpolates_linearly() -> None:
    source = array.array("h", [0, 100, 200, -200])
    assert list(_speech._resample(source, 11_025, 22_050)) == [0, 50, 100, 150, 200, 0, -200, -200]
    assert list(_speech._resample(source, 44_100, 22_050)) == [0, 200]
