"""The HTTP layer: one aiohttp session, one connection pool, one token, one rate limiter.

Every request of a client goes through ``HttpSession.request``, which puts it through, in
order: a slot in front of the pool (so waiting happens here, before any timeout starts),
the shared rate limiter, the token (for authorised calls), the request itself, and the
mapping of every answer and every foreign failure to aiotts's errors. This module is the
one place where foreign exceptions become ours: ``foreign_error`` reads them off one table
(exception type -> aiotts error, whether the request may have been sent, whether to retry).

A 401 drops the token that was refused (only if it is still the current one) and replays
the request once with a fresh token; a second 401 is an ``AuthenticationError``, and so is
every request once the server has refused several fresh tokens in a row (see ``_auth``).

Redirects are never followed, neither by aiohttp nor by aiotts: the API uses none, and a
redirect re-sends what it redirects (the token form with the client secret, the bearer
token) to wherever ``Location`` points, https to http included. A 3xx is therefore an
error naming the status and the target, and nothing is sent there: an
``AuthenticationError`` for the token request, a ``ResponseError`` for any other (neither
is retried). So credentials and tokens only ever go to the configured URLs.

Text from the server (error bodies, reason phrases, ``Location``, failure descriptions)
passes through ``_redact.server_text`` before it reaches an exception or a log line.

A call may carry a deadline (``timeout``): the whole call, token, retries and body
included, runs in one cancel scope; past it, a ``RequestTimeout`` names the call and the
deadline (an ``UncertainDelivery`` for a non-idempotent request that may have been sent).

The aiohttp session is aiotts's own (made at ``open``, closed at ``close``) unless one is
given in (``SessionSettings.session``, or only its ``connector``): aiotts never closes
what it did not open. With a session given in, what keeps aiotts safe is passed with
each request, where aiohttp lets it override the session's own settings: no redirects,
``raise_for_status=False``, decompression on, the read buffer, aiotts's connect and read
timeouts, the proxy, and the User-Agent and extra headers (unless the session sets its
own). ``derive`` makes a view: the same pool, token, limiter and counters, other
timeouts and retry policy.
"""

from __future__ import annotations

import asyncio
import copy
import email.utils
import math
import ssl
import time
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

import aiohttp
import anyio
import orjson
import yarl

from aiotts import _redact
from aiotts._auth import TokenManager
from aiotts._body import ERROR_BODY_LIMIT, READ_CHUNK, TOKEN_ANSWER_LIMIT, read_prefix
from aiotts._config import Limits, RetryPolicy, Timeouts
from aiotts._errors import (
    AiottsError,
    ApiError,
    AuthenticationError,
    ClientClosedError,
    ConnectError,
    CredentialsError,
    RequestTimeout,
    ResponseError,
    ServerError,
    TokenRateLimitedError,
    TokenUnavailableError,
    UsageError,
)
from aiotts._hooks import SILENT, Emitter
from aiotts._network import PROXY_ERRORS, Proxy, Route, proxy_error, user_agent
from aiotts._ratelimit import RateLimiter
from aiotts._retry import Retryable, UncertainDelivery, retry_after
from aiotts._slots import Slots

__all__ = [
    "READ_CHUNK",
    "Handler",
    "HttpSession",
    "RequestCounters",
    "SessionSettings",
    "foreign_error",
]

T = TypeVar("T")


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
    base_url: str = ""
    """The API's address (its scheme decides how a proxy is spoken to)."""
    api_proxy: Proxy | None = None
    """The proxy of requests to the API (``base_url``), if any."""
    token_proxy: Proxy | None = None
    """The proxy of the token request (``token_url``), if any."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra headers of every request; a ``User-Agent`` here replaces aiotts's."""
    session: aiohttp.ClientSession | None = None
    """A session given in: used, never closed."""
    connector: aiohttp.BaseConnector | None = None
    """A connector given in: aiotts's own session runs on it, and never closes it."""


