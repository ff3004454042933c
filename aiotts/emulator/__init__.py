"""The Aspose.OCR Cloud text-to-speech API, emulated: a real ``aiohttp.web`` server for tests.

Every endpoint of the contract (token, submit, fetch, cancel, trial, task status) with the
service's statuses and bodies, tasks that move ``Pending -> Processing -> Completed`` on a
clock you can inject, deterministic audible WAV results, and knobs for everything that goes
wrong in production: latency, 5xx, 429, cut and trickled bodies, odd-but-valid encodings and
outright bad answers.

In the same event loop::

    async with Emulator(EmulatorConfig(pending_seconds=0, processing_seconds=0.1)) as emu:
        ...  # talk to emu.url with emu.client_id / emu.client_secret
        assert emu.stats().count("fetch", 200) > 0

In its own process: :class:`EmulatorProcess`, or ``aiotts emulator --port 8080``. An admin
API under ``/_emulator/`` (stats, tasks, audio, faults, clock) drives either.
"""

from __future__ import annotations

from aiotts.emulator._audio import WATERMARK, synthesize
from aiotts.emulator._clock import ManualClock
from aiotts.emulator._config import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    Duration,
    EmulatorConfig,
    Faults,
)
from aiotts.emulator._process import EmulatorProcess
from aiotts.emulator._server import Emulator
from aiotts.emulator._snapshots import Endpoint, Stats, TaskRecord, TaskState

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "WATERMARK",
    "Duration",
    "Emulator",
    "EmulatorConfig",
    "EmulatorProcess",
    "Endpoint",
    "Faults",
    "ManualClock",
    "Stats",
    "TaskRecord",
    "TaskState",
    "synthesize",
]
