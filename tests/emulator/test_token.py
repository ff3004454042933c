"""``POST /connect/token``: three ways to send credentials, refusals, lockout, expiry."""

from __future__ import annotations

import base64
from urllib.parse import quote_plus

import aiohttp
import pytest

from aiotts.emulator import Emulator, EmulatorConfig, ManualClock

from .conftest import API, TOKEN, bearer, get_token

pytestmark = pytest.mark.anyio

GRANT = {"grant_type": "client_credentials"}


def creds(emu: Emulator, secret: str | None = None) -> dict[str, str]:
    return {
        **GRANT,
        "client_id": emu.client_id,
        "client_secret": emu.client_secret if secret is None else secret,
    }


async def test_form_encoded(emu: Emulator, http: aiohttp.ClientSession) -> None:
    async with http.post(emu.url + TOKEN, data=creds(emu)) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        assert resp.headers["Cache-Control"] == "no-store"
        body = await resp.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["expires_in"] == 3600
    assert body["token_type"] == "Bearer"
    parts = body["access_token"].split(".")
    assert len(parts) == 3  # looks like a JWT
    assert all(parts)


async def test_multipart(emu: Emulator, http: aiohttp.ClientSession) -> None:
    form = aiohttp.FormData(default_to_multipart=True)
    for key, value in creds(emu).items():
        form.add_field(key, value)
    body = form()
    assert body.content_type.startswith("multipart/form-data")
    async with http.post(emu.url + TOKEN, data=body) as resp:
        assert resp.status == 200
        assert (await resp.json())["access_token"]


async def test_http_basic_client_auth(http: aiohttp.ClientSession) -> None:
    odd = {"id with space": "se:cr+et/"}
    async with Emulator(EmulatorConfig(credentials=odd)) as emu:
        # RFC 6749: each part is form-urlencoded, then joined with ':' and Base64-encoded.
        raw = f"{quote_plus('id with space')}:{quote_plus('se:cr+et/')}".encode()
        auth = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        async with http.post(emu.url + TOKEN, data=GRANT, headers=auth) as resp:
            assert resp.status == 200
        bad = {"Authorization": "Basic " + base64.b64encode(b"id+with+space:nope").decode()}
        async with http.post(emu.url + TOKEN, data=GRANT, headers=bad) as resp:
            assert resp.status == 400
            assert await resp.json() == {"error": "invalid_client"}


async def test_bad_credentials_are_400_invalid_client(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(emu.url + TOKEN, data=creds(emu, secret="wrong")) as resp:
        assert resp.status == 400
        assert await resp.json() == {"error": "invalid_client"}
    unknown = {**GRANT, "client_id": "someone-else", "client_secret": "x"}
    async with http.post(emu.url + TOKEN, data=unknown) as resp:
        assert resp.status == 400


async def test_grant_type_is_checked(emu: Emulator, http: aiohttp.ClientSession) -> None:
    form = {**creds(emu), "grant_type": "password"}
    async with http.post(emu.url + TOKEN, data=form) as resp:
        assert resp.status == 400
        assert await resp.json() == {"error": "unsupported_grant_type"}
    form.pop("grant_type")
    async with http.post(emu.url + TOKEN, data=form) as resp:
        assert resp.status == 400
        assert await resp.json() == {"error": "invalid_request"}


async def test_lockout_after_more_than_five_failures(
    emu: Emulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    statuses = []
    for _ in range(7):
        async with http.post(emu.url + TOKEN, data=creds(emu, secret="wrong")) as resp:
            statuses.append(resp.status)
            retry_after = resp.headers.get("Retry-After")
    assert statuses == [400] * 5 + [429, 429]
    assert retry_after == "600"
    # The lock is per credential pair: the right secret still works.
    await get_token(http, emu)
    clock.advance(599)
    async with http.post(emu.url + TOKEN, data=creds(emu, secret="wrong")) as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "1"
    clock.advance(1)
    async with http.post(emu.url + TOKEN, data=creds(emu, secret="wrong")) as resp:
        assert resp.status == 400  # lockout over, count starts again
    stats = emu.stats()
    assert stats.count("token", 429) == 3
    assert stats.token_requests == 10
    assert stats.tokens_issued == 1


async def test_lockout_limits_are_configurable(http: aiohttp.ClientSession) -> None:
    config = EmulatorConfig(token_failure_limit=1, token_lockout=30)
    async with Emulator(config) as emu:
        statuses = []
        for _ in range(3):
            async with http.post(emu.url + TOKEN, data=creds(emu, secret="no")) as resp:
                statuses.append((resp.status, resp.headers.get("Retry-After")))
    assert statuses == [(400, None), (429, "30"), (429, "30")]


async def test_token_expires_on_the_clock(http: aiohttp.ClientSession) -> None:
    clock = ManualClock()
    async with Emulator(EmulatorConfig(token_lifetime=5), clock=clock) as emu:
        async with http.post(emu.url + TOKEN, data=creds(emu)) as resp:
            assert (await resp.json())["expires_in"] == 5
        token = await get_token(http, emu)
        async with http.get(emu.url + API, params={"id": "x"}, headers=bearer(token)) as resp:
            assert resp.status == 200
        clock.advance(5)
        async with http.get(emu.url + API, params={"id": "x"}, headers=bearer(token)) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        fresh = await get_token(http, emu)
        async with http.get(emu.url + API, params={"id": "x"}, headers=bearer(fresh)) as resp:
            assert resp.status == 200


async def test_fractional_lifetime_is_sent_as_is(http: aiohttp.ClientSession) -> None:
    async with Emulator(EmulatorConfig(token_lifetime=1.5)) as emu:
        resp = await http.post(emu.url + TOKEN, data=creds(emu))
        assert (await resp.json())["expires_in"] == 1.5


async def test_expire_tokens_and_issue_token(emu: Emulator, http: aiohttp.ClientSession) -> None:
    token = emu.issue_token()
    async with http.get(emu.url + API, params={"id": "x"}, headers=bearer(token)) as resp:
        assert resp.status == 200
    emu.expire_tokens()
    async with http.get(emu.url + API, params={"id": "x"}, headers=bearer(token)) as resp:
        assert resp.status == 401
    assert emu.stats().token_requests == 0  # issue_token is not a request


async def test_token_endpoint_only_takes_post(emu: Emulator, http: aiohttp.ClientSession) -> None:
    async with http.get(emu.url + TOKEN) as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == "POST"
