"""The token manager's rules at their exact edges: the checks on a received token, the
lifetime clamps, the negative cache's durations and the run of refused fresh tokens."""

from __future__ import annotations

import secrets

import anyio
import pytest

from aiotts import _redact
from aiotts._auth import (
    DEFAULT_LIFETIME,
    MAX_LIFETIME,
    MAX_REFUSALS,
    MAX_TOKEN_LENGTH,
    MIN_LIFETIME,
    TokenManager,
    checked_token,
    declared_lifetime,
    refresh_time,
    token_lifetime,
)
from aiotts._errors import (
    AuthenticationError,
    CredentialsError,
    ServerError,
    TokenRateLimitedError,
)

pytestmark = pytest.mark.anyio

NO_STRING = "token: the token endpoint answered no access_token string"
UNSENDABLE = (
    "token: the token endpoint answered a token with spaces, control or non-ASCII "
    "characters, which cannot be sent in a header; check token_url"
)


class Endpoint:
    """A token endpoint on a hand-moved clock that answers what it is told to."""

    def __init__(self, expires_in: object = 100.0, now: float = 0.0) -> None:
        self.now = now
        self.calls = 0
        self.expires_in = expires_in
        self.value: object = None  # None: "token-N" for the N-th request
        self.failure: Exception | None = None
        self.gate: anyio.Event | None = None

    def clock(self) -> float:
        return self.now

    async def fetch(self) -> tuple[object, object]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        value = f"token-{self.calls}" if self.value is None else self.value
        return value, self.expires_in


def manager_for(endpoint: Endpoint, **kwargs: float) -> TokenManager:
    return TokenManager(endpoint.fetch, clock=endpoint.clock, **kwargs)


# -- what a received token and lifetime are taken as ------------------------------------


@pytest.mark.parametrize(
    ("expires_in", "seconds"),
    [
        (100, 100.0),
        (2.5, 2.5),
        ("90", 90.0),
        (0, 0.0),
        (-5, -5.0),
        (True, DEFAULT_LIFETIME),  # a bool is not a number of seconds
        (False, DEFAULT_LIFETIME),
        (None, DEFAULT_LIFETIME),
        ([100], DEFAULT_LIFETIME),
        ({"s": 1}, DEFAULT_LIFETIME),
        ("soon", DEFAULT_LIFETIME),
        ("nan", DEFAULT_LIFETIME),
        ("inf", DEFAULT_LIFETIME),
        (float("-inf"), DEFAULT_LIFETIME),
    ],
)
def test_declared_lifetime(expires_in: object, seconds: float) -> None:
    assert declared_lifetime(expires_in) == seconds


@pytest.mark.parametrize(
    ("expires_in", "seconds"),
    [
        (1e-9, MIN_LIFETIME),
        (-1, MIN_LIFETIME),
        (MIN_LIFETIME + 1, MIN_LIFETIME + 1),
        (MAX_LIFETIME - 1, MAX_LIFETIME - 1),
        (MAX_LIFETIME + 1, MAX_LIFETIME),
        ("nan", DEFAULT_LIFETIME),
    ],
)
def test_token_lifetime_is_clamped(expires_in: object, seconds: float) -> None:
    assert token_lifetime(expires_in) == seconds


def test_refresh_comes_a_tenth_of_the_lifetime_early_but_at_most_a_minute() -> None:
    assert refresh_time(1000.0, 100.0) == (1090.0, 1100.0)
    assert refresh_time(1000.0, 600.0) == (1540.0, 1600.0)  # exactly a minute
    assert refresh_time(1000.0, 3600.0) == (4540.0, 4600.0)  # capped at a minute


def test_a_token_of_the_longest_length_is_accepted_and_one_more_character_refused() -> None:
    longest = "t" * MAX_TOKEN_LENGTH
    assert checked_token(longest) is longest
    with pytest.raises(AuthenticationError) as caught:
        checked_token(longest + "t")
    assert str(caught.value) == (
        f"token: the token endpoint answered a token of {MAX_TOKEN_LENGTH + 1} characters "
        f"(at most {MAX_TOKEN_LENGTH} are accepted); check token_url"
    )


