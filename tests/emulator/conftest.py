"""Fixtures for the emulator's own tests: a server on 127.0.0.1:0 and a plain aiohttp client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from aiotts.emulator import Emulator, EmulatorConfig, ManualClock

API = "/v5.0/ocr/ConvertTextToSpeech"
TRIAL = "/v5.0/ocr/ConvertTextToSpeechTrial"
STATUS = "/v5.0/ocr/Utilities/GetTaskStatus"
TOKEN = "/connect/token"

INSTANT = EmulatorConfig(pending_seconds=0, processing_seconds=0)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


@pytest.fixture
async def emu(clock: ManualClock) -> AsyncIterator[Emulator]:
    """An emulator on a manual clock: tasks are Pending 1 s, Processing 1 s."""
    config = EmulatorConfig(pending_seconds=1, processing_seconds=1)
    async with Emulator(config, clock=clock) as emulator:
        yield emulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get_token(http: aiohttp.ClientSession, emu: Emulator) -> str:
    form = {
        "grant_type": "client_credentials",
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
    }
    async with http.post(emu.url + TOKEN, data=form) as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
    token: str = body["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
