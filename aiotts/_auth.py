"""The one bearer token of a client: fetched on first need, refreshed before it expires.

Invariants:

* **Single flight.** At most one token request is in flight per client. Callers that find
  no usable token queue on one lock and look again once they hold it, so when a thousand
  requests need a token at once, one request goes out and all thousand use its answer.
* **Refresh without a stall.** Once a token is past ``refresh_at`` but not yet expired,
  one caller refreshes it while every other caller keeps using the old one.
* **Negative cache.** A failed token request is remembered (bad credentials for
  ``failure_ttl`` seconds, a 429 until its ``Retry-After``), so the callers queued behind
  it fail at once instead of each sending a request of its own.
* **Precise invalidation.** ``invalidate(token)`` drops the token only if it is still the
  current one: a 401 that comes back late for an old token never discards a fresh one.
* **Refusals stop.** After ``MAX_REFUSALS`` tokens in a row were refused (401) while
  still fresh by the server's own word (sent before the refresh point of the lifetime it
  declared), with no request accepted in between, the server refuses fresh tokens: every
  caller gets an ``AuthenticationError`` for ``failure_ttl`` seconds instead of a new
  token request each. A token refused once past its declared lifetime merely expired
  (aiotts keeps a token at least ``MIN_LIFETIME``, see below) and is replaced.
* **Bounded pace.** The lifetime used for refresh is clamped to
  [``MIN_LIFETIME``, ``MAX_LIFETIME``] (a non-number counts as ``DEFAULT_LIFETIME``), so a
  server answering ``expires_in: 1e-9`` or ``"nan"`` costs one token request per
  ``MIN_LIFETIME`` at most, unless a 401 drops the token sooner.
* **Sendable values only.** A token is checked when it arrives (printable ASCII, no
  spaces, at most ``MAX_TOKEN_LENGTH`` characters): a bad one is an ``AuthenticationError``
  here, never a failure of the HTTP library deep inside a later request.
* The token value never appears in a repr, a log line or an exception message.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable

import anyio

from aiotts import _redact
from aiotts._errors import AiottsError, AuthenticationError, TokenRateLimitedError
from aiotts._models import Token

__all__ = [
    "DEFAULT_LIFETIME",
    "MAX_LIFETIME",
    "MAX_REFUSALS",
    "MAX_TOKEN_LENGTH",
    "MIN_LIFETIME",
    "TokenManager",
    "checked_token",
    "declared_lifetime",
    "refresh_time",
    "token_lifetime",
]

DEFAULT_LIFETIME = 3600.0
"""The lifetime assumed when ``expires_in`` is missing or not a number."""
MIN_LIFETIME = 30.0
MAX_LIFETIME = 24 * 3600.0
MAX_REFUSALS = 3
"""Tokens refused in a row (with no request accepted between) before aiotts stops asking."""
MAX_TOKEN_LENGTH = 8192

_SENDABLE = re.compile(r"[\x21-\x7e]+")

TokenFetcher = Callable[[], Awaitable[tuple[object, object]]]
"""Sends one token request; returns ``(access_token, expires_in)`` as the server sent them
(checked and clamped here)."""


def declared_lifetime(expires_in: object) -> float:
    """``expires_in`` as seconds; ``DEFAULT_LIFETIME`` when it is missing or not a finite
    number. May be zero or negative: a server may say anything."""
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float | str):
        return DEFAULT_LIFETIME
    try:
        seconds = float(expires_in)
    except ValueError:
        return DEFAULT_LIFETIME
    return seconds if math.isfinite(seconds) else DEFAULT_LIFETIME


def token_lifetime(expires_in: object) -> float:
    """The lifetime to plan refreshes by: the declared one clamped to [``MIN_LIFETIME``,
    ``MAX_LIFETIME``]."""
    return min(max(declared_lifetime(expires_in), MIN_LIFETIME), MAX_LIFETIME)


def checked_token(value: object) -> str:
    """``value`` if it can be sent in an ``Authorization`` header; else an
    ``AuthenticationError`` saying what is wrong (never the value itself)."""
    if not isinstance(value, str) or not value:
        raise AuthenticationError("token: the token endpoint answered no access_token string")
    if len(value) > MAX_TOKEN_LENGTH:
        raise AuthenticationError(
            f"token: the token endpoint answered a token of {len(value)} characters (at most "
            f"{MAX_TOKEN_LENGTH} are accepted); check token_url"
        )
    if _SENDABLE.fullmatch(value) is None:
        raise AuthenticationError(
            "token: the token endpoint answered a token with spaces, control or non-ASCII "
            "characters, which cannot be sent in a header; check token_url"
        )
    return value


def refresh_time(now: float, expires_in: float) -> tuple[float, float]:
    """``(refresh_at, expires_at)`` for a token that lives ``expires_in`` seconds from ``now``.

    Refresh a tenth of the lifetime before expiry (at most a minute before), so that a
    request sent just before ``refresh_at`` still reaches the server with a valid token.
    """
    margin = min(60.0, expires_in * 0.1)
    return now + expires_in - margin, now + expires_in


class TokenManager:
    on_refresh: Callable[[float, int], None] | None = None
    """Called with the lifetime planned for each new token and the requests sent so far."""

    def __init__(
        self,
        fetch: TokenFetcher,
        *,
        clock: Callable[[], float],
        failure_ttl: float = 30.0,
        transient_failure_ttl: float = 1.0,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._failure_ttl = failure_ttl
        self._transient_failure_ttl = transient_failure_ttl
        self._token: Token | None = None
        self._lock = anyio.Lock()
        self._failure: AiottsError | None = None
        self._failure_until = 0.0
        self._refusals = 0
        self._fresh_until = 0.0
        """Until when the current token is fresh by the server's own word."""
        self.requests_sent = 0

    def __repr__(self) -> str:
        if self._token is None:
            state = "none"
        else:
            state = f"expires in {self._token.expires_at - self._clock():.0f}s"
        return f"<TokenManager token={state} requests_sent={self.requests_sent}>"

    @property
    def current(self) -> Token | None:
        return self._token

    def fresh(self) -> Token | None:
        """The current token if it needs no refresh yet: the common case, without an await."""
        token = self._token
        if token is not None and self._clock() < token.refresh_at:
            return token
        return None

    async def get(self) -> Token:
        """A token that is valid now; fetches or refreshes one when needed."""
        token = self._token
        now = self._clock()
        if token is not None:
            if now < token.refresh_at:
                return token
            if now < token.expires_at and self._lock.locked():
                return token  # another caller is refreshing it; the old one still works
        async with self._lock:
            # Look again: the caller that held the lock before us may have fetched one.
            token = self._token
            now = self._clock()
            if token is not None and now < token.refresh_at:
                return token
            if self._failure is not None and now < self._failure_until:
                raise self._failure
            return await self._refresh(now)

    def invalidate(self, token: Token, *, sent_at: float | None = None) -> None:
        """Drop ``token`` after the server refused a request sent with it at ``sent_at``
        (default: now), unless it was already replaced.

        The ``MAX_REFUSALS``-th current token in a row refused while fresh makes every
        caller fail for ``failure_ttl`` seconds: the server refuses tokens as fast as they
        are issued."""
        if self._token is not token:
            return
        self._token = None
        if (self._clock() if sent_at is None else sent_at) >= self._fresh_until:
            return  # it expired by the server's own word: nothing to hold against it
        self._refusals += 1
        if self._refusals >= MAX_REFUSALS:
            self._remember(
                AuthenticationError(
                    f"the server refused {self._refusals} freshly issued tokens in a row "
                    "(HTTP 401): the credentials are valid but not allowed to use this API; "
                    "check their permissions",
                    status=401,
                ),
                self._failure_ttl,
            )

    def accepted(self) -> None:
        """A request with a token succeeded: the run of refusals is over."""
        if self._refusals:
            self._refusals = 0

    async def _refresh(self, now: float) -> Token:
        # Runs under the lock only.
        self.requests_sent += 1
        try:
            raw_value, expires_in = await self._fetch()
            if isinstance(raw_value, str):
                _redact.register_token(raw_value)  # before any check can quote it
            value = checked_token(raw_value)
        except TokenRateLimitedError as exc:
            self._remember(exc, exc.retry_after if exc.retry_after else self._failure_ttl)
            raise
        except AiottsError as exc:
            permanent = isinstance(exc, AuthenticationError)
            self._remember(exc, self._failure_ttl if permanent else self._transient_failure_ttl)
            raise
        self._failure = None
        received = self._clock()
        self._fresh_until, _ = refresh_time(received, max(declared_lifetime(expires_in), 0.0))
        refresh_at, expires_at = refresh_time(received, token_lifetime(expires_in))
        self._token = Token(value=value, expires_at=expires_at, refresh_at=refresh_at)
        if self.on_refresh is not None:
            self.on_refresh(expires_at - received, self.requests_sent)
        return self._token

    def _remember(self, failure: AiottsError, seconds: float) -> None:
        self._failure = failure
        self._failure_until = self._clock() + seconds
