"""The pure part of the network settings: proxies parsed, routes decided, headers checked."""

from __future__ import annotations

import pytest

from aiotts import UsageError, _redact
from aiotts._network import Route, check_headers, env_proxy, parse_proxy

PASSWORD = "unit-PROXY-pass-4d1f"


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_credentials_leave_the_url_and_never_show() -> None:
    proxy = parse_proxy(f"http://user:{PASSWORD}@proxy.example:3128")
    assert str(proxy.url) == "http://proxy.example:3128"
    assert proxy.shown == "http://proxy.example:3128"
    assert proxy.authorization is not None and proxy.authorization.startswith("Basic ")
    assert PASSWORD not in repr(proxy) and "with credentials" in repr(proxy)
    # Echoed by a careless server, in either spelling, they are scrubbed.
    echoed = f"you sent {PASSWORD} as {proxy.authorization}"
    assert PASSWORD not in _redact.server_text(echoed)
    assert proxy.authorization.removeprefix("Basic ") not in _redact.server_text(echoed)


def test_a_tunnel_carries_the_credentials_on_the_connect_a_plain_request_in_itself() -> None:
    proxy = parse_proxy("http://proxy.example:3128", ("user", PASSWORD))
    tunnel = Route.to("https://api.example", proxy, {}, {})
    assert tunnel.options["proxy_headers"] == {"Proxy-Authorization": proxy.authorization}
    assert "Proxy-Authorization" not in tunnel.headers
    plain = Route.to("http://127.0.0.1:8080", proxy, {}, {})
    assert "proxy_headers" not in plain.options
    assert plain.headers == {"Proxy-Authorization": proxy.authorization}
    direct = Route.to("https://api.example", None, {"X-Team": "a"}, {"timeout": 1})
    assert direct.options == {"timeout": 1} and direct.headers == {"X-Team": "a"}
    assert direct.through() == "" and "proxy.example" in tunnel.through()


def test_the_environment_by_scheme_and_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "http://secure.example:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://plain.example:3128")
    monkeypatch.setenv("NO_PROXY", ".internal.example,10.0.0.1")
    https = env_proxy("https://api.aspose.cloud")
    assert https is not None and https.shown == "http://secure.example:3128"
    plain = env_proxy("http://api.aspose.cloud")
    assert plain is not None and plain.shown == "http://plain.example:3128"
    assert env_proxy("https://tts.internal.example/x") is None
    assert env_proxy("http://10.0.0.1:8080") is None


def test_a_variable_without_a_scheme_is_an_http_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "proxy.example:3128")
    proxy = env_proxy("https://api.aspose.cloud")
    assert proxy is not None and proxy.shown == "http://proxy.example:3128"


def test_nothing_in_the_environment_means_no_proxy() -> None:
    assert env_proxy("https://api.aspose.cloud") is None


def test_headers_are_checked() -> None:
    assert check_headers(None) == {}
    assert check_headers({"X-Team": "audio"}) == {"X-Team": "audio"}
    with pytest.raises(UsageError, match="strings"):
        check_headers({"X-Count": 3})  # type: ignore[dict-item]
    with pytest.raises(UsageError, match="may not set authorization"):
        check_headers({"authorization": "Bearer mine"})
