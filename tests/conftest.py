"""Shared test set-up: every async test runs on asyncio through anyio's pytest plugin."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aiotts import Limits, TTSClient
from aiotts.emulator import Emulator, EmulatorConfig
from tests.helpers import client_for


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """An emulator on 127.0.0.1 whose tasks complete at once, with no faults."""
    async with Emulator(EmulatorConfig(pending_seconds=0, processing_seconds=0)) as emu:
        yield emu


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[TTSClient]:
    async with client_for(emulator, limits=Limits(polls=32)) as client:
        yield client
