"""The network a client sends through: proxies, the User-Agent, extra headers.

Everything here is decided once, when the client is built, so a request only looks up
what was decided (no environment read, no thread hop, per request).

Proxies. ``proxy=`` names one explicitly; ``trust_env=True`` takes it from
``HTTP_PROXY``/``HTTPS_PROXY`` (either case, read as Python's ``urllib`` reads them)
and skips it for hosts that ``NO_PROXY`` names. aiotts does not hand ``trust_env`` to
aiohttp: aiohttp's would also send the ``~/.netrc`` login of the API's host as a Basic
``Authorization`` header (which clashes with the bearer token), take proxy credentials
from ``~/.netrc``, and read the environment in a thread on every request. So aiotts reads
only the proxy variables, once, for the two URLs it talks to (``token_url`` and
``base_url``). A proxy is an ``http://`` URL; ``https://`` requests go through it in a
``CONNECT`` tunnel, so the proxy sees only the target's host and port, never the secret.

Proxy credentials (``proxy_auth``, or ``user:password@`` in the proxy URL) are taken out
of the URL before aiohttp sees it, sent as ``Proxy-Authorization`` only to the proxy, and
registered with ``_redact``: no error, log line or repr shows them. Errors name the proxy
by its URL without credentials.
"""

from __future__ import annotations

import base64
import platform
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import yarl

from aiotts import _redact
from aiotts._errors import AiottsError, ConnectError, UsageError
from aiotts._retry import Retryable

__all__ = [
    "PROXY_ERRORS",
    "Proxy",
    "Route",
    "check_headers",
    "env_proxy",
    "parse_proxy",
    "proxy_error",
    "user_agent",
]

PROXY_ERRORS = (aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError)
"""aiohttp's failures of the proxy itself: it could not be reached, or it refused a tunnel."""

# Headers aiotts sets itself for every request: a user's value would break the request.
_RESERVED_HEADERS = frozenset(
    {"authorization", "content-type", "content-length", "host", "proxy-authorization"}
)


def user_agent() -> str:
    """``aiotts/X.Y.Z aiohttp/X.Y.Z python/X.Y.Z``: who is asking, on every request."""
    from aiotts import __version__

    return f"aiotts/{__version__} aiohttp/{aiohttp.__version__} python/{platform.python_version()}"


def check_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The user's extra headers, checked: strings only, none that aiotts sets itself."""
    if headers is None:
        return {}
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise UsageError(f"headers must map strings to strings, got {name!r}: {value!r}")
        if name.lower() in _RESERVED_HEADERS:
            raise UsageError(
                f"headers may not set {name}: aiotts sets it for each request itself "
                "(for proxy credentials pass proxy_auth=...)"
            )
        if any(c in name + value for c in "\r\n\0"):
            raise UsageError(f"the header {name!r} holds a line break or a NUL character")
        checked[name] = value
    return checked


@dataclass(frozen=True, slots=True)
class Proxy:
    """One proxy: its URL without credentials, and the ``Proxy-Authorization`` value."""

    url: yarl.URL
    authorization: str | None = field(default=None, repr=False)

    @property
    def shown(self) -> str:
        """The proxy as errors name it: scheme, host and port, never its credentials."""
        return str(self.url.origin())

    def __repr__(self) -> str:
        auth = ", with credentials" if self.authorization else ""
        return f"Proxy({self.shown}{auth})"


def _basic(login: str, password: str) -> str:
    value = base64.b64encode(f"{login}:{password}".encode()).decode("ascii")
    _redact.register_secret(password)
    _redact.register_secret(value)
    return "Basic " + value