def client_timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
    """aiotts's timeouts as aiohttp's: no total (each call has its own deadline), and
    bounds on connecting and on each wait for bytes."""
    return aiohttp.ClientTimeout(
        total=None,
        connect=timeouts.connect,
        sock_connect=timeouts.connect,
        sock_read=timeouts.read,
    )


class _Pool:
    """What a session and all its views share: the aiohttp session while it is open."""

    __slots__ = ("calls", "closed", "session", "timeouts")

    def __init__(self, timeouts: Timeouts) -> None:
        self.session: aiohttp.ClientSession | None = None
        self.closed = False
        self.calls: set[anyio.CancelScope] = set()
        """The deadlines of the single calls running: ``close`` ends them."""
        self.timeouts = timeouts
        """The timeouts the session was made with (its views may have others)."""


@dataclass(slots=True)
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
    sent: bool = False
    """Set once an attempt was handed to the pool: from then on it may have arrived."""


@dataclass(frozen=True, slots=True)
class _Foreign:
    """One row of the table of foreign failures."""

    types: tuple[type[BaseException], ...]
    error: type[AiottsError]
    sent: bool
    """Whether the request may have reached the server when this is raised."""
    retry: bool
    what: str


# First match wins, so subclasses come before their bases.
_FOREIGN_TABLE: tuple[_Foreign, ...] = (
    _Foreign(
        (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError),
        ConnectError,
        sent=False,
        retry=False,
        what="TLS verification of the server failed ({detail}); if the server uses its own "
        "certificate authority, pass ca_file=... (CLI: --ca-file)",
    ),
    _Foreign(
        (aiohttp.ClientConnectorError,),
        ConnectError,
        sent=False,
        retry=True,
        what="cannot connect to the server ({detail})",
    ),
    _Foreign(
        (aiohttp.ConnectionTimeoutError,),
        RequestTimeout,
        sent=False,
        retry=True,
        what="no connection within the connect timeout ({detail})",
    ),
    _Foreign(
        (aiohttp.InvalidURL,),
        UsageError,
        sent=False,
        retry=False,
        what="the URL is not valid ({detail})",
    ),
    _Foreign(
        (TimeoutError,),  # aiohttp's read timeout, asyncio's and anyio's alike
        RequestTimeout,
        sent=True,
        retry=True,
        what="no answer within the read timeout ({detail})",
    ),
    _Foreign(
        (aiohttp.ClientError, OSError),
        ServerError,
        sent=True,
        retry=True,
        what="the connection failed mid-request ({detail})",
    ),
    _Foreign(
        (ValueError, TypeError),  # a header or URL refused while the request was built or read
        ResponseError,
        sent=True,
        retry=False,
        what="the request could not be sent or its answer not read ({detail})",
    ),
)
_FOREIGN_TYPES = tuple(kind for row in _FOREIGN_TABLE for kind in row.types)


def foreign_error(kind: str, exc: BaseException) -> AiottsError | Retryable:
    """The aiotts error for a foreign failure of a ``kind`` request, wrapped in
    ``Retryable`` when it may pass. Raise it ``from exc``."""
    detail = type(exc).__name__ + (f": {exc}" if str(exc) else "")
    for row in _FOREIGN_TABLE:
        if isinstance(exc, row.types):
            error = row.error(f"{kind}: " + row.what.format(detail=_redact.server_text(detail)))
            return Retryable(error, sent=row.sent) if row.retry else error
    return ResponseError(f"{kind}: {_redact.server_text(detail)}")


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
    """The human-readable parts of an error body (ASP.NET validation, OAuth or plain text),
    each made safe to show."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return (_redact.server_text(text),) if text and not text.startswith("<") else ()
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
    return tuple(_redact.server_text(message) for message in messages[:20])


def _redirect_refusal(kind: str, response: aiohttp.ClientResponse) -> str:
    location = response.headers.get("Location")
    target = _redact.server_text(location) if location else "nowhere (no Location header)"
    return (
        f"{kind}: the server answered HTTP {response.status}, a redirect to {target}; aiotts "
        "follows no redirects, so nothing was sent there: set base_url (and token_url) to "
        "the address that answers"
    )


def _adopt(
    session: aiohttp.ClientSession, loop: asyncio.AbstractEventLoop
) -> aiohttp.ClientSession:
    """A session given in, if it can carry this client's requests."""
    if session.closed:
        raise UsageError(
            "the aiohttp session given in is closed: pass an open one (aiotts never closes "
            "a session it did not open, so keep it open while the client is)"
        )
    if getattr(session, "_loop", loop) is not loop:
        raise UsageError(
            "the aiohttp session given in belongs to another event loop: make it inside "
            "the loop that opens the client"
        )
    return session


