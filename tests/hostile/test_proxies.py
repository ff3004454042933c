"""Proxies: ``proxy=`` and ``trust_env=True``, through a real proxy on 127.0.0.1.

``LocalProxy`` forwards absolute-form requests (``http://`` targets) and tunnels
``CONNECT`` (``https://`` targets, here the emulator serving TLS) and records what it
received, so each test asserts where every request really went, the token request
included.
"""

from __future__ import annotations

import logging
import ssl
import warnings
from pathlib import Path

import aiohttp
import pytest
import trustme

from aiotts import ConnectError, ResponseError, ServerError, TTSClient, UsageError
from aiotts.emulator import Emulator, EmulatorConfig
from tests.helpers import FAST_POLL, FAST_RETRY, client_for, tls_server_context
from tests.hostile.proxy import LocalProxy, closed_port
from tests.hostile.servers import CLIENT_SECRET, HostileServer
from tests.hostile.transport import FEW_RETRIES, STATUS_PATH, TASK_ID, TOKEN_PATH, client_of

pytestmark = pytest.mark.anyio

TTS_PATH = "/v5.0/ocr/ConvertTextToSpeech"
PROXY_LOGIN, PROXY_PASSWORD = "proxy-user", "proxy-PASSWORD-93c1e7"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine's own proxy settings must not leak into the tests."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def submit_and_wait(client: TTSClient, folder: Path) -> None:
    async with client:
        task_id = await client.submit("Through the proxy, please.")
        saved = await client.wait(task_id, folder, timeout=30)
        assert saved.path.stat().st_size > 44


# -- the way through ---------------------------------------------------------------------------


async def test_every_request_of_an_http_client_goes_through_the_proxy(
    emulator: Emulator, tmp_path: Path
) -> None:
    async with LocalProxy() as proxy:
        await submit_and_wait(client_for(emulator, proxy=proxy.url), tmp_path)
    origin = emulator.url
    assert proxy.targets()[:2] == [f"POST {origin}{TOKEN_PATH}", f"POST {origin}{TTS_PATH}"]
    polls = proxy.targets()[2:]
    assert polls and all(t.startswith(f"GET {origin}{TTS_PATH}?id=") for t in polls)
    assert all(s.headers["user-agent"].startswith("aiotts/") for s in proxy.seen)


async def test_https_goes_through_a_connect_tunnel(ca: trustme.CA, tmp_path: Path) -> None:
    config = EmulatorConfig(pending_seconds=0, processing_seconds=0)
    async with Emulator(config, ssl_context=tls_server_context(ca)) as emu, LocalProxy() as proxy:
        client = client_for(emu, proxy=proxy.url, ssl_context=trusting(ca))
        await submit_and_wait(client, tmp_path)
        assert emu.stats().count() > 0  # the server answered, through the tunnel
    host = f"127.0.0.1:{emu.port}"
    assert proxy.seen and set(proxy.targets()) == {f"CONNECT {host}"}
    # The proxy saw the target's address only: never the form, the secret or the token.
    assert all(CLIENT_SECRET not in str(s) and "authorization" not in s.headers for s in proxy.seen)


async def test_proxy_credentials_in_the_url_or_in_proxy_auth(
    emulator: Emulator, tmp_path: Path
) -> None:
    async with LocalProxy(credentials=(PROXY_LOGIN, PROXY_PASSWORD)) as proxy:
        with_url = proxy.url.replace("://", f"://{PROXY_LOGIN}:{PROXY_PASSWORD}@")
        await submit_and_wait(client_for(emulator, proxy=with_url), tmp_path / "a")
        pair = (PROXY_LOGIN, PROXY_PASSWORD)
        await submit_and_wait(client_for(emulator, proxy=proxy.url, proxy_auth=pair), tmp_path)
        with warnings.catch_warnings():  # deprecated in newer aiohttp, still taken
            warnings.simplefilter("ignore", DeprecationWarning)
            basic = aiohttp.BasicAuth(PROXY_LOGIN, PROXY_PASSWORD)
        await submit_and_wait(client_for(emulator, proxy=proxy.url, proxy_auth=basic), tmp_path)
    assert len(proxy.seen) >= 9
    assert all("proxy-authorization" in s.headers for s in proxy.seen)


