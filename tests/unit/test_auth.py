"""The token manager alone, with a fake token endpoint: single flight, refresh, invalidation."""

from __future__ import annotations

import anyio
import pytest

from aiotts._auth import TokenManager
from aiotts._errors import (
    AuthenticationError,
    CredentialsError,
    ServerError,
    TokenRateLimitedError,
)

pytestmark = pytest.mark.anyio


class Endpoint:
    def __init__(self, lifetime: float = 3600.0) -> None:
        self.now = 0.0
        self.calls = 0
        self.lifetime = lifetime
        self.failure: Exception | None = None
        self.gate: anyio.Event | None = None  # when set, each request waits for it

    def clock(self) -> float:
        return self.now

    async def fetch(self) -> tuple[str, float]:
        self.calls += 1
        await anyio.sleep(0.01)  # long enough for every caller to queue up
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return f"token-{self.calls}", self.lifetime


async def test_a_thousand_callers_share_one_token_request() -> None:
    endpoint = Endpoint()
    manager = TokenManager(endpoint.fetch, clock=endpoint.clock)
    tokens: list[str] = []

    async def caller() -> None:
        tokens.append((await manager.get()).value)

    async with anyio.create_task_group() as tg:
        for _ in range(1000):
            tg.start_soon(caller)
    assert endpoint.calls == 1
    assert set(tokens) == {"token-1"}


async def in_flight(endpoint: Endpoint, calls: int) -> None:
    """Wait until the endpoint has received ``calls`` requests (the last one now waits)."""
    with anyio.fail_after(5):
        while endpoint.calls < calls:
            await anyio.sleep(0)


# A refresh that has not answered yet must not hold anyone up while the old token is
# still valid. The gate keeps the refresh in flight for as long as the test wants, so a
# caller that waited for it would never finish: the test fails instead of passing late
# (as a test whose refresh answers by itself would).
async def test_while_one_caller_refreshes_the_others_get_the_old_token_at_once() -> None:
    endpoint = Endpoint(lifetime=100.0)
    manager = TokenManager(endpoint.fetch, clock=endpoint.clock)
    first = await manager.get()
    assert first.refresh_at == pytest.approx(90.0)
    endpoint.now = 95.0  # past refresh_at, before expiry
    endpoint.gate = anyio.Event()
    refreshed: list[str] = []

    async def refresher() -> None:
        refreshed.append((await manager.get()).value)

    async with anyio.create_task_group() as tg:
        tg.start_soon(refresher)
        await in_flight(endpoint, 2)
        others: list[str] = []

        async def other() -> None:
            others.append((await manager.get()).value)

        with anyio.fail_after(2):  # only reached if a caller waits for the refresh
            async with anyio.create_task_group() as callers:
                for _ in range(50):
                    callers.start_soon(other)
        assert others == ["token-1"] * 50
        assert refreshed == []  # the refresh is still in flight
        endpoint.gate.set()
    assert refreshed == ["token-2"]
    assert (await manager.get()).value == "token-2"
    assert endpoint.calls == 2


async def test_an_expired_token_is_never_handed_out_while_it_is_refreshed() -> None:
    endpoint = Endpoint(lifetime=100.0)
    manager = TokenManager(endpoint.fetch, clock=endpoint.clock)
    await manager.get()
    endpoint.now = 100.0  # the old token has just expired
    endpoint.gate = anyio.Event()
    seen: list[str] = []

    async def caller() -> None:
        seen.append((await manager.get()).value)

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(caller)
        await in_flight(endpoint, 2)
        await anyio.sleep(0.02)
        assert seen == []  # everyone waits for the new one
        endpoint.gate.set()
    assert seen == ["token-2"] * 20
    assert endpoint.calls == 2


async def test_a_token_is_reused_until_its_refresh_time() -> None:
    endpoint = Endpoint(lifetime=100.0)
    manager = TokenManager(endpoint.fetch, clock=endpoint.clock)
    assert manager.fresh() is None
    first = await manager.get()
    assert (first.refresh_at, first.expires_at) == (pytest.approx(90.0), pytest.approx(100.0))
    endpoint.now = 89.9
    assert manager.fresh() is first
    assert await manager.get() is first
    endpoint.now = 90.0
    assert manager.fresh() is None
    assert (await manager.get()).value == "token-2"
    assert endpoint.calls == 2