class HttpSession:
    """Owns the aiohttp session (unless one was given in). Opened once inside the running
    loop, closed once."""

    events: Emitter = SILENT
    """Where answers, retries and 429s are reported (the client's hooks and log records)."""

    def __init__(self, settings: SessionSettings) -> None:
        self._settings = settings
        _redact.register_secret(settings.client_secret)
        self._pool = _Pool(settings.timeouts)
        self._api_route, self._token_route = self._routes(settings)
        self._slots = Slots(settings.limits.polls)
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
        given = " (session given in)" if self._settings.session is not None else ""
        return f"<HttpSession {state}{given} {self.counters!r} {self.limiter!r} {self.tokens!r}>"

    def _routes(self, settings: SessionSettings) -> tuple[Route, Route]:
        """How requests to the API and to the token endpoint are sent, decided once."""
        own_headers = {"User-Agent": user_agent(), **settings.headers}
        extra: dict[str, Any] = {}
        headers: dict[str, str] = {}
        given = settings.session
        if given is not None:
            # The session's own settings may be anything: what aiotts relies on goes with
            # each request. Its own headers beat aiotts's User-Agent, not the user's.
            extra.update(raise_for_status=False, auto_decompress=True, read_bufsize=READ_CHUNK)
            headers = {
                name: value
                for name, value in own_headers.items()
                if name in settings.headers or name not in given.headers
            }
        if given is not None or settings.timeouts != self._pool.timeouts:
            extra["timeout"] = client_timeout(settings.timeouts)
        if (given is not None or settings.connector is not None) and settings.ssl is not True:
            extra["ssl"] = settings.ssl  # the connector given in verifies as it was made to
        api = Route.to(settings.base_url, settings.api_proxy, headers, extra)
        token = Route.to(settings.token_url, settings.token_proxy, headers, extra)
        return api, token

    def derive(self, *, timeouts: Timeouts, retry: RetryPolicy) -> HttpSession:
        """A view of this session with other timeouts and retry policy: the same pool,
        token, rate limiter, slots and counters, so it opens and closes with this one."""
        view = copy.copy(self)
        view._settings = replace(self._settings, timeouts=timeouts, retry=retry)
        view._api_route, view._token_route = view._routes(view._settings)
        return view

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def _session(self) -> aiohttp.ClientSession | None:
        return self._pool.session

    @property
    def _closed(self) -> bool:
        return self._pool.closed

    async def open(self) -> None:
        if self._closed:
            raise ClientClosedError("this client was closed; create a new TTSClient")
        if self._session is not None:
            raise UsageError("this client is already open")
        settings = self._settings
        loop = asyncio.get_running_loop()
        if settings.session is not None:
            self._pool.session = _adopt(settings.session, loop)
            return
        connector = settings.connector
        if connector is None:
            connector = aiohttp.TCPConnector(
                limit=settings.limits.polls, ssl=settings.ssl, enable_cleanup_closed=True
            )
        elif connector.closed or getattr(connector, "_loop", loop) is not loop:
            raise UsageError(
                "the connector given in is closed or belongs to another event loop: make it "
                "inside the loop that opens the client, and keep it open while the client is"
            )
        self._pool.session = aiohttp.ClientSession(
            connector=connector,
            connector_owner=settings.connector is None,
            timeout=client_timeout(settings.timeouts),
            headers={"User-Agent": user_agent(), **settings.headers},
            read_bufsize=READ_CHUNK,
            raise_for_status=False,
            auto_decompress=True,
        )

    async def close(self) -> None:
        """Close the pool if aiotts opened it (a session given in stays open, a connector
        given in too); safe to call more than once."""
        pool = self._pool
        pool.closed = True
        for call in pool.calls:
            call.cancel()
        session, pool.session = pool.session, None
        if session is not None and self._settings.session is None:
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
        timeout: float | None = None,  # noqa: ASYNC109 -- kept by a cancel scope below
    ) -> T:
        """Send one request (retried as its kind allows) and return what ``handle`` makes of
        its 2xx response. ``handle`` runs inside the attempt, so a body cut off while it
        reads is retried like any other failure of an idempotent request.

        ``timeout`` bounds the whole call (token, retries, body): past it, a
        ``RequestTimeout``, or ``UncertainDelivery`` for a non-idempotent request that may
        have been sent. ``None``: no deadline (each wait for bytes is still bounded by
        ``Timeouts.read``)."""
        request = _Request(kind, method, url, params, body, content_type, authorised, idempotent)
        if timeout is not None:
            return await self._within(request, handle, deadline=timeout)
        # A batch's polls (their deadlines are the scheduler's): no scope, no extra frame.
        try:
            return await self._send(request, handle)  # the common case: nothing to retry
        except Retryable as first:
            return await self._retry(first, request, handle)

    async def _within(self, request: _Request, handle: Handler[T], *, deadline: float) -> T:
        """The request under one cancel scope of ``deadline`` seconds, which ``close``
        also cancels."""
        scope = anyio.move_on_after(deadline)
        calls = self._pool.calls
        calls.add(scope)
        try:
            with scope:
                try:
                    return await self._send(request, handle)
                except Retryable as first:
                    return await self._retry(first, request, handle)
        finally:
            calls.discard(scope)
        # Only reached when the deadline or the client's close cancelled the call.
        if self._closed:
            raise ClientClosedError(
                f"{request.kind}: the client was closed while this call was running"
            )
        kind, idempotent = request.kind, request.idempotent
        error = RequestTimeout(
            f"{kind}: no complete answer within the call's deadline of {deadline:g}s "
            "(Timeouts.call, or the call's timeout argument)"
        )
        if request.sent and not idempotent:
            raise UncertainDelivery(error)
        raise error

    async def _retry(self, failure: Retryable, request: _Request, handle: Handler[T]) -> T:
        """The one retry loop, entered only after a first attempt failed."""
        return await retry_after(
            failure,
            partial(self._send, request, handle),
            self._settings.retry,
            idempotent=request.idempotent,
            clock=time.monotonic,
            sleep=anyio.sleep,
            on_retry=partial(self._count_retry, request.kind),
        )

    def _count_retry(self, kind: str, failure: Retryable, delay: float) -> None:
        self.counters.retries += 1
        if (retry := self.events.retry) is not None:
            retry(failure, delay, kind)

    async def _send(self, request: _Request, handle: Handler[T]) -> T:
        session = self._require_open()
        kind, method = request.kind, request.method
        route = self._token_route if kind == "token" else self._api_route
        replayed = False
        while True:
            headers = dict(route.headers) if route.headers else {}
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
                request.sent = True
                started = time.monotonic()
                try:
                    async with session.request(
                        method,
                        request.url,
                        params=request.params,
                        data=request.body,
                        headers=headers,
                        allow_redirects=False,  # see the module docstring
                        **route.options,
                    ) as response:
                        status = response.status
                        if (answered := self.events.response) is not None:
                            answered(kind, method, status, started, response.url)
                        if 200 <= status < 300:
                            self.limiter.succeeded()
                            if token is not None:
                                self.tokens.accepted()
                            return await handle(response)
                        if status == 401 and token is not None:
                            self.tokens.invalidate(token, sent_at=started)
                            if not replayed:
                                replayed = True
                                continue
                            raise AuthenticationError(
                                f"{kind}: the server refused a freshly issued token (HTTP 401): "
                                "check the credentials' permissions for this API",
                                status=401,
                            )
                        await self._raise_for_status(request, response, route)
                except (AiottsError, Retryable):
                    raise
                except PROXY_ERRORS as exc:
                    raise proxy_error(kind, route.proxy, exc) from _redact.safe_cause(exc)
                except _FOREIGN_TYPES as exc:
                    raise foreign_error(kind, exc) from _redact.safe_cause(exc)

    async def _raise_for_status(
        self, request: _Request, response: aiohttp.ClientResponse, route: Route
    ) -> None:
        kind, status = request.kind, response.status
        if status == 407 and route.proxy is not None:
            raise ConnectError(
                f"{kind}: the proxy {route.proxy.shown} refused the request (HTTP 407, proxy "
                "authentication required): check the proxy's credentials (proxy_auth=..., or "
                "user:password@ in the proxy URL)",
                status=407,
            )
        if 300 <= status < 400:
            raise ResponseError(_redirect_refusal(kind, response), status=status)
        retry_after = retry_after_seconds(response.headers.get("Retry-After"), now=time.time())
        if status == 429:
            self.counters.throttled += 1
            self.limiter.throttled()
            if (throttled := self.events.throttled) is not None:
                throttled(kind, retry_after, self.limiter.rate)
            if not request.idempotent:
                # A definite refusal: nothing was created, so this is no uncertain delivery.
                when = f"; retry after {retry_after:.0f}s" if retry_after is not None else ""
                raise ApiError(
                    f"{kind}: the server refused the request (HTTP 429, too many requests){when}",
                    status=429,
                    retry_after=retry_after,
                )
        if status == 429 or status >= 500:
            reason = _redact.server_text(response.reason or "", limit=80)
            error = ServerError(
                f"{kind}: the server answered HTTP {status} {reason}".rstrip() + route.through(),
                status=status,
                retry_after=retry_after,
            )
            raise Retryable(error, sent=True, retry_after=retry_after)
        body, _ = await read_prefix(response, ERROR_BODY_LIMIT)  # the rest is left unread
        messages = _server_messages(body)
        detail = f": {'; '.join(messages)}" if messages else ""
        raise ApiError(
            f"{kind}: the server refused the request (HTTP {status}){detail}",
            status=status,
            messages=messages,
        )

    # -- the token request -----------------------------------------------------------------

    async def _request_token(self) -> tuple[object, object]:
        """One token request (retried on transient failures). Runs under the token lock.
        Returns ``access_token`` and ``expires_in`` as sent; ``TokenManager`` checks them."""
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

        async def read_token(response: aiohttp.ClientResponse) -> tuple[object, object]:
            body, longer = await read_prefix(response, TOKEN_ANSWER_LIMIT)
            if longer:
                raise AuthenticationError(
                    f"token: the answer is longer than {TOKEN_ANSWER_LIMIT // 1024} KiB, so it "
                    "is no token; check token_url"
                )
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise Retryable(ServerError("token: the answer is not JSON"), sent=True) from exc
            if not isinstance(data, dict) or "access_token" not in data:
                raise Retryable(ServerError("token: the answer holds no access_token"), sent=True)
            return data["access_token"], data.get("expires_in")

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
        except ResponseError as exc:
            if exc.status is not None and 300 <= exc.status < 400:
                raise AuthenticationError(str(exc), status=exc.status) from None
            raise
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
            raise _token_unavailable(exc) from exc
        except RequestTimeout as exc:
            raise _token_unavailable(exc) from exc


def _token_unavailable(error: AiottsError) -> TokenUnavailableError:
    return TokenUnavailableError(
        f"no token: the token endpoint kept failing through the retries ({error}); "
        "try again later, or check token_url",
        status=error.status,
    )
