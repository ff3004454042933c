"""A data-pipeline stage: finished WAV files flow to the next stage as they land.

    python examples/pipeline.py

``finished_files`` is an async generator: downstream code starts on the first file while
the rest are still being converted, and never holds more than one outcome at a time.
Without credentials it submits a few texts to an emulator on this machine.
"""

from __future__ import annotations

import sys
import tempfile
import wave
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import anyio

from aiotts import TTSClient

from _common import service

TEXTS = [
    "The pipeline starts on the first file.",
    "It does not wait for the whole batch.",
    "Each file is whole when it arrives.",
    "A temporary file never reaches the next stage.",
    "Failures are reported, not passed on.",
]


async def finished_files(client: TTSClient, ids: Iterable[str], out: Path) -> AsyncIterator[Path]:
    """Yield each finished file as soon as it lands; report failures on stderr."""
    async for outcome in client.fetch_many(ids, out):
        if outcome.ok:
            for path in outcome.files:
                yield path
        else:
            print(f"skipped {outcome.task_id}: {outcome.error}", file=sys.stderr)


def seconds_of_audio(path: Path) -> float:
    """The next stage: here it measures the audio; in real life it might transcode it."""
    with wave.open(str(path)) as wav:
        return float(wav.getnframes() / wav.getframerate())


async def main() -> int:
    out = Path(tempfile.mkdtemp(prefix="aiotts-pipeline-"))
    async with service() as (client, _emulator):
        ids = [await client.submit(text) for text in TEXTS]
        total = 0.0
        async for path in finished_files(client, ids, out):
            seconds = seconds_of_audio(path)
            total += seconds
            print(f"{path.name}: {seconds:.2f} s of audio")
    print(f"{total:.2f} s of audio in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
