"""Shared by the examples: a client for the real service, or an emulator on this machine.

With ``ASPOSE_CLIENT_ID`` and ``ASPOSE_CLIENT_SECRET`` set, the examples talk to the real
service (or to ``AIOTTS_BASE_URL``). Without them, they start the emulator in-process and
create some tasks in it, so they run with no account and no network.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from aiotts import TTSClient
from aiotts.emulator import Emulator, EmulatorConfig


@contextlib.asynccontextmanager
async def service() -> AsyncIterator[tuple[TTSClient, Emulator | None]]:
    """A client, and the emulator it talks to (None when it talks to the real service)."""
    if os.environ.get("ASPOSE_CLIENT_ID") and os.environ.get("ASPOSE_CLIENT_SECRET"):
        base_url = os.environ.get("AIOTTS_BASE_URL", "https://api.aspose.cloud")
        async with TTSClient(base_url=base_url) as client:
            yield client, None
        return
    config = EmulatorConfig(pending_seconds=(0.2, 1.0), processing_seconds=(0.2, 1.0))
    async with (
        Emulator(config) as emulator,
        TTSClient(emulator.client_id, emulator.client_secret, base_url=emulator.url) as client,
    ):
        yield client, emulator