async def test_tunnel_credentials_go_on_the_connect(ca: trustme.CA) -> None:
    async with (
        Emulator(ssl_context=tls_server_context(ca)) as emu,
        LocalProxy(credentials=(PROXY_LOGIN, PROXY_PASSWORD)) as proxy,
    ):
        pair = (PROXY_LOGIN, PROXY_PASSWORD)
        client = client_for(emu, proxy=proxy.url, proxy_auth=pair, ssl_context=trusting(ca))
        async with client:
            await client.status(TASK_ID)
    assert proxy.seen and all(s.method == "CONNECT" for s in proxy.seen)


# -- trust_env -----------------------------------------------------------------------------------


async def test_trust_env_takes_the_proxy_from_the_environment(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with LocalProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        await submit_and_wait(client_for(emulator), tmp_path / "ignored")
        assert proxy.seen == []  # aiotts ignores the variables unless told to trust them
        await submit_and_wait(client_for(emulator, trust_env=True), tmp_path)
    assert f"POST {emulator.url}{TOKEN_PATH}" in proxy.targets()
    assert f"POST {emulator.url}{TTS_PATH}" in proxy.targets()


@pytest.mark.parametrize("bypass", ["127.0.0.1", "*", "localhost,127.0.0.1"])
async def test_no_proxy_bypasses_it(
    bypass: str, emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with LocalProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", bypass)
        await submit_and_wait(client_for(emulator, trust_env=True), tmp_path)
    assert proxy.seen == []


async def test_https_proxy_variable_for_https_targets(
    ca: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Emulator(ssl_context=tls_server_context(ca)) as emu, LocalProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # for http:// only: unused
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        async with client_for(emu, trust_env=True, ssl_context=trusting(ca)) as client:
            await client.status(TASK_ID)
    assert proxy.targets() == [f"CONNECT 127.0.0.1:{emu.port}"]


# -- proxies that refuse -------------------------------------------------------------------------


def assert_names_the_proxy(
    error: BaseException, proxy: str, caplog: pytest.LogCaptureFixture
) -> None:
    text = str(error)
    assert proxy in text, text
    for secret in (PROXY_PASSWORD, CLIENT_SECRET):
        assert secret not in text and secret not in repr(error)
        assert secret not in caplog.text
    cause = error.__cause__
    while cause is not None:
        assert PROXY_PASSWORD not in str(cause)
        cause = cause.__cause__


async def test_a_forward_proxy_refusing_credentials_is_a_clear_error(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with LocalProxy(credentials=(PROXY_LOGIN, "the-right-one")) as proxy:
        wrong = proxy.url.replace("://", f"://{PROXY_LOGIN}:{PROXY_PASSWORD}@")
        async with client_for(emulator, proxy=wrong) as client:
            with pytest.raises(ConnectError) as caught:
                await client.submit("hello")
    assert "HTTP 407" in str(caught.value) and caught.value.status == 407
    assert "proxy_auth" in str(caught.value)
    assert_names_the_proxy(caught.value, proxy.url, caplog)
    assert len(proxy.seen) == 1  # the token request, refused and not retried


async def test_a_tunnel_refused_with_407_is_a_clear_error(
    ca: trustme.CA, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with (
        Emulator(ssl_context=tls_server_context(ca)) as emu,
        LocalProxy(credentials=(PROXY_LOGIN, "the-right-one")) as proxy,
    ):
        pair = (PROXY_LOGIN, PROXY_PASSWORD)
        client = client_for(emu, proxy=proxy.url, proxy_auth=pair, ssl_context=trusting(ca))
        async with client:
            with pytest.raises(ConnectError) as caught:
                await client.status(TASK_ID)
    assert "refused to open a tunnel: HTTP 407" in str(caught.value)
    assert_names_the_proxy(caught.value, proxy.url, caplog)
    assert len(proxy.seen) == 1  # not retried: other credentials are needed


async def test_a_tunnel_refused_with_502_is_retried_then_named(
    ca: trustme.CA, caplog: pytest.LogCaptureFixture
) -> None:
    async with Emulator(ssl_context=tls_server_context(ca)) as emu, LocalProxy(refuse=502) as proxy:
        client = client_for(emu, proxy=proxy.url, ssl_context=trusting(ca), retry=FEW_RETRIES)
        async with client:
            with pytest.raises(ConnectError) as caught:
                await client.submit("hello")  # the token request, refused at the tunnel
    assert "refused to open a tunnel: HTTP 502" in str(caught.value)
    assert_names_the_proxy(caught.value, proxy.url, caplog)
    assert len(proxy.seen) == FEW_RETRIES.max_attempts


async def test_a_forward_proxy_answering_502_is_named(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        LocalProxy(refuse=502) as proxy,
        client_for(emulator, proxy=proxy.url, retry=FEW_RETRIES) as client,
    ):
        with pytest.raises(ServerError) as caught:
            await client.status(TASK_ID)
    assert "HTTP 502" in str(caught.value)
    assert_names_the_proxy(caught.value, proxy.url, caplog)


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_proxy_that_refuses_connections_is_named(
    scheme: str, ca: trustme.CA, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = f"http://127.0.0.1:{closed_port()}"
    with_password = proxy.replace("://", f"://{PROXY_LOGIN}:{PROXY_PASSWORD}@")
    options = {"ssl_context": trusting(ca)} if scheme == "https" else {}
    emu = Emulator(ssl_context=tls_server_context(ca) if scheme == "https" else None)
    async with emu, client_for(emu, proxy=with_password, retry=FEW_RETRIES, **options) as client:
        with pytest.raises(ConnectError) as caught:
            await client.status(TASK_ID)
    assert "cannot connect to the proxy" in str(caught.value)
    assert_names_the_proxy(caught.value, proxy, caplog)
    assert emu.stats().count() == 0


# -- what a proxy does not change ----------------------------------------------------------------


async def test_redirects_are_still_not_followed_through_a_proxy() -> None:
    async def elsewhere_now(request: object) -> aiohttp.web.StreamResponse:
        return aiohttp.web.Response(status=302, headers={"Location": elsewhere.url + STATUS_PATH})

    async with HostileServer() as elsewhere, HostileServer() as server, LocalProxy() as proxy:
        server.route("GET", STATUS_PATH, elsewhere_now)  # type: ignore[arg-type]
        async with client_of(server, proxy=proxy.url) as client:
            with pytest.raises(ResponseError, match="HTTP 302"):
                await client.status(TASK_ID)
    assert elsewhere.received == []
    assert [t.split("?")[0] for t in proxy.targets()] == [
        f"POST {server.url}{TOKEN_PATH}",
        f"GET {server.url}{STATUS_PATH}",
    ]


# -- bad settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"proxy": "socks5://127.0.0.1:1080"}, "must be an http:// URL"),
        ({"proxy": "https://127.0.0.1:3128"}, "must be an http:// URL"),
        ({"proxy": "http://127.0.0.1:3128/path"}, "no path"),
        ({"proxy": "http://u:p@127.0.0.1:3128", "proxy_auth": ("u", "p")}, "once"),
        ({"proxy_auth": ("u", "p")}, "needs a proxy"),
        ({"proxy": "http://127.0.0.1:3128", "trust_env": True}, "not both"),
        ({"proxy": "http://127.0.0.1:3128", "proxy_auth": "u:p"}, "BasicAuth"),
    ],
)
def test_bad_proxy_settings_are_usage_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        TTSClient("id", "secret", base_url="http://127.0.0.1:9", **options)  # type: ignore[arg-type]


def test_a_bad_proxy_url_never_shows_its_password() -> None:
    with pytest.raises(UsageError) as caught:
        TTSClient(
            "id", "secret", base_url="http://127.0.0.1:9", proxy=f"ftp://u:{PROXY_PASSWORD}@h:1"
        )
    assert PROXY_PASSWORD not in str(caught.value)


def test_a_bad_proxy_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "https://127.0.0.1:3128")
    with pytest.raises(UsageError, match="HTTPS_PROXY must be an http:// URL"):
        TTSClient("id", "secret", trust_env=True, retry=FAST_RETRY, poll=FAST_POLL)
