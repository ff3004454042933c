"""An error no task can get past stops the whole batch: the Batch raises that error itself
(never a group), and every id it touched is recorded as aborted with the true cause."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from aiotts import (
    AuthenticationError,
    ConnectError,
    CredentialsError,
    OutcomeState,
    TTSClient,
    read_manifest,
)
from aiotts.emulator import Emulator, EmulatorConfig
from tests.helpers import FAST_POLL, FAST_RETRY

pytestmark = pytest.mark.anyio


async def test_refused_credentials_stop_the_batch_and_are_recorded(tmp_path: Path) -> None:
    async with Emulator(EmulatorConfig(pending_seconds=0, processing_seconds=0)) as emu:
        ids = emu.create_tasks(5)
        async with TTSClient(emu.client_id, "wrong", base_url=emu.url, retry=FAST_RETRY) as client:
            with pytest.raises(CredentialsError) as caught:
                await client.fetch_all(ids, tmp_path, manifest=tmp_path / "m.jsonl")
        assert emu.stats().count("token") == 1  # one refusal, not one per id
    assert type(caught.value) is CredentialsError
    entries = read_manifest(tmp_path / "m.jsonl")
    assert entries  # every id taken in so far, none dropped
    for entry in entries.values():
        assert entry.state is OutcomeState.ABORTED
        assert entry.error is not None and "refused the credentials" in entry.error


async def test_a_fresh_token_refused_stops_the_batch(tmp_path: Path) -> None:
    async with Emulator(EmulatorConfig(pending_seconds=0, processing_seconds=0)) as emu:
        ids = emu.create_tasks(3)
        emu.set_faults(always_401=True)
        async with TTSClient(
            emu.client_id, emu.client_secret, base_url=emu.url, retry=FAST_RETRY
        ) as client:
            with pytest.raises(AuthenticationError, match="401"):
                async for _ in client.fetch_many(ids, tmp_path, manifest=tmp_path / "m.jsonl"):
                    pass
    states = {e.state for e in read_manifest(tmp_path / "m.jsonl").values()}
    assert states == {OutcomeState.ABORTED}


async def test_an_unreachable_service_stops_the_batch(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with TTSClient(trial=True, base_url=url, retry=FAST_RETRY, poll=FAST_POLL) as client:
        with pytest.raises(ConnectError, match="cannot connect"):
            await client.fetch_all(["TTSa", "TTSb"], tmp_path, manifest=tmp_path / "m.jsonl")
    entries = read_manifest(tmp_path / "m.jsonl")
    assert {e.state for e in entries.values()} == {OutcomeState.ABORTED}
