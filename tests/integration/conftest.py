"""Integration fixtures: a real emulator on 127.0.0.1 and clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aiotts import Limits, PollPolicy, RetryPolicy, TTSClient
from aiotts.emulator import Emulator, EmulatorConfig

FAST_RETRY = RetryPolicy(first_delay=0.01, max_delay=0.05, max_attempts=8, max_time=30)
FAST_POLL = PollPolicy(
    first_delay=0.05, growth=1.5, max_delay=0.3, processing_delay=0.05, min_delay=0.01
)


def client_for(emu: Emulator, **options: Any) -> TTSClient:
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("poll", FAST_POLL)
    if options.get("trial"):
        return TTSClient(base_url=emu.url, **options)
    return TTSClient(emu.client_id, emu.client_secret, base_url=emu.url, **options)


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".part")]


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """Tasks complete at once; no faults."""
    async with Emulator(EmulatorConfig(pending_seconds=0, processing_seconds=0)) as emu:
        yield emu


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[TTSClient]:
    async with client_for(emulator, limits=Limits(polls=32)) as client:
        yield client
