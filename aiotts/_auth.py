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
* The token value never appears in a repr, a log line or an exception message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from aiotts._errors import AiottsError, AuthenticationError, TokenRateLimitedError
from aiotts._models import Token

__all__ = ["TokenManager", "refresh_time"]

TokenFetcher = Callable[[], Awaitable[tuple[str, float]]]
"""Sends one token request; returns ``(access_token, expires_in_seconds)``."""


def refresh_time(now: float, expires_in: float) -> tuple[float, float]:
    """``(refresh_at, expires_at)`` for a token that lives ``expires_in`` seconds from ``now``.

    Refresh a tenth of the lifetime before expiry (at most a minute before), so that a
    request sent just before ``refresh_at`` still reaches the server with a valid token.
    """
    margin = min(60.0, expires_in * 0.1)
    return now + expires_in - margin, now + expires_in


class TokenManager:
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

    def invalidate(self, token: Token) -> None:
        """Drop ``token`` after the server refused it, unless it was already replaced."""
        if self._token is token:
            self._token = None

    async def _refresh(self, now: float) -> Token:
        # Runs under the lock only.
        self.requests_sent += 1
        try:
            value, expires_in = await self._fetch()
        except TokenRateLimitedError as exc:
            self._remember(exc, exc.retry_after if exc.retry_after else self._failure_ttl)
            raise
        except AiottsError as exc:
            permanent = isinstance(exc, AuthenticationError)
            self._remember(exc, self._failure_ttl if permanent else self._transient_failure_ttl)
            raise
        self._failure = None
        received = self._clock()
        refresh_at, expires_at = refresh_time(received, expires_in)
        self._token = Token(value=value, expires_at=expires_at, refresh_at=refresh_at)
        return self._token

    def _remember(self, failure: AiottsError, seconds: float) -> None:
        self._failure = failure
        self._failure_until = self._clock() + seconds
