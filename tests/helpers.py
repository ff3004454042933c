"""Helpers shared by the integration and reliability tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiotts import PollPolicy, RetryPolicy, TTSClient
from aiotts.emulator import Emulator

FAST_RETRY = RetryPolicy(first_delay=0.01, max_delay=0.05, max_attempts=8, max_time=30)
FAST_POLL = PollPolicy(
    first_delay=0.05, growth=1.5, max_delay=0.3, processing_delay=0.05, min_delay=0.01
)


def client_for(emu: Emulator, **options: Any) -> TTSClient:
    """A client of ``emu`` with fast retries and polls (unless overridden)."""
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("poll", FAST_POLL)
    if options.get("trial"):
        return TTSClient(base_url=emu.url, **options)
    return TTSClient(emu.client_id, emu.client_secret, base_url=emu.url, **options)


def temp_files(folder: Path) -> list[Path]:
    """Temporary files left anywhere below ``folder``."""
    return [p for p in folder.rglob("*") if p.name.endswith(".part")]