@pytest.mark.parametrize("value", [None, "", 12345, b"bytes-token", ["t"]])
def test_a_missing_or_non_string_token_is_refused(value: object) -> None:
    with pytest.raises(AuthenticationError) as caught:
        checked_token(value)
    assert str(caught.value) == NO_STRING


@pytest.mark.parametrize("value", ["two words", "tab\there", "nl\n", "caf\u00e9", "\x7f"])
def test_a_token_that_cannot_go_in_a_header_is_refused(value: str) -> None:
    with pytest.raises(AuthenticationError) as caught:
        checked_token(value)
    assert str(caught.value) == UNSENDABLE


def test_every_printable_ascii_character_is_sendable() -> None:
    printable = "".join(chr(c) for c in range(0x21, 0x7F))
    assert checked_token(printable) == printable


# The registry of tokens to scrub is process-wide: each test makes a value never seen before.


async def test_a_received_token_is_scrubbed_from_server_texts() -> None:
    endpoint = Endpoint()
    endpoint.value = f"tok-{secrets.token_hex(16)}"
    await manager_for(endpoint).get()
    assert _redact.server_text(f"echo: {endpoint.value}") == "echo: [redacted]"


async def test_a_refused_token_is_scrubbed_before_its_check_could_quote_it() -> None:
    endpoint = Endpoint()
    endpoint.value = f"bad token {secrets.token_hex(16)}"
    with pytest.raises(AuthenticationError, match="spaces"):
        await manager_for(endpoint).get()
    assert _redact.server_text(endpoint.value) == "[redacted]"


# -- counters and repr ---------------------------------------------------------------


async def test_requests_sent_counts_every_token_request() -> None:
    endpoint = Endpoint()
    manager = manager_for(endpoint)
    assert manager.requests_sent == 0
    await manager.get()
    assert manager.requests_sent == 1
    manager.invalidate(await manager.get())
    endpoint.now = 95.0
    await manager.get()
    assert manager.requests_sent == 2


async def test_repr_shows_the_time_left_and_the_requests() -> None:
    endpoint = Endpoint(expires_in=100.0)
    manager = manager_for(endpoint)
    assert repr(manager) == "<TokenManager token=none requests_sent=0>"
    await manager.get()
    endpoint.now = 40.0
    assert repr(manager) == "<TokenManager token=expires in 60s requests_sent=1>"


# -- the negative cache ----------------------------------------------------------------


async def test_refused_credentials_are_remembered_for_exactly_failure_ttl() -> None:
    endpoint = Endpoint()
    endpoint.failure = CredentialsError("refused", status=400)
    manager = manager_for(endpoint)  # failure_ttl defaults to 30 s
    with pytest.raises(CredentialsError):
        await manager.get()
    endpoint.now = 29.99
    with pytest.raises(CredentialsError):
        await manager.get()
    assert endpoint.calls == 1
    endpoint.now = 30.0  # the cache has ended
    with pytest.raises(CredentialsError):
        await manager.get()
    assert endpoint.calls == 2


async def test_a_transient_failure_is_remembered_for_exactly_transient_failure_ttl() -> None:
    endpoint = Endpoint()
    endpoint.failure = ServerError("503", status=503)
    manager = manager_for(endpoint, failure_ttl=30.0, transient_failure_ttl=2.0)
    with pytest.raises(ServerError):
        await manager.get()
    endpoint.now = 1.99
    with pytest.raises(ServerError):
        await manager.get()
    assert endpoint.calls == 1
    endpoint.failure = None
    endpoint.now = 2.0
    assert (await manager.get()).value == "token-2"