def parse_proxy(
    url: str | yarl.URL,
    auth: aiohttp.BasicAuth | tuple[str, str] | None = None,
    *,
    source: str = "proxy",
) -> Proxy:
    """``url`` (an ``http://`` proxy, credentials optional) as a ``Proxy``; ``source`` names
    where it came from in errors (``proxy``, ``HTTPS_PROXY``...)."""
    text = str(url)
    try:
        parsed = yarl.URL(text)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{source} is not a URL: {exc}") from None
    shown = str(parsed.with_user(None)) if parsed.host else _redact.server_text(text)
    if parsed.scheme != "http" or not parsed.host:
        raise UsageError(
            f"{source} must be an http:// URL such as http://proxy.example:3128, got {shown}: "
            "aiotts sends https:// requests through it in a CONNECT tunnel"
        )
    if parsed.path not in ("", "/") or parsed.query_string or parsed.fragment:
        raise UsageError(f"{source} must be a proxy's address only (no path), got {shown}")
    in_url = parsed.user is not None or parsed.password is not None
    if in_url and auth is not None:
        raise UsageError(f"give the proxy's credentials once: in {source}'s URL or in proxy_auth")
    authorization = None
    if in_url:
        authorization = _basic(parsed.user or "", parsed.password or "")
    elif isinstance(auth, aiohttp.BasicAuth):
        authorization = _basic(auth.login, auth.password)
    elif auth is not None:
        pair = isinstance(auth, tuple) and len(auth) == 2
        if not (pair and all(isinstance(part, str) for part in auth)):
            raise UsageError("proxy_auth must be an aiohttp.BasicAuth or a (login, password) pair")
        authorization = _basic(*auth)
    return Proxy(parsed.with_user(None).with_path(""), authorization)


def env_proxy(url: str) -> Proxy | None:
    """The proxy the environment names for ``url`` (``HTTP_PROXY`` or ``HTTPS_PROXY`` by
    its scheme), or None when there is none or ``NO_PROXY`` names its host."""
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies()
    chosen = proxies.get(parts.scheme)
    if not chosen or (parts.hostname and urllib.request.proxy_bypass(parts.hostname)):
        return None
    if "://" not in chosen:
        chosen = "http://" + chosen  # ``host:port``, as curl and urllib take it
    return parse_proxy(chosen, source=f"{parts.scheme.upper()}_PROXY")


@dataclass(frozen=True, slots=True)
class Route:
    """How requests to one origin are sent: the proxy (if any), and what aiohttp is told
    per request for it."""

    proxy: Proxy | None
    options: Mapping[str, Any]
    """Keyword arguments of every request to this origin (proxy, tunnel headers)."""
    headers: Mapping[str, str]
    """Headers every request to this origin starts from (empty: the session's own)."""

    @classmethod
    def to(
        cls, url: str, proxy: Proxy | None, headers: Mapping[str, str], extra: Mapping[str, Any]
    ) -> Route:
        options: dict[str, Any] = dict(extra)
        start = dict(headers)
        if proxy is not None:
            options["proxy"] = proxy.url
            if proxy.authorization is not None:
                if url.startswith("https:"):
                    # Sent on the CONNECT only: the tunnel's far end never sees it.
                    options["proxy_headers"] = {"Proxy-Authorization": proxy.authorization}
                else:
                    # A plain request goes to the proxy as it is, so its header is the
                    # proxy's (aiohttp would only add it through its deprecated proxy_auth).
                    start["Proxy-Authorization"] = proxy.authorization
        return cls(proxy, options, start)

    def through(self) -> str:
        """`` (through the proxy URL)`` for a message, or nothing."""
        return f" (through the proxy {self.proxy.shown})" if self.proxy else ""


def proxy_error(kind: str, proxy: Proxy | None, exc: BaseException) -> AiottsError | Retryable:
    """The aiotts error for a failure of the proxy itself (``PROXY_ERRORS``). The request
    never reached the server, so any of it may be retried, except a refusal of the
    proxy's credentials."""
    name = proxy.shown if proxy is not None else "the proxy"
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        reason = _redact.server_text(exc.message or "", limit=80)
        what = f"{kind}: the proxy {name} refused to open a tunnel: HTTP {exc.status} {reason}"
        if exc.status == 407:
            return ConnectError(
                what.rstrip() + "; check the proxy's credentials (proxy_auth=..., or "
                "user:password@ in the proxy URL)",
                status=407,
            )
        return Retryable(ConnectError(what.rstrip(), status=exc.status), sent=False)
    detail = _redact.server_text(str(exc) or type(exc).__name__)
    return Retryable(
        ConnectError(f"{kind}: cannot connect to the proxy {name} ({detail})"), sent=False
    )
