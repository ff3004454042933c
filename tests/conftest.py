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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long runs (the soak, thousands of tasks) are left out of the coverage measure when
    it is on: they cover no line the rest of the suite misses, and tracing them would
    add a third to the suite's time."""
    if not config.pluginmanager.hasplugin("_cov"):
        return
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker("no_cover")
