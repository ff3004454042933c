"""TTSClient's lifecycle, configuration and credentials."""

from __future__ import annotations

import pytest

from aiotts import ClientClosedError, Timeouts, TTSClient, UsageError
from aiotts.emulator import Emulator
from tests.helpers import client_for

pytestmark = pytest.mark.anyio


async def test_one_session_with_explicit_timeouts_closed_once(emulator: Emulator) -> None:
    client = client_for(emulator, timeouts=Timeouts(connect=3, read=7))
    async with client:
        http = client._session._session
        assert http is not None
        assert http.timeout.total is None
        assert http.timeout.connect == 3
        assert http.timeout.sock_read == 7
        assert http.connector is not None and http.connector.limit == 32
        await client.status(emulator.create_tasks(["hello"])[0])
    assert http.closed
    assert client._session._session is None
    await client.aclose()  # a second close is harmless
    assert "closed" in repr(client)


async def test_reopening_a_closed_client_is_refused(emulator: Emulator) -> None:
    client = client_for(emulator)
    async with client:
        pass
    with pytest.raises(ClientClosedError, match="create a new TTSClient"):
        async with client:
            pass


async def test_calls_outside_the_context_are_refused_clearly(emulator: Emulator) -> None:
    client = client_for(emulator)
    with pytest.raises(ClientClosedError, match="async with TTSClient"):
        await client.submit("hello")
    async with client:
        pass
    with pytest.raises(ClientClosedError, match="closed"):
        await client.status("x")


async def test_credentials_from_the_environment(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASPOSE_CLIENT_ID", emulator.client_id)
    monkeypatch.setenv("ASPOSE_CLIENT_SECRET", emulator.client_secret)
    async with TTSClient(base_url=emulator.url) as client:
        task_id = await client.submit("from the environment")
        assert task_id in emulator.task_ids()


def test_missing_credentials_name_every_way_to_give_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASPOSE_CLIENT_ID", raising=False)
    monkeypatch.delenv("ASPOSE_CLIENT_SECRET", raising=False)
    with pytest.raises(UsageError) as caught:
        TTSClient()
    message = str(caught.value)
    assert "ASPOSE_CLIENT_ID" in message and "trial=True" in message


def test_trial_mode_takes_no_credentials() -> None:
    with pytest.raises(UsageError, match="trial mode"):
        TTSClient("id", "secret", trial=True)


@pytest.mark.parametrize(
    "url", ["http://api.example.com", "http://10.0.0.5:8080", "http://[2001:db8::1]"]
)
def test_credentials_never_go_over_plain_http_to_another_host(url: str) -> None:
    with pytest.raises(UsageError, match="unencrypted"):
        TTSClient("id", "secret", base_url=url)
    with pytest.raises(UsageError, match="unencrypted"):
        TTSClient("id", "secret", token_url=url + "/connect/token")
    TTSClient("id", "secret", base_url=url, allow_insecure_http=True)
    TTSClient(trial=True, base_url=url)  # nothing secret to send


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:1", "http://localhost:8080", "http://[::1]:80", "https://x.org"]
)
def test_loopback_and_https_are_fine(url: str) -> None:
    TTSClient("id", "secret", base_url=url)


def test_the_secret_is_never_in_the_repr() -> None:
    client = TTSClient("my-id", "super-secret-value", base_url="http://127.0.0.1:1")
    assert "super-secret-value" not in repr(client)
    assert "super-secret-value" not in repr(client._session)


def test_bad_urls_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="base_url"):
        TTSClient("id", "secret", base_url="ftp://x")
