"""Where a client connects: the argument, else AIOTTS_BASE_URL / AIOTTS_TOKEN_URL, else the default.

Each server records what it received, so the tests assert where each request really went:
the submit, and the token request that carries the secret.
"""

from __future__ import annotations

import pytest
from aiohttp import web

from aiotts import TTSClient, UsageError
from tests.hostile.servers import CLIENT_ID, CLIENT_SECRET, TOKEN, HostileServer

pytestmark = pytest.mark.anyio

SUBMIT = "/v5.0/ocr/ConvertTextToSpeech"
TOKEN_PATH = "/connect/token"


async def accept_submit(request: web.Request) -> web.StreamResponse:
    return web.Response(text="TTSfeed-0000-4000-8000-000000000001")


def api_server() -> HostileServer:
    server = HostileServer()
    server.route("POST", SUBMIT, accept_submit)
    return server


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AIOTTS_BASE_URL", "AIOTTS_TOKEN_URL", "ASPOSE_CLIENT_ID", "ASPOSE_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)


async def submit(client: TTSClient) -> str:
    async with client:
        return await client.submit("Where does this go?")


async def test_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    async with api_server() as api:
        monkeypatch.setenv("AIOTTS_BASE_URL", api.url)
        monkeypatch.setenv("ASPOSE_CLIENT_ID", CLIENT_ID)
        monkeypatch.setenv("ASPOSE_CLIENT_SECRET", CLIENT_SECRET)
        assert await submit(TTSClient()) == "TTSfeed-0000-4000-8000-000000000001"
    assert [r.path for r in api.received] == [TOKEN_PATH, SUBMIT]
    assert api.requests_to(SUBMIT)[0].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_token_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    async with api_server() as api, HostileServer() as issuer:
        monkeypatch.setenv("AIOTTS_BASE_URL", api.url)
        monkeypatch.setenv("AIOTTS_TOKEN_URL", issuer.url + TOKEN_PATH)
        await submit(TTSClient(CLIENT_ID, CLIENT_SECRET))
    assert [r.path for r in issuer.received] == [TOKEN_PATH]
    assert [r.path for r in api.received] == [SUBMIT]


async def test_arguments_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    async with api_server() as api, api_server() as elsewhere, HostileServer() as issuer:
        monkeypatch.setenv("AIOTTS_BASE_URL", elsewhere.url)
        monkeypatch.setenv("AIOTTS_TOKEN_URL", elsewhere.url + TOKEN_PATH)
        await submit(TTSClient(CLIENT_ID, CLIENT_SECRET, base_url=api.url))
        await submit(
            TTSClient(CLIENT_ID, CLIENT_SECRET, base_url=api.url, token_url=issuer.url + TOKEN_PATH)
        )
    # A base_url argument also keeps the secret away from the environment's token URL.
    assert elsewhere.received == []
    assert [r.path for r in api.received] == [TOKEN_PATH, SUBMIT, SUBMIT]
    assert [r.path for r in issuer.received] == [TOKEN_PATH]


async def test_token_url_argument_with_base_url_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with api_server() as api, HostileServer() as issuer:
        monkeypatch.setenv("AIOTTS_BASE_URL", api.url)
        monkeypatch.setenv("AIOTTS_TOKEN_URL", api.url + "/not/here")
        await submit(TTSClient(CLIENT_ID, CLIENT_SECRET, token_url=issuer.url + TOKEN_PATH))
    assert [r.path for r in api.received] == [SUBMIT]
    assert [r.path for r in issuer.received] == [TOKEN_PATH]


@pytest.mark.parametrize("value", ["", None])
def test_default_when_the_environment_is_empty(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is not None:
        monkeypatch.setenv("AIOTTS_BASE_URL", value)
        monkeypatch.setenv("AIOTTS_TOKEN_URL", value)
    assert "https://api.aspose.cloud " in repr(TTSClient(CLIENT_ID, CLIENT_SECRET))


@pytest.mark.parametrize(
    ("name", "value", "complaint"),
    [
        ("AIOTTS_BASE_URL", "api.example.com", "must be an http:// or https:// URL"),
        ("AIOTTS_BASE_URL", "http://api.example.com", "plain http://"),
        ("AIOTTS_TOKEN_URL", "ftp://127.0.0.1/token", "must be an http:// or https:// URL"),
    ],
)
def test_a_bad_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, complaint: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(UsageError, match=complaint) as caught:
        TTSClient(CLIENT_ID, CLIENT_SECRET)
    assert str(caught.value).startswith(name)
