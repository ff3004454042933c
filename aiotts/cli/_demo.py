"""``aiotts demo``: the whole job, against an emulator started in this process.

Turns a few hundred texts from a small built-in corpus into WAV files with
``client.synthesize`` (each task fetched as soon as it is submitted), with the progress
bar, writes them to a folder (``reading-001.wav``, ...) and prints the summary. It needs no account
and no network: the emulator listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import sys

from aiotts._client import TTSClient
from aiotts.cli._commands import print_summary, stderr_console
from aiotts.cli._synthesize import drive_synthesis
from aiotts.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Emulator, EmulatorConfig

__all__ = ["CORPUS", "demo", "demo_texts"]

CORPUS = (
    "The quick brown fox jumps over the lazy dog.",
    "A journey of a thousand miles begins with a single step.",
    "Every morning the harbour fills with the sound of gulls.",
    "Please keep your ticket until the end of the journey.",
    "The library opens at nine and closes at six on weekdays.",
    "Rain is expected in the afternoon, clearing by the evening.",
    "Your order has been shipped and will arrive on Thursday.",
    "Turn left at the second light, then follow the river.",
    "The meeting has moved to the small room on the third floor.",
    "Fresh bread is baked here every day before sunrise.",
    "Mind the gap between the train and the platform.",
    "The museum's new wing shows maps from five centuries.",
    "Water the tomatoes in the morning, never at noon.",
    "Thank you for calling; all our agents are busy right now.",
    "The bridge will be closed for repairs until next spring.",
    "Lanterns were lit along the canal as the sun went down.",
)

_ORDINALS = ("First", "Second", "Third", "Fourth", "Fifth", "Sixth")


def demo_texts(count: int) -> list[str]:
    """``count`` distinct texts: corpus sentences, numbered, some of them joined."""
    texts = []
    for index in range(count):
        sentence = CORPUS[index % len(CORPUS)]
        ordinal = _ORDINALS[(index // len(CORPUS)) % len(_ORDINALS)]
        text = f"{ordinal} reading, number {index + 1}. {sentence}"
        if index % 5 == 0:
            text += " " + CORPUS[(index * 7 + 3) % len(CORPUS)]
        texts.append(text)
    return texts


async def demo(args: argparse.Namespace) -> int:
    console = stderr_console()
    config = EmulatorConfig(
        pending_seconds=(0.2, 1.5), processing_seconds=(0.3, 1.5), seed=args.seed
    )
    async with Emulator(config) as emulator:
        console.print(f"emulator listening on {emulator.url} (no account, no network needed)")
        async with TTSClient(
            DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, base_url=emulator.url
        ) as client:
            texts = demo_texts(args.count)
            width = len(str(len(texts)))
            console.print(f"synthesizing {len(texts)} texts into {args.out}/")
            # The pipeline a user gets: each text submitted, its task fetched as soon as
            # its id exists, its file named after its key.
            synthesis = client.synthesize(
                ((f"reading-{n:0{width}d}", text) for n, text in enumerate(texts, start=1)),
                args.out,
                task_timeout=120,
                concurrency=32,
            )
            summary = await drive_synthesis(
                synthesis, total=len(texts), json_lines=False, show_progress=True
            )
    print_summary(summary, title="aiotts demo", folder=args.out, manifest=None)
    if summary.done == summary.total:
        print(f"{summary.done} WAV files are in {args.out}/ (mono, 22,050 Hz, 24-bit PCM)")
        return 0
    print(f"only {summary.done} of {summary.total} tasks finished", file=sys.stderr)
    return 1
