"""Benchmark the streaming scanner against whole-body decoding, in one run.

Bodies are result envelopes around a WAV-sized random payload (44-byte header + random
samples), Base64 in ``results[0].data``: about 3 MB and 30 MB of body, plain, and an
escaped variant where every ``/`` is written ``\\/`` and every ``+`` ``\\u002B``.

Rates are MB/s of body bytes (1 MB = 10**6 bytes), best of several repetitions:

* ``pybase64 whole buffer``: ``pybase64.b64decode`` of the data string alone, already
  cut out of the body (the ceiling: no JSON at all);
* ``pybase64 in 256 KiB runs``: the same, in runs of 256 KiB (the floor for any decoder
  that gets the body in chunks of that size; for information);
* ``orjson + pybase64``: ``orjson.loads`` of the whole body, then ``pybase64.b64decode`` of
  ``results[0].data`` (what a client does that is not streaming);
* ``scanner, N KiB``: ``EnvelopeScanner.feed`` over chunks of N KiB, then ``finish()``.
  Chunks are cut before the clock starts, as the HTTP client hands them over.

Peak extra memory: ``tracemalloc`` around the feed loop over 256 KiB chunks that were cut
before tracing began, so the input chunk is not counted: the peak is what the scanner
itself allocates and holds, including the decoded piece of the current chunk (the caller
drops each list of pieces before the next feed, as the client does once it wrote them).

Run: ``python benchmarks/bench_decode.py`` (``--quick``: the 3 MB body only, fewer runs).
Exits 1 if a target fails.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
import tracemalloc
from collections.abc import Callable

import orjson
import pybase64

from aiotts._decode import EnvelopeScanner
from aiotts.emulator._audio import wav_header

KIB = 1024
MB = 1_000_000

# Targets (on unescaped bodies, 256 KiB chunks).
MIN_RATE_VS_PYBASE64 = 0.5
MIN_SPEEDUP_VS_ORJSON = 5.0
MAX_EXTRA_MEMORY = 1024 * 1024


def wav(size: int) -> bytes:
    """A canonical mono 22,050 Hz 24-bit PCM WAV of ``size`` bytes, random samples."""
    data = size - 44
    header = wav_header(data)
    return header + os.urandom(data)


def envelope(audio: bytes, escaped: bool) -> bytes:
    data = base64.b64encode(audio)
    if escaped:
        data = data.replace(b"/", b"\\/").replace(b"+", b"\\u002B")
    return (
        b'{"id":"TTSb4705-728d-4258-8cca-b49fb7921aa1","responseStatusCode":"Ok",'
        b'"taskStatus":"Completed","results":[{"type":"WavFile","data":"'
        + data
        + b'"}],"error":null}'
    )


def best(run: Callable[[], object], repeat: int) -> float:
    """The shortest of ``repeat`` timings of ``run``, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def scan_chunks(chunks: list[bytes]) -> int:
    """Feed the chunks; return the decoded byte count."""
    scanner = EnvelopeScanner()
    total = 0
    for chunk in chunks:
        for piece in scanner.feed(chunk):
            total += len(piece.data)
    scanner.finish()
    return total


def scan_to_bytes(body: bytes, size: int) -> bytes:
    scanner = EnvelopeScanner()
    out = bytearray()
    for i in range(0, len(body), size):
        for piece in scanner.feed(body[i : i + size]):
            out += piece.data
    scanner.finish()
    return bytes(out)


def peak_memory(chunks: list[bytes]) -> int:
    """Peak bytes the scanner allocates and holds while fed ``chunks`` (not counted)."""
    scanner = EnvelopeScanner()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        for chunk in chunks:
            pieces = scanner.feed(chunk)
            del pieces
        scanner.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base


