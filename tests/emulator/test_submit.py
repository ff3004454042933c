"""Submit, authorised and trial: ids, 401s, validation 400s, the trial's limits."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from aiotts.emulator import Emulator, EmulatorConfig, ManualClock

from .conftest import API, TRIAL, bearer, get_token

pytestmark = pytest.mark.anyio

ID = re.compile(r"^TTS[0-9a-f]{5}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
BODY = {"text": "Read this text aloud", "settings": {"language": "English", "resultType": "Wav"}}


async def test_submit_returns_a_bare_id_as_text_plain(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    token = await get_token(http, emu)
    async with http.post(emu.url + API, json=BODY, headers=bearer(token)) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
        task_id = await resp.text()
    assert ID.match(task_id)
    assert emu.task_ids() == (task_id,)
    record = emu.record(task_id)
    assert record.text == BODY["text"]
    assert not record.trial
    stats = emu.stats()
    assert stats.count("submit", 200) == 1
    assert stats.tasks_created == 1


@pytest.mark.parametrize(
    "path",
    [
        "/v5.0/ocr/converttexttospeech",
        "/V5.0/OCR/CONVERTTEXTTOSPEECH",
        "/v5.0/ocr/ConvertTextToSpeech/",
    ],
)
async def test_paths_match_case_insensitively(
    emu: Emulator, http: aiohttp.ClientSession, path: str
) -> None:
    token = await get_token(http, emu)
    async with http.post(emu.url + path, json=BODY, headers=bearer(token)) as resp:
        assert resp.status == 200
        assert ID.match(await resp.text())


async def test_unknown_path_is_404(emu: Emulator, http: aiohttp.ClientSession) -> None:
    async with http.get(emu.url + "/v5.0/ocr/Nothing") as resp:
        assert resp.status == 404
    assert emu.stats().count("unknown", 404) == 1


@pytest.mark.parametrize(
    ("headers", "challenge"),
    [
        ({}, "Bearer"),
        ({"Authorization": "Bearer not-a-token"}, 'Bearer error="invalid_token"'),
        ({"Authorization": "Basic abc"}, 'Bearer error="invalid_token"'),
    ],
)
async def test_401_without_a_valid_token(
    emu: Emulator, http: aiohttp.ClientSession, headers: dict[str, str], challenge: str
) -> None:
    async with http.post(emu.url + API, json=BODY, headers=headers) as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == challenge
        assert await resp.read() == b""
    assert emu.task_ids() == ()


async def test_expired_token_is_401(
    emu: Emulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    token = await get_token(http, emu)
    clock.advance(3600)
    async with http.post(emu.url + API, json=BODY, headers=bearer(token)) as resp:
        assert resp.status == 401


async def test_settings_are_optional_and_keys_case_insensitive(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    token = await get_token(http, emu)
    for body in (
        {"text": "no settings"},
        {"Text": "capital key", "Settings": {"Language": "english", "ResultType": "WAV"}},
        {"text": "extra keys", "voice": "ignored", "settings": {"speed": 2}},
    ):
        async with http.post(emu.url + API, json=body, headers=bearer(token)) as resp:
            assert resp.status == 200, body


async def validation_errors(resp: aiohttp.ClientResponse) -> dict[str, list[str]]:
    assert resp.status == 400
    assert resp.headers["Content-Type"] == "application/problem+json; charset=utf-8"
    body: dict[str, Any] = await resp.json(content_type=None)
    assert body["title"] == "One or more validation errors occurred."
    assert body["status"] == 400
    errors: dict[str, list[str]] = body["errors"]
    return errors


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"text": ""}', "Text"),
        (b'{"text": "   "}', "Text"),
        (b'{"settings": {"language": "English"}}', "Text"),
        (b'{"text": 5}', "$.text"),
        (b'{"text": "x", "settings": {"language": "French"}}', "$.settings.language"),
        (b'{"text": "x", "settings": {"resultType": "Mp3"}}', "$.settings.resultType"),
        (b'{"text": "x", "settings": {"language": 0}}', "$.settings.language"),
        (b'{"text": "x", "settings": "English"}', "$.settings"),
        (b'{"text": "x"', "$"),
        (b"not json", "$"),
        (b"", "$"),
        (b'["text"]', "$"),
    ],
)
async def test_validation_400s(
    emu: Emulator, http: aiohttp.ClientSession, raw: bytes, field: str
) -> None:
    token = await get_token(http, emu)
    headers = {**bearer(token), "Content-Type": "application/json"}
    async with http.post(emu.url + API, data=raw, headers=headers) as resp:
        errors = await validation_errors(resp)
    assert field in errors
    assert all(isinstance(m, str) and m for m in errors[field])
    assert emu.task_ids() == ()
    assert emu.stats().count("submit", 400) == 1


async def test_authorised_texts_have_no_length_limit(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    token = await get_token(http, emu)
    async with http.post(emu.url + API, json={"text": "x" * 5000}, headers=bearer(token)) as resp:
        assert resp.status == 200


async def test_trial_submit_needs_no_token_and_marks_the_task(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(emu.url + TRIAL, json=BODY) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
        task_id = await resp.text()
    assert ID.match(task_id)
    assert emu.record(task_id).trial
    assert emu.stats().count("trial_submit", 200) == 1


async def test_trial_text_limit_is_400_with_validation_body(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(emu.url + TRIAL, json={"text": "y" * 500}) as resp:
        assert resp.status == 200
    async with http.post(emu.url + TRIAL, json={"text": "y" * 501}) as resp:
        errors = await validation_errors(resp)
    assert "500" in errors["Text"][0]


async def test_trial_daily_limit_per_address(
    http: aiohttp.ClientSession,
) -> None:
    clock = ManualClock()
    config = EmulatorConfig(trial_daily_limit=3)
    async with Emulator(config, clock=clock) as emu:
        token = await get_token(http, emu)
        statuses = []
        for _ in range(3):
            async with http.post(emu.url + TRIAL, json=BODY) as resp:
                statuses.append(resp.status)
        # Invalid trial calls and authorised submits are not counted against the limit.
        async with http.post(emu.url + API, json=BODY, headers=bearer(token)) as resp:
            assert resp.status == 200
        clock.advance(3600)
        async with http.post(emu.url + TRIAL, json=BODY) as resp:
            statuses.append(resp.status)
            retry_after = int(resp.headers["Retry-After"])
            assert resp.headers["Content-Type"] == "application/problem+json; charset=utf-8"
            assert (await resp.json(content_type=None))["status"] == 429
        assert statuses == [200, 200, 200, 429]
        assert retry_after == 86400 - 3600
        clock.advance(retry_after)
        async with http.post(emu.url + TRIAL, json=BODY) as resp:
            assert resp.status == 200  # a new day
        assert emu.stats().count("trial_submit", 429) == 1
        assert len(emu.task_ids()) == 5


async def test_invalid_trial_calls_do_not_use_the_allowance(http: aiohttp.ClientSession) -> None:
    async with Emulator(EmulatorConfig(trial_daily_limit=1)) as emu:
        async with http.post(emu.url + TRIAL, json={"text": ""}) as resp:
            assert resp.status == 400
        async with http.post(emu.url + TRIAL, json=BODY) as resp:
            assert resp.status == 200
        async with http.post(emu.url + TRIAL, json=BODY) as resp:
            assert resp.status == 429


async def test_ids_are_reproducible_from_the_seed(http: aiohttp.ClientSession) -> None:
    runs = []
    for _ in range(2):
        async with Emulator(EmulatorConfig(seed=42)) as emu:
            async with http.post(emu.url + TRIAL, json=BODY) as resp:
                first = await resp.text()
            runs.append([first, *emu.create_tasks(3)])
    assert runs[0] == runs[1]
    async with Emulator(EmulatorConfig(seed=43)) as emu:
        assert emu.create_tasks(1)[0] not in runs[0]