async def test_a_429_without_retry_after_is_remembered_for_failure_ttl() -> None:
    endpoint = Endpoint()
    endpoint.failure = TokenRateLimitedError("slow down", retry_after=None)
    manager = manager_for(endpoint, failure_ttl=20.0)
    with pytest.raises(TokenRateLimitedError):
        await manager.get()
    endpoint.failure = None
    endpoint.now = 19.99
    with pytest.raises(TokenRateLimitedError):
        await manager.get()
    endpoint.now = 20.0
    assert (await manager.get()).value == "token-2"
    assert endpoint.calls == 2


async def test_the_clock_may_start_below_zero() -> None:
    endpoint = Endpoint(now=-1000.0)  # a monotonic clock's origin is arbitrary
    manager = manager_for(endpoint)
    token = await manager.get()
    assert (token.refresh_at, token.expires_at) == (-910.0, -900.0)


# -- refused fresh tokens ------------------------------------------------------------------


async def test_the_refusal_stop_names_the_count_and_the_remedy_with_status_401() -> None:
    endpoint = Endpoint()
    manager = manager_for(endpoint, failure_ttl=10.0)
    for _ in range(MAX_REFUSALS):
        manager.invalidate(await manager.get())
    with pytest.raises(AuthenticationError) as caught:
        await manager.get()
    assert str(caught.value) == (
        f"the server refused {MAX_REFUSALS} freshly issued tokens in a row (HTTP 401): the "
        "credentials are valid but not allowed to use this API; check their permissions"
    )
    assert caught.value.status == 401
    assert endpoint.calls == MAX_REFUSALS
    endpoint.now = 10.0  # failure_ttl later, the client asks again
    assert (await manager.get()).value == f"token-{MAX_REFUSALS + 1}"


async def test_a_refusal_counts_by_when_the_request_was_sent_not_when_it_came_back() -> None:
    endpoint = Endpoint(expires_in=10.0)  # fresh for the server until 9 s after issue
    manager = manager_for(endpoint)
    for _ in range(MAX_REFUSALS):
        token = await manager.get()
        sent_at = endpoint.now + 1.0
        endpoint.now += 60.0  # the 401 comes back long after
        manager.invalidate(token, sent_at=sent_at)
    with pytest.raises(AuthenticationError, match="freshly issued"):
        await manager.get()


async def test_a_token_refused_exactly_at_its_fresh_end_merely_expired() -> None:
    endpoint = Endpoint(expires_in=100.0)  # fresh by the server's word until 90 s
    manager = manager_for(endpoint)
    for _ in range(MAX_REFUSALS + 1):
        token = await manager.get()
        manager.invalidate(token, sent_at=endpoint.now + 90.0)
    assert (await manager.get()).value == f"token-{MAX_REFUSALS + 2}"


async def test_tokens_declared_to_live_zero_seconds_are_replaced_not_held_against() -> None:
    endpoint = Endpoint(expires_in=0)
    manager = manager_for(endpoint)
    for _ in range(MAX_REFUSALS + 1):
        manager.invalidate(await manager.get())  # refused at once, the clock unmoved
    assert (await manager.get()).value == f"token-{MAX_REFUSALS + 2}"


async def test_a_token_request_that_succeeds_ends_a_refusal_stop_begun_while_it_ran() -> None:
    endpoint = Endpoint(expires_in=100.0)
    manager = manager_for(endpoint)
    for _ in range(MAX_REFUSALS - 1):
        manager.invalidate(await manager.get())
    last = await manager.get()
    endpoint.now = 95.0  # past its refresh point: the next get refreshes it
    endpoint.gate = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.get)
        with anyio.fail_after(5):
            while endpoint.calls < MAX_REFUSALS + 1:
                await anyio.sleep(0)
        manager.invalidate(last, sent_at=0.0)  # the refusal that starts the stop
        endpoint.gate.set()
    fresh = manager.current
    assert fresh is not None and fresh.value == f"token-{MAX_REFUSALS + 1}"
    manager.invalidate(fresh, sent_at=200.0)  # expired by then: no refusal
    assert (await manager.get()).value == f"token-{MAX_REFUSALS + 2}"