def cut(body: bytes, size: int) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 MB body only, fewer runs")
    args = parser.parse_args()
    sizes = [3 * MB] if args.quick else [3 * MB, 30 * MB]
    repeat = 3 if args.quick else 7

    rows: list[tuple[str, str, float, float]] = []
    checks: list[tuple[str, str, bool]] = []

    for body_size in sizes:
        audio = wav(body_size * 3 // 4 - 100)
        for escaped in (False, True):
            body = envelope(audio, escaped)
            label = f"{len(body) / MB:.1f} MB {'escaped' if escaped else 'plain'}"
            data = orjson.loads(body)["results"][0]["data"].encode()
            mb = len(body) / MB

            def whole(data: bytes = data) -> bytes:
                return pybase64.b64decode(data, validate=True)

            def loads(body: bytes = body) -> bytes:
                doc = orjson.loads(body)
                return pybase64.b64decode(doc["results"][0]["data"], validate=True)

            assert whole() == audio
            assert loads() == audio
            t_whole = best(whole, repeat)
            t_loads = best(loads, repeat)
            if not escaped:
                rows.append((label, "pybase64 whole buffer (data only)", mb / t_whole, t_whole))
                runs = cut(data, 256 * KIB)

                def chunked(runs: list[bytes] = runs) -> None:
                    for run in runs:
                        pybase64.b64decode(run, validate=True)

                t_runs = best(chunked, repeat)
                rows.append((label, "pybase64 in 256 KiB runs (data only)", mb / t_runs, t_runs))
            rows.append((label, "orjson.loads + pybase64", mb / t_loads, t_loads))

            rates = {}
            for kib in (256, 64):
                chunks = cut(body, kib * KIB)
                assert scan_chunks(chunks) == len(audio)
                assert scan_to_bytes(body, kib * KIB) == audio
                t_scan = best(lambda chunks=chunks: scan_chunks(chunks), repeat)
                rates[kib] = mb / t_scan
                rows.append((label, f"scanner, {kib} KiB chunks", mb / t_scan, t_scan))
                if kib == 256 and not escaped:
                    ratio = t_whole / t_scan
                    speedup = t_loads / t_scan
                    checks.append(
                        (
                            f"{label}: scanner 256 KiB / pybase64 whole-buffer rate",
                            f"{ratio:.2f} (target >= {MIN_RATE_VS_PYBASE64})",
                            ratio >= MIN_RATE_VS_PYBASE64,
                        )
                    )
                    checks.append(
                        (
                            f"{label}: scanner 256 KiB speed-up over orjson + pybase64",
                            f"{speedup:.1f}x (target >= {MIN_SPEEDUP_VS_ORJSON}x)",
                            speedup >= MIN_SPEEDUP_VS_ORJSON,
                        )
                    )
            peak = peak_memory(cut(body, 256 * KIB))
            checks.append(
                (
                    f"{label}: scanner peak extra memory, 256 KiB chunks",
                    f"{peak / KIB:.0f} KiB (target < {MAX_EXTRA_MEMORY // KIB} KiB)",
                    peak < MAX_EXTRA_MEMORY,
                )
            )

    # One-byte splits: correctness only, on a small body of each kind.
    small = wav(15_000)
    for escaped in (False, True):
        body = envelope(small, escaped)
        start = time.perf_counter()
        ok = scan_to_bytes(body, 1) == small
        took = time.perf_counter() - start
        kind = "escaped" if escaped else "plain"
        checks.append(
            (
                f"{len(body) / 1000:.0f} KB {kind}: scanner, 1-byte chunks",
                f"ran {len(body)} feeds in {took * 1000:.0f} ms, "
                + ("audio matched" if ok else "AUDIO DIFFERS"),
                ok,
            )
        )

    width = max(len(r[0]) for r in rows)
    print(f"{'body':<{width}}  {'method':<36} {'MB/s':>9} {'ms':>9}")
    for label, method, rate, seconds in rows:
        print(f"{label:<{width}}  {method:<36} {rate:>9.0f} {seconds * 1000:>9.2f}")
    print()
    width = max(len(c[0]) for c in checks)
    for what, value, ok in checks:
        print(f"{what:<{width}}  {value:<40} {'PASS' if ok else 'FAIL'}")
    print(
        f"\nbest of {repeat} runs; Python {sys.version.split()[0]}, "
        f"orjson {orjson.__version__}, pybase64 {pybase64.get_version()}"
    )
    return 0 if all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
