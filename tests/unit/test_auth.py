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

    def clock(self) -> float:
        return self.now

    async def fetch(self) -> tuple[str, float]:
        self.calls += 1
        await anyio.sleep(0.01)  # long enough for every caller to queue up
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


async def test_refreshed_before_expiry_while_others_keep_the_old_one() -> None:
    endpoint = Endpoint(lifetime=100.0)
    manager = TokenManager(endpoint.fetch, clock=endpoint.clock)
    first = await manager.get()
    assert first.refresh_at == pytest.approx(90.0)
    endpoint.now = 95.0  # past refresh_at, before expiry
    seen: list[str] = []

    async def caller() -> None:
        seen.append((await manager.get()).value)

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(caller)
    assert endpoint.calls == 2
    assert "token-2" in seen
    assert set(seen) <= {"token-1", "token-2"}  # nobody waited without need


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
