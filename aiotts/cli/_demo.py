"""``aiotts demo``: the whole job, against an emulator started in this process.

Submits a few hundred texts from a small built-in corpus, fetches them all with the
progress bar, writes the WAV files to a folder and prints the summary. It needs no account
and no network: the emulator listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import sys
import time

import anyio

from aiotts._client import TTSClient
from aiotts.cli._commands import print_summary, run_batch, stderr_console
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
            started = time.monotonic()
            ids: list[str] = []
            limit = anyio.Semaphore(32)

            async def submit_one(text: str) -> None:
                async with limit:
                    ids.append(await client.submit(text))

            async with anyio.create_task_group() as submits:
                for text in texts:
                    submits.start_soon(submit_one, text)
            console.print(
                f"submitted {len(ids)} texts in {time.monotonic() - started:.2f}s; "
                f"fetching into {args.out}/"
            )
            batch = client.fetch_many(ids, args.out, task_timeout=120)
            summary = await run_batch(
                batch, total=len(ids), description="fetching", json_lines=False
            )
    print_summary(summary, title="aiotts demo", folder=args.out, manifest=None)
    if summary.done == summary.total:
        print(f"{summary.done} WAV files are in {args.out}/ (mono, 22,050 Hz, 24-bit PCM)")
        return 0
    print(f"only {summary.done} of {summary.total} tasks finished", file=sys.stderr)
    return 1
