"""The Emulator's lifecycle: single use, URL, ports, and use before start and after close."""

from __future__ import annotations

import aiohttp
import pytest

from aiotts.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Emulator, TaskState

from .conftest import TRIAL

pytestmark = pytest.mark.anyio


async def test_url_only_while_serving() -> None:
    emu = Emulator()
    with pytest.raises(RuntimeError, match="not serving"):
        _ = emu.url
    assert "not started" in repr(emu)
    async with emu:
        assert emu.url == f"http://127.0.0.1:{emu.port}"
        assert emu.port > 0
        assert emu.url in repr(emu)
    assert "tasks=0" in repr(emu)


async def test_single_use() -> None:
    emu = Emulator()
    async with emu:
        with pytest.raises(RuntimeError, match="started once"):
            await emu.start()
    await emu.aclose()  # idempotent
    with pytest.raises(RuntimeError, match="started once"):
        await emu.start()


async def test_usable_before_start_and_after_close() -> None:
    emu = Emulator()
    emu.set_faults(escape_share=1.0)
    [task_id] = emu.create_tasks(["early"], ready_after=0)
    async with emu, aiohttp.ClientSession() as http:
        async with http.get(emu.url + TRIAL, params={"id": task_id}) as resp:
            raw = await resp.read()
        assert b"\\/" in raw or b"\\u002B" in raw
    assert emu.record(task_id).fetches == 1
    assert emu.stats().count("trial_fetch", 200) == 1
    assert emu.record(task_id).state is TaskState.COMPLETED


async def test_default_credentials() -> None:
    emu = Emulator()
    assert (emu.client_id, emu.client_secret) == (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
    assert DEFAULT_CLIENT_ID == "aiotts-emulator"


async def test_fixed_port_and_wildcard_host() -> None:
    async with Emulator(host="0.0.0.0") as first:
        port = first.port
        assert first.url == f"http://127.0.0.1:{port}"
    async with Emulator(port=port) as second:
        assert second.port == port


async def test_bind_failure_raises_and_closes() -> None:
    async with Emulator() as first:
        second = Emulator(port=first.port)
        with pytest.raises(OSError, match="address already in use"):
            await second.start()
        with pytest.raises(RuntimeError):
            _ = second.url
