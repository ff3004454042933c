"""The HTTP layer: one aiohttp session, one connection pool, one token, one rate limiter.

Every request of a client goes through ``HttpSession.request``, which puts it through, in
order: a slot in front of the pool (so waiting happens here, before any timeout starts),
the shared rate limiter, the token (for authorised calls), the request itself, and the
mapping of every answer and every aiohttp failure to aiotts's errors. This module is the
one place where foreign exceptions become ours.

A 401 drops the token that was refused (only if it is still the current one) and replays
the request once with a fresh token; a second 401 is an ``AuthenticationError``.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import ssl
import time
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import anyio
import orjson
import yarl

from aiotts._auth import TokenManager
from aiotts._body import TOKEN_ANSWER_LIMIT, BodyTooLargeError, read_capped
from aiotts._config import Limits, RetryPolicy, Timeouts
from aiotts._errors import (
    AiottsError,
    ApiError,
    AuthenticationError,
    ClientClosedError,
    ConnectError,
    CredentialsError,
    RequestTimeout,
    ServerError,
    TokenRateLimitedError,
    UsageError,
)
from aiotts._ratelimit import RateLimiter
from aiotts._retry import Retryable, retry_after

__all__ = ["READ_CHUNK", "Handler", "HttpSession", "RequestCounters", "SessionSettings"]

log = logging.getLogger("aiotts")

T = TypeVar("T")

READ_CHUNK = 256 * 1024
"""Bytes per read of a response body, and aiohttp's read buffer: measured here, 256 KiB
halves the CPU per MB of 64 KiB, and larger buffers gain nothing."""

_ERROR_BODY_LIMIT = 64 * 1024

Handler = Callable[[aiohttp.ClientResponse], Awaitable[T]]


@dataclass(frozen=True, slots=True)
class SessionSettings:
    token_url: str
    client_id: str | None
    client_secret: str | None
    timeouts: Timeouts
    retry: RetryPolicy
    limits: Limits
    ssl: ssl.SSLContext | bool


@dataclass(frozen=True, slots=True)
class _Request:
    kind: str
    """What the request is for, as counted: ``token``, ``submit``, ``poll``, ``status``..."""
    method: str
    url: str | yarl.URL
    params: Mapping[str, str] | None
    body: bytes | None
    content_type: str
    authorised: bool
    idempotent: bool


class RequestCounters:
    """Requests sent by kind, retries, 429s and body bytes: plain counters, no locks needed
    (one event loop)."""

    __slots__ = ("body_bytes", "requests", "retries", "throttled")

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.retries = 0
        self.throttled = 0
        self.body_bytes = 0

    def __repr__(self) -> str:
        return (
            f"<RequestCounters requests={dict(self.requests)} retries={self.retries} "
            f"throttled={self.throttled}>"
        )


def retry_after_seconds(value: str | None, *, now: float) -> float | None:
    """``Retry-After`` as seconds from now: a number of seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _server_messages(body: bytes) -> tuple[str, ...]:
    """The human-readable parts of an error body (ASP.NET validation, OAuth or plain text)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return (text[:300],) if text and not text.startswith("<") else ()
    messages: list[str] = []
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, dict):
            for field, texts in errors.items():
                if isinstance(texts, list):
                    messages.extend(f"{field}: {text}" for text in texts)
        for key in ("title", "error_description", "error", "message"):
            value = data.get(key)
            if isinstance(value, str) and value and not messages:
                messages.append(value)
    return tuple(messages)


class HttpSession:
    """Owns the aiohttp session. Opened once inside the running loop, closed once."""

    def __init__(self, settings: SessionSettings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._slots = asyncio.Semaphore(settings.limits.polls)
        self.counters = RequestCounters()
        self.limiter = RateLimiter(
            settings.limits.rate,
            burst=settings.limits.burst,
            clock=time.monotonic,
            sleep=anyio.sleep,
        )
        self.tokens = TokenManager(self._request_token, clock=time.monotonic)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._session else "not opened"
        return f"<HttpSession {state} {self.counters!r} {self.limiter!r} {self.tokens!r}>"

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        if self._closed:
            raise ClientClosedError("this client was closed; create a new TTSClient")
        if self._session is not None:
            raise UsageError("this client is already open")
        settings = self._settings
        connector = aiohttp.TCPConnector(
            limit=settings.limits.polls, ssl=settings.ssl, enable_cleanup_closed=True
        )
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=settings.timeouts.connect,
            sock_connect=settings.timeouts.connect,
            sock_read=settings.timeouts.read,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            read_bufsize=READ_CHUNK,
            raise_for_status=False,
            auto_decompress=True,
        )

    async def close(self) -> None:
        """Close the pool; safe to call more than once."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _require_open(self) -> aiohttp.ClientSession:
        if self._session is None:
            if self._closed:
                raise ClientClosedError("this client is closed; create a new TTSClient")
            raise ClientClosedError(
                "this client is not open; use it as `async with TTSClient(...) as client:`"
            )
        return self._session

    # -- requests --------------------------------------------------------------------------

    async def request(
        self,
        kind: str,
        method: str,
        url: str | yarl.URL,
        handle: Handler[T],
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        content_type: str = "application/json",
        authorised: bool = True,
        idempotent: bool = True,
    ) -> T:
        """Send one request (retried as its kind allows) and return what ``handle`` makes of
        its 2xx response. ``handle`` runs inside the attempt, so a body cut off while it
        reads is retried like any other failure of an idempotent request."""

        request = _Request(kind, method, url, params, body, content_type, authorised, idempotent)
        try:
            return await self._send(request, handle)  # the common case: nothing to retry
        except Retryable as first:
            failure = first

        async def attempt() -> T:
            return await self._send(request, handle)

        def count_retry(failure: Retryable, delay: float) -> None:
            self.counters.retries += 1
            log.debug("retrying %s %s in %.2fs after: %s", method, kind, delay, failure.error)

        return await retry_after(
            failure,
            attempt,
            self._settings.retry,
            idempotent=idempotent,
            clock=time.monotonic,
            sleep=anyio.sleep,
            on_retry=count_retry,
        )

    async def _send(self, request: _Request, handle: Handler[T]) -> T:
        session = self._require_open()
        kind, method = request.kind, request.method
        replayed = False
        while True:
            headers: dict[str, str] = {}
            token = None
            if request.body is not None:
                headers["Content-Type"] = request.content_type
            if request.authorised:
                # Before taking a slot: the token request needs a slot of its own, and a
                # thousand callers holding every slot while they wait for it would deadlock.
                token = self.tokens.fresh() or await self.tokens.get()
                headers["Authorization"] = "Bearer " + token.value
            async with self._slots:
                if self.limiter.limited:
                    await self.limiter.acquire()
                else:
                    self.limiter.sent()
                self.counters.requests[kind] += 1
                started = time.monotonic()
                try:
                    async with session.request(
                        method,
                        request.url,
                        params=request.params,
                        data=request.body,
                        headers=headers,
                    ) as response:
                        status = response.status
                        if log.isEnabledFor(logging.DEBUG):
                            log.debug(
                                "%s %s -> %d in %.1f ms",
                                method,
                                response.url.path,
                                status,
                                (time.monotonic() - started) * 1000,
                            )
                        if status == 401 and token is not None:
                            self.tokens.invalidate(token)
                            if not replayed:
                                replayed = True
                                continue
                            raise AuthenticationError(
                                f"{kind}: the server refused a freshly issued token (HTTP 401); "
                                "check that the credentials are allowed to use this API",
                                status=401,
                            )
                        if 200 <= status < 300:
                            self.limiter.succeeded()
                            return await handle(response)
                        await self._raise_for_status(request, response)
                except aiohttp.ClientError as exc:
                    raise self._map_client_error(kind, request.url, exc) from exc
                except TimeoutError as exc:
                    error = RequestTimeout(f"{kind}: no answer within the read timeout")
                    error.__cause__ = exc
                    raise Retryable(error, sent=True) from exc

    async def _raise_for_status(self, request: _Request, response: aiohttp.ClientResponse) -> None:
        kind, status = request.kind, response.status
        retry_after = retry_after_seconds(response.headers.get("Retry-After"), now=time.time())
        if status == 429:
            self.counters.throttled += 1
            self.limiter.throttled()
            if not request.idempotent:
                # A definite refusal: nothing was created, so this is no uncertain delivery.
                when = f"; retry after {retry_after:.0f}s" if retry_after is not None else ""
                raise ApiError(
                    f"{kind}: the server refused the request (HTTP 429, too many requests){when}",
                    status=429,
                )
        if status == 429 or status >= 500:
            error = ServerError(
                f"{kind}: the server answered HTTP {status} {response.reason or ''}".rstrip(),
                status=status,
                retry_after=retry_after,
            )
            raise Retryable(error, sent=True, retry_after=retry_after)
        body = await response.content.read(_ERROR_BODY_LIMIT)
        messages = _server_messages(body)
        detail = f": {'; '.join(messages)}" if messages else ""
        raise ApiError(
            f"{kind}: the server refused the request (HTTP {status}){detail}",
            status=status,
            messages=messages,
        )

    def _map_client_error(
        self, kind: str, url: str | yarl.URL, exc: aiohttp.ClientError
    ) -> AiottsError:
        """Every aiohttp failure as an aiotts error; transient ones wrapped in ``Retryable``."""
        error: AiottsError
        if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
            return ConnectError(
                f"{kind}: TLS verification of the server failed ({exc}); if the server uses "
                "its own certificate authority, pass ca_file=... (CLI: --ca-file)"
            )
        if isinstance(exc, aiohttp.ClientConnectorError):
            error = ConnectError(
                f"{kind}: cannot connect to {exc.host}:{exc.port} ({exc.os_error})"
            )
            error.__cause__ = exc
            raise Retryable(error, sent=False) from exc
        if isinstance(exc, aiohttp.InvalidURL):
            return UsageError(f"invalid URL: {url}")
        description = type(exc).__name__ + (f": {exc}" if str(exc) else "")
        error = ServerError(f"{kind}: the connection failed mid-request ({description})")
        error.__cause__ = exc
        raise Retryable(error, sent=True) from exc

    # -- the token request -----------------------------------------------------------------

    async def _request_token(self) -> tuple[str, float]:
        """One token request (retried on transient failures). Runs under the token lock."""
        settings = self._settings
        if not settings.client_id or not settings.client_secret:
            raise AuthenticationError("no credentials: this client was opened in trial mode")
        form = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": settings.client_id,
                "client_secret": settings.client_secret,
            }
        ).encode()

        async def read_token(response: aiohttp.ClientResponse) -> tuple[str, float]:
            try:
                data: Any = orjson.loads(await read_capped(response, TOKEN_ANSWER_LIMIT, "token"))
                value = data["access_token"]
                expires_in = float(data.get("expires_in", 3600))
            except BodyTooLargeError as exc:
                raise Retryable(ServerError(str(exc)), sent=True) from exc
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                error = ServerError("token: the answer is not a token")
                error.__cause__ = exc
                raise Retryable(error, sent=True) from exc
            if not isinstance(value, str) or not value or expires_in <= 0:
                raise Retryable(ServerError("token: the answer holds no usable token"), sent=True)
            return value, expires_in

        try:
            return await self.request(
                "token",
                "POST",
                settings.token_url,
                read_token,
                body=form,
                content_type="application/x-www-form-urlencoded",
                authorised=False,
            )
        except ApiError as exc:
            raise CredentialsError(
                "the token endpoint refused the credentials"
                + (f" ({'; '.join(exc.messages)})" if exc.messages else "")
                + ": check ASPOSE_CLIENT_ID and ASPOSE_CLIENT_SECRET",
                status=exc.status,
            ) from None
        except ServerError as exc:
            if exc.status == 429:
                raise TokenRateLimitedError(
                    "the token endpoint answered 429 (too many failed attempts for these "
                    "credentials); wait before trying again",
                    retry_after=exc.retry_after,
                ) from None
            raise
