"""Real speech for the emulator's results, from eSpeak NG when the ``speech`` extra is installed.

``pip install 'aiotts[speech]'`` brings ``espeakng-loader``, a wheel that ships libespeak-ng
and its voice data (no system package). This module drives the library through ctypes in
its synchronous retrieval mode: ``espeak_Synth`` calls back with 16-bit samples, which are
resampled to 22,050 Hz if the voice speaks at another rate and widened to the service's
24-bit PCM.

Invariants:

* eSpeak keeps global state and is not thread-safe: every call into it holds ``_LOCK``, and
  the callback only appends to the buffer of the call in progress.
* The engine is loaded once; if the extra is missing or fails to load or initialise, that
  is remembered and :func:`speak` answers ``None`` from then on (the caller falls back to
  tones), without trying again for every text.
* The same text always gives the same bytes (the voice keeps no state between calls, see
  ``_VOICE``), and each text is synthesised once while its audio fits the cache.
"""

from __future__ import annotations

import array
import ctypes
import importlib
import logging
import sys
import threading
from typing import Any

from aiotts.emulator._cache import ByteLRU

__all__ = ["available", "speak"]

_log = logging.getLogger(__name__)

SAMPLE_RATE = 22_050  # the service's rate; eSpeak's English voices speak at it too
_CACHE_BYTES = 64 * 1024 * 1024

# From espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0
# English with a variant whose flutter, roughness and echo are 0: eSpeak's default voice
# carries pitch flutter and echo from one call to the next, so the same text would not
# give the same samples twice; with these off it does, in any order and in any process.
_VOICE = b"en+michel"
_SILENT_PEAK = 64  # 16-bit: a result quieter than this everywhere is no speech at all

_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Engine:
    """The loaded library, its sample rate, and the buffer of the synthesis in progress."""

    def __init__(self, lib: Any, rate: int) -> None:
        self.lib = lib
        self.rate = rate
        self.chunks: list[bytes] = []
        # Kept on the object: ctypes must not free the callback while eSpeak holds it.
        self.callback = _Callback(self._collect)
        lib.espeak_SetSynthCallback(self.callback)

    def _collect(self, wav: Any, samples: int, _events: Any) -> int:
        if samples > 0 and wav:
            self.chunks.append(ctypes.string_at(wav, samples * 2))
        return 0  # go on

    def synth(self, text: str) -> bytes:
        """16-bit little-endian PCM at ``self.rate`` for ``text``; caller holds ``_LOCK``."""
        encoded = text.encode("utf-8") + b"\0"
        self.chunks = []
        status = self.lib.espeak_Synth(
            encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        if status != _EE_OK:
            raise RuntimeError(f"espeak_Synth returned {status}")
        data, self.chunks = b"".join(self.chunks), []
        return data


_LOCK = threading.Lock()
_engine: _Engine | None = None
_load_failed = False
_cache: ByteLRU[bytes] = ByteLRU(_CACHE_BYTES)


def _load() -> _Engine | None:
    """The engine, loading it on first use; None if it cannot be had. Caller holds ``_LOCK``."""
    global _engine, _load_failed
    if _engine is not None or _load_failed:
        return _engine
    try:
        loader = importlib.import_module("espeakng_loader")
        lib = ctypes.CDLL(loader.get_library_path())
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_Callback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        data_path = loader.get_data_path().encode(sys.getfilesystemencoding())
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize returned {rate}")
        if lib.espeak_SetVoiceByName(_VOICE) != _EE_OK:
            raise RuntimeError(f"eSpeak has no voice {_VOICE.decode()}")
        _engine = _Engine(lib, rate)
    except Exception as exc:  # any failure of an optional extra means: use tones
        _load_failed = True
        _log.info("no speech synthesis (%s: %s); results are tones", type(exc).__name__, exc)
    return _engine


def available() -> bool:
    """Whether :func:`speak` can produce speech in this process (loads the engine)."""
    with _LOCK:
        return _load() is not None


def speak(text: str) -> bytes | None:
    """``text`` spoken, as 24-bit mono PCM at 22,050 Hz (no header), or None.

    None when the speech extra is missing or failed, or when eSpeak makes nothing audible of
    ``text`` (punctuation or spaces alone): the caller then renders tones.
    """
    with _LOCK:
        cached = _cache.get(text)
        if cached is not None:
            return cached
        engine = _load()
        if engine is None:
            return None
        try:
            pcm16 = engine.synth(text)
        except Exception as exc:
            _log.warning("speech synthesis failed (%s); this result is tones", exc)
            return None
        rate = engine.rate
    samples = array.array("h")
    samples.frombytes(pcm16[: len(pcm16) // 2 * 2])
    if sys.byteorder == "big":
        samples.byteswap()
    if not samples or (max(samples) < _SILENT_PEAK and -min(samples) < _SILENT_PEAK):
        return None
    if rate != SAMPLE_RATE:
        samples = _resample(samples, rate, SAMPLE_RATE)
    pcm24 = _widen(samples)
    with _LOCK:
        _cache.put(text, pcm24, len(pcm24))
    return pcm24


def _widen(samples: array.array[int]) -> bytes:
    """16-bit samples as 24-bit little-endian: each sample's two bytes above a zero byte."""
    pcm16 = samples.tobytes() if sys.byteorder == "little" else _little(samples)
    out = bytearray(len(samples) * 3)
    out[1::3] = pcm16[0::2]
    out[2::3] = pcm16[1::2]
    return bytes(out)


def _little(samples: array.array[int]) -> bytes:
    swapped = array.array("h", samples)
    swapped.byteswap()
    return swapped.tobytes()


def _resample(samples: array.array[int], source: int, target: int) -> array.array[int]:
    """Linear interpolation from ``source`` Hz to ``target`` Hz (pure, deterministic)."""
    count = max(1, len(samples) * target // source)
    last = len(samples) - 1
    out = array.array("h", bytes(2 * count))
    for n in range(count):
        position = n * source / target
        left = min(int(position), last)
        right = min(left + 1, last)
        fraction = position - left
        out[n] = round(samples[left] + (samples[right] - samples[left]) * fraction)
    return out
