"""The token against the emulator: single flight, refresh, 401 replay, failures."""

from __future__ import annotations

import logging

import anyio
import pytest

from aiotts import CredentialsError, TokenRateLimitedError, TTSClient
from aiotts.emulator import Emulator, EmulatorConfig, ManualClock
from tests.helpers import FAST_RETRY, client_for

pytestmark = pytest.mark.anyio


async def test_a_thousand_concurrent_calls_send_one_token_request(emulator: Emulator) -> None:
    task_id = emulator.create_tasks(["one token"])[0]
    async with client_for(emulator) as client, anyio.create_task_group() as tg:
        for _ in range(1000):
            tg.start_soon(client.status, task_id)
    stats = emulator.stats()
    assert stats.token_requests == 1
    assert stats.count("status", 200) == 1000


async def test_a_rejected_token_is_replaced_and_the_request_replayed(emulator: Emulator) -> None:
    task_id = emulator.create_tasks(["replay"])[0]
    async with client_for(emulator) as client:
        await client.status(task_id)
        emulator.expire_tokens()
        result = await client.status(task_id)
    assert result.task_id == task_id
    stats = emulator.stats()
    assert stats.token_requests == 2
    assert stats.count("status", 401) == 1
    assert stats.count("status", 200) == 2


async def test_many_requests_rejected_together_fetch_one_new_token(emulator: Emulator) -> None:
    task_id = emulator.create_tasks(["herd"])[0]
    async with client_for(emulator) as client:
        await client.status(task_id)
        emulator.expire_tokens()
        async with anyio.create_task_group() as tg:
            for _ in range(200):
                tg.start_soon(client.status, task_id)
    stats = emulator.stats()
    assert stats.token_requests == 2  # the 401s all name the same old token
    assert stats.count("status", 200) == 201


async def test_a_token_expiring_every_two_seconds_surfaces_no_401() -> None:
    clock = ManualClock()  # half a second of the server's time passes between rounds
    config = EmulatorConfig(token_lifetime=2, pending_seconds=0, processing_seconds=0)
    async with Emulator(config, clock=clock) as emu:
        ids = emu.create_tasks(10)
        async with client_for(emu) as client:
            for _ in range(25):
                async with anyio.create_task_group() as tg:
                    for task_id in ids:
                        tg.start_soon(client.status, task_id)
                clock.advance(0.5)
        stats = emu.stats()
    assert stats.token_requests >= 6  # refreshed again and again, never surfaced as an error
    assert stats.count("status", 200) == 250


async def test_bad_credentials_fail_once_for_every_waiter(emulator: Emulator) -> None:
    task_id = emulator.create_tasks(["x"])[0]
    failures: list[BaseException] = []
    async with TTSClient("nobody", "wrong", base_url=emulator.url, retry=FAST_RETRY) as client:

        async def call() -> None:
            try:
                await client.status(task_id)
            except CredentialsError as exc:
                failures.append(exc)

        async with anyio.create_task_group() as tg:
            for _ in range(100):
                tg.start_soon(call)
    assert len(failures) == 100
    assert emulator.stats().token_requests == 1
    message = str(failures[0])
    assert "refused the credentials" in message and "wrong" not in message


async def test_a_token_429_honours_retry_after(emulator: Emulator) -> None:
    for _ in range(6):  # more than five failures lock the pair out
        async with TTSClient(emulator.client_id, "wrong", base_url=emulator.url) as client:
            with pytest.raises(CredentialsError):
                await client.status("x")
    async with TTSClient(emulator.client_id, "wrong", base_url=emulator.url) as client:
        with pytest.raises(TokenRateLimitedError) as caught:
            await client.status("x")
        with pytest.raises(TokenRateLimitedError):
            await client.status("x")  # remembered: no second request
    assert caught.value.retry_after == pytest.approx(600, abs=2)
    assert emulator.stats().token_requests == 7


async def test_secret_and_token_never_reach_logs_reprs_or_errors(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    task_id = emulator.create_tasks(["secret"])[0]
    async with client_for(emulator) as client:
        await client.fetch(task_id)
        emulator.expire_tokens()
        await client.status(task_id)
        token = client._session.tokens.current
        assert token is not None
        texts = [repr(client), repr(client._session), repr(token), caplog.text]
    async with TTSClient(emulator.client_id, "wrong-secret-xyz", base_url=emulator.url) as bad:
        with pytest.raises(CredentialsError) as caught:
            await bad.status(task_id)
    texts += [str(caught.value), repr(caught.value), caplog.text]
    for text in texts:
        assert emulator.client_secret not in text
        assert token.value not in text
        assert "wrong-secret-xyz" not in text
