"""The admin API under /_emulator/: uncounted, unfaulted, and equal to the Python API."""

from __future__ import annotations

import hashlib
import logging

import aiohttp
import pytest

from aiotts.emulator import Emulator, Faults, Stats, TaskRecord, TaskState

from .conftest import API, INSTANT, TOKEN, bearer, get_token

pytestmark = pytest.mark.anyio

ADMIN = "/_emulator"


async def test_stats_match_the_python_snapshot(http: aiohttp.ClientSession) -> None:
    async with Emulator(INSTANT) as emu:
        token = await get_token(http, emu)
        async with http.post(emu.url + API, json={"text": "hi"}, headers=bearer(token)) as r:
            task_id = await r.text()
        async with http.get(emu.url + API, params={"id": task_id}, headers=bearer(token)) as r:
            await r.read()
        async with http.get(emu.url + ADMIN + "/stats") as r:
            assert r.status == 200
            data = await r.json()
        assert Stats.from_json(data) == emu.stats()
        assert data["requests"] == {"fetch": {"200": 1}, "submit": {"200": 1}, "token": {"200": 1}}
        assert data["audio_finished"] == 1
        async with http.delete(emu.url + ADMIN + "/stats") as r:
            assert (await r.json())["requests"] == {}
        assert emu.stats().count() == 0
        assert emu.stats().tasks_created == 0


async def test_admin_requests_are_never_faulted_or_counted(http: aiohttp.ClientSession) -> None:
    async with Emulator(faults=Faults(server_error_share=1.0, always_401=True)) as emu:
        for _ in range(5):
            async with http.get(emu.url + ADMIN + "/stats") as r:
                assert r.status == 200
        assert emu.stats().count() == 0


async def test_create_tasks_and_read_records(http: aiohttp.ClientSession) -> None:
    async with Emulator() as emu:
        body = {"texts": ["one", "two"], "ready_after": 0, "audio_bytes": 10_000}
        async with http.post(emu.url + ADMIN + "/tasks", json=body) as r:
            assert r.status == 200
            ids = (await r.json())["ids"]
        async with http.post(
            emu.url + ADMIN + "/tasks", json={"count": 3, "ready_after": [1, 2], "fail": True}
        ) as r:
            ids += (await r.json())["ids"]
        async with http.get(emu.url + ADMIN + "/tasks") as r:
            assert (await r.json())["ids"] == ids
        assert list(emu.task_ids()) == ids
        async with http.get(emu.url + ADMIN + "/tasks/" + ids[0]) as r:
            data = await r.json()
        wav = emu.audio(ids[0])
        assert data["wav_length"] == len(wav) == 44 + (10_000 - 44) // 3 * 3
        assert data["wav_sha256"] == hashlib.sha256(wav).hexdigest()
        assert data["state"] == "Completed"
        record = TaskRecord.from_json(data)
        assert record == emu.record(ids[0])
        assert emu.record(ids[4]).outcome is TaskState.ERROR
        async with http.get(emu.url + ADMIN + "/audio/" + ids[0]) as r:
            assert r.headers["Content-Type"] == "audio/wav"
            assert await r.read() == wav
        async with http.get(emu.url + ADMIN + "/records") as r:
            everything = await r.json()
        assert [item["id"] for item in everything] == ids
        assert everything[0] == data


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"texts": ["a"], "count": 1},
        {"count": 1, "colour": "red"},
        {"texts": "abc"},
        {"count": 1, "ready_after": [1, 2, 3]},
        {"count": 1, "fail": "yes"},
        {"count": 1, "audio_bytes": 3},
    ],
)
async def test_bad_task_requests_are_400(http: aiohttp.ClientSession, body: object) -> None:
    async with Emulator() as emu, http.post(emu.url + ADMIN + "/tasks", json=body) as r:
        assert r.status == 400
        assert (await r.json())["error"]


async def test_unknown_ids_and_paths(http: aiohttp.ClientSession) -> None:
    async with Emulator() as emu:
        for path in ("/tasks/nope", "/audio/nope", "/nothing"):
            async with http.get(emu.url + ADMIN + path) as r:
                assert r.status == 404
        async with http.delete(emu.url + ADMIN + "/faults") as r:
            assert r.status == 405
        async with http.put(emu.url + ADMIN + "/faults", data=b"{nope") as r:
            assert r.status == 400


async def test_replace_faults(http: aiohttp.ClientSession) -> None:
    async with Emulator(faults=Faults(latency=0.01, escape_share=1.0)) as emu:
        async with http.get(emu.url + ADMIN + "/faults") as r:
            assert Faults.from_json(await r.json()) == emu.faults
        knobs = {"server_error_share": 1.0, "server_error_statuses": [503]}
        async with http.put(emu.url + ADMIN + "/faults", json=knobs) as r:
            assert r.status == 200
        # Replaced, not merged: unnamed knobs are back to their defaults.
        assert emu.faults == Faults(server_error_share=1.0, server_error_statuses=(503,))
        async with http.get(emu.url + API, params={"id": "x"}) as r:
            assert r.status == 503
        async with http.put(emu.url + ADMIN + "/faults", json={"cut_share": 7}) as r:
            assert r.status == 400
        assert emu.faults.server_error_share == 1.0


async def test_config_shows_no_secret(http: aiohttp.ClientSession) -> None:
    async with Emulator() as emu, http.get(emu.url + ADMIN + "/config") as r:
        text = await r.text()
        data = await r.json()
    assert data["client_ids"] == [emu.client_id]
    assert emu.client_secret not in text


async def test_clock_and_tokens(http: aiohttp.ClientSession) -> None:
    async with Emulator() as emu:
        [task_id] = emu.create_tasks(["later"], ready_after=100)
        token = await get_token(http, emu)
        async with http.post(emu.url + ADMIN + "/clock", json={"advance": 100}) as r:
            assert r.status == 200
        assert emu.record(task_id).state is TaskState.COMPLETED
        async with http.post(emu.url + ADMIN + "/clock", json={"advance": -1}) as r:
            assert r.status == 400
        async with http.post(emu.url + ADMIN + "/tokens", json={"expire": True}) as r:
            assert r.status == 200
        async with http.get(emu.url + API, params={"id": task_id}, headers=bearer(token)) as r:
            assert r.status == 401


async def test_debug_log_has_one_line_per_request_and_no_secrets(
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiotts.emulator")
    async with Emulator(INSTANT) as emu:
        token = await get_token(http, emu)
        [task_id] = emu.create_tasks(["logged"])
        async with http.get(emu.url + API, params={"id": task_id}, headers=bearer(token)) as r:
            await r.read()
        async with http.get(
            emu.url + API, params={"id": task_id, "access_token": token}, headers=bearer(token)
        ) as r:
            await r.read()
        form = {"grant_type": "client_credentials", "client_id": "x", "client_secret": "hush"}
        async with http.post(emu.url + TOKEN, data=form) as r:
            await r.read()
        async with http.get(emu.url + ADMIN + "/stats") as r:
            await r.read()
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "aiotts.emulator"]
    assert len(lines) == 4  # the admin request is not logged as a vendor request
    assert task_id in lines[1]
    assert "-> 200" in lines[1]
    assert "-> 400" in lines[3]
    for line in lines:
        assert token not in line
        assert emu.client_secret not in line
        assert "hush" not in line
        assert "Bearer" not in line
        assert "Authorization" not in line
