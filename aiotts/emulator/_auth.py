"""Tokens: issuing, checking, and the failed-credentials lockout.

Pure bookkeeping on the injected clock; the HTTP layer parses requests and writes answers.
Tokens look like JWTs (three Base64url parts) but carry no meaning: the emulator only
remembers each token's expiry. Nothing here logs, and no ``repr`` shows a token or secret.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

import orjson

from aiotts.emulator._clock import Clock
from aiotts.emulator._config import EmulatorConfig

__all__ = ["Authority", "TokenGrant"]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_JWT_HEADER = _b64url(b'{"alg":"HS256","typ":"JWT"}')


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """The answer to one token request: exactly one of a token, a refusal, or a lockout.

    ``token`` set: 200. ``retry_after`` set: 429 (seconds until the lockout ends).
    Neither: 400 ``invalid_client``.
    """

    token: str | None = None
    retry_after: float | None = None

    def __repr__(self) -> str:
        kind = "token" if self.token else "locked" if self.retry_after is not None else "refused"
        return f"TokenGrant({kind})"


class Authority:
    """Issues tokens for the configured credentials and checks them on every call."""

    __slots__ = ("_clock", "_config", "_failures", "_issued", "_locked_until", "_tokens")

    def __init__(self, config: EmulatorConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._tokens: dict[str, float] = {}  # token -> expiry on the clock
        self._failures: dict[tuple[str, str], int] = {}
        self._locked_until: dict[tuple[str, str], float] = {}
        self._issued = 0

    def request(self, client_id: str, client_secret: str) -> TokenGrant:
        """One token request with these credentials (empty strings if absent)."""
        now = self._clock()
        pair = (client_id, client_secret)
        until = self._locked_until.get(pair)
        if until is not None:
            if now < until:
                return TokenGrant(retry_after=until - now)
            # The lockout is over: the pair starts again with a clean slate.
            del self._locked_until[pair]
            self._failures.pop(pair, None)
        expected = self._config.credentials.get(client_id)
        if expected is not None and secrets.compare_digest(expected, client_secret):
            return TokenGrant(token=self._issue(client_id, now))
        failures = self._failures.get(pair, 0) + 1
        self._failures[pair] = failures
        if failures > self._config.token_failure_limit:
            self._locked_until[pair] = now + self._config.token_lockout
            return TokenGrant(retry_after=self._config.token_lockout)
        return TokenGrant()

    def issue(self, client_id: str) -> str:
        """A fresh token for ``client_id`` without a request (for tests that need one fast)."""
        return self._issue(client_id, self._clock())

    def _issue(self, client_id: str, now: float) -> str:
        self._issued += 1
        if self._issued % 1024 == 0:
            # Forget expired tokens now and then, so a long run does not grow without bound.
            self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
        claims = orjson.dumps(
            {"iss": "aiotts-emulator", "sub": client_id, "jti": secrets.token_hex(8)}
        )
        token = f"{_JWT_HEADER}.{_b64url(claims)}.{_b64url(secrets.token_bytes(32))}"
        self._tokens[token] = now + self._config.token_lifetime
        return token

    def valid(self, token: str) -> bool:
        """True if ``token`` was issued here and has not expired by the clock."""
        expiry = self._tokens.get(token)
        return expiry is not None and self._clock() < expiry

    def expire_all(self) -> None:
        """Forget every token issued so far (clients must ask for new ones)."""
        self._tokens.clear()

    def __repr__(self) -> str:
        return f"<Authority tokens={len(self._tokens)} locked_pairs={len(self._locked_until)}>"