async def test_invalidate_drops_only_the_current_token() -> None:
    endpoint = Endpoint()
    manager = TokenManager(endpoint.fetch, clock=endpoint.clock)
    old = await manager.get()
    manager.invalidate(old)
    fresh = await manager.get()
    assert fresh.value == "token-2"
    manager.invalidate(old)  # a late 401 for the old token must not drop the fresh one
    assert manager.current is fresh
    assert (await manager.get()).value == "token-2"
    assert endpoint.calls == 2


async def test_bad_credentials_fail_every_waiter_after_one_request() -> None:
    endpoint = Endpoint()
    endpoint.failure = CredentialsError("refused", status=400)
    manager = TokenManager(endpoint.fetch, clock=endpoint.clock)
    failures: list[BaseException] = []

    async def caller() -> None:
        try:
            await manager.get()
        except CredentialsError as exc:
            failures.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(200):
            tg.start_soon(caller)
    assert endpoint.calls == 1
    assert len(failures) == 200
    endpoint.now += 31  # the negative cache expires; the next call tries again
    with pytest.raises(CredentialsError):
        await manager.get()
    assert endpoint.calls == 2


async def test_a_429_is_remembered_for_its_retry_after() -> None:
    endpoint = Endpoint()
    endpoint.failure = TokenRateLimitedError("slow down", retry_after=600)
    manager = TokenManager(endpoint.fetch, clock=endpoint.clock)
    with pytest.raises(TokenRateLimitedError):
        await manager.get()
    endpoint.failure = None
    endpoint.now += 599
    with pytest.raises(TokenRateLimitedError):
        await manager.get()
    assert endpoint.calls == 1
    endpoint.now += 2
    assert (await manager.get()).value == "token-2"


async def test_transient_failures_are_cached_only_briefly() -> None:
    endpoint = Endpoint()
    endpoint.failure = ServerError("503", status=503)
    manager = TokenManager(endpoint.fetch, clock=endpoint.clock)
    with pytest.raises(ServerError):
        await manager.get()
    endpoint.failure = None
    endpoint.now += 1.5
    assert (await manager.get()).value == "token-2"


async def test_repr_never_shows_the_token() -> None:
    endpoint = Endpoint()
    manager = TokenManager(endpoint.fetch, clock=endpoint.clock)
    token = await manager.get()
    assert "token-1" not in repr(manager)
    assert "token-1" not in repr(token)


async def test_cancelled_refresh_lets_the_next_caller_fetch() -> None:
    endpoint = Endpoint()
    manager = TokenManager(endpoint.fetch, clock=endpoint.clock)
    with anyio.move_on_after(0.001):
        await manager.get()
    assert manager.current is None
    assert (await manager.get()).value == "token-2"


async def test_refusals_of_fresh_tokens_stop_the_asking_but_expired_ones_do_not() -> None:
    endpoint = Endpoint(lifetime=1.0)  # aiotts keeps such a token 30 s, the server 1 s
    manager = TokenManager(endpoint.fetch, clock=endpoint.clock)
    for _ in range(5):  # refused once expired by the server's own word: simply replaced
        token = await manager.get()
        endpoint.now += 2.0
        manager.invalidate(token)
    assert endpoint.calls == 5
    for _ in range(2):  # refused while fresh, but not yet MAX_REFUSALS in a row
        manager.invalidate(await manager.get())
    manager.accepted()  # a success ends the run
    for _ in range(3):
        manager.invalidate(await manager.get())
    calls = endpoint.calls
    for _ in range(3):
        with pytest.raises(AuthenticationError, match="3 freshly issued tokens in a row"):
            await manager.get()
    assert endpoint.calls == calls  # stopped asking


async def test_each_refresh_is_reported_with_the_token_lifetime_and_the_request_count() -> None:
    endpoint = Endpoint(lifetime=100.0)
    manager = TokenManager(endpoint.fetch, clock=endpoint.clock)
    reported: list[tuple[float, int]] = []
    manager.on_refresh = lambda lifetime, requests: reported.append((lifetime, requests))
    endpoint.now = 50.0  # the lifetime is counted from when the token came, not from zero
    await manager.get()
    endpoint.now = 140.0
    await manager.get()
    assert reported == [(pytest.approx(100.0), 1), (pytest.approx(100.0), 2)]
