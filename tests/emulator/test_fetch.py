"""Fetch, status and cancel: the envelope, the task lifecycle on the clock, NotExist, counters."""

from __future__ import annotations

import base64
import io
import json
import wave
from typing import Any

import aiohttp
import pytest

from aiotts.emulator import Emulator, EmulatorConfig, ManualClock, TaskState, synthesize

from .conftest import API, INSTANT, STATUS, TRIAL, bearer, get_token

pytestmark = pytest.mark.anyio

KEYS = ["id", "responseStatusCode", "taskStatus", "results", "error"]


async def fetch(
    http: aiohttp.ClientSession, url: str, task_id: str, token: str | None, path: str = API
) -> dict[str, Any]:
    headers = bearer(token) if token else {}
    async with http.get(url + path, params={"id": task_id}, headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        raw = await resp.read()
    body: dict[str, Any] = json.loads(raw)
    assert list(body) == KEYS  # the exact keys, in the documented order by default
    return body


async def test_lifecycle_pending_processing_completed(
    emu: Emulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    token = await get_token(http, emu)
    async with http.post(emu.url + API, json={"text": "Hello"}, headers=bearer(token)) as resp:
        task_id = await resp.text()
    seen = []
    for step in (1.0, 1.0, 0.0):
        body = await fetch(http, emu.url, task_id, token)
        seen.append((body["taskStatus"], body["responseStatusCode"], body["results"]))
        assert body["id"] == task_id
        assert body["error"] is None
        clock.advance(step)
    assert seen[:2] == [("Pending", "NotReady", None), ("Processing", "NotReady", None)]
    status, code, results = seen[2]
    assert (status, code) == ("Completed", "Ok")
    assert [r["type"] for r in results] == ["WavFile"]
    wav = base64.b64decode(results[0]["data"], validate=True)
    assert wav == synthesize("Hello") == emu.audio(task_id)
    with wave.open(io.BytesIO(wav)) as reader:
        assert (reader.getnchannels(), reader.getframerate(), reader.getsampwidth()) == (
            1,
            22050,
            3,
        )
    record = emu.record(task_id)
    assert record.state is TaskState.COMPLETED
    assert record.fetches == 3
    assert (record.audio_started, record.audio_finished) == (1, 1)
    assert record.wav_length == len(wav)
    assert emu.stats().count("fetch", 200) == 3


async def test_error_outcome_carries_messages(http: aiohttp.ClientSession) -> None:
    config = EmulatorConfig(
        pending_seconds=0, processing_seconds=0, error_messages=("boom", "twice")
    )
    async with Emulator(config) as emu:
        [task_id] = emu.create_tasks(["doomed"], fail=True)
        body = await fetch(http, emu.url, task_id, emu.issue_token())
        record = emu.record(task_id)
    assert body["taskStatus"] == "Error"
    assert body["responseStatusCode"] == "Error"
    assert body["results"] is None
    assert body["error"] == {"messages": ["boom", "twice"], "warnings": []}
    assert record.outcome is TaskState.ERROR
    assert record.messages == ("boom", "twice")


async def test_error_share_is_near_its_setting() -> None:
    async with Emulator(EmulatorConfig(error_share=0.3, seed=5)) as emu:
        ids = emu.create_tasks(400, ready_after=0)
        failed = sum(emu.record(i).outcome is TaskState.ERROR for i in ids)
    assert 80 <= failed <= 160


async def test_unknown_id_is_notexist_with_200(emu: Emulator, http: aiohttp.ClientSession) -> None:
    token = await get_token(http, emu)
    odd = 'no such "task" / +'
    body = await fetch(http, emu.url, odd, token)
    assert body == {
        "id": odd,
        "responseStatusCode": "TaskNotFound",
        "taskStatus": "NotExist",
        "results": None,
        "error": None,
    }


async def test_missing_id_is_a_validation_400(emu: Emulator, http: aiohttp.ClientSession) -> None:
    token = await get_token(http, emu)
    for method in ("GET", "DELETE"):
        async with http.request(method, emu.url + API, headers=bearer(token)) as resp:
            assert resp.status == 400
            assert "id" in (await resp.json(content_type=None))["errors"]


async def test_id_parameter_name_is_case_insensitive(
    emu: Emulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    [task_id] = emu.create_tasks(["x"])
    async with http.get(emu.url + API + "?ID=" + task_id, headers=bearer(emu.issue_token())) as r:
        assert (await r.json())["taskStatus"] == "Pending"


async def test_cancel_makes_notexist(emu: Emulator, http: aiohttp.ClientSession) -> None:
    token = await get_token(http, emu)
    [task_id] = emu.create_tasks(["to cancel"])
    async with http.delete(emu.url + API, params={"id": task_id}, headers=bearer(token)) as resp:
        assert resp.status == 200
        assert await resp.read() == b""
    body = await fetch(http, emu.url, task_id, token)
    assert body["taskStatus"] == "NotExist"
    assert emu.record(task_id).cancelled
    assert emu.record(task_id).state is TaskState.NOT_EXIST
    # Cancelling an unknown id is not an error either.
    async with http.delete(emu.url + API, params={"id": "nope"}, headers=bearer(token)) as resp:
        assert resp.status == 200
    async with http.delete(emu.url + API, params={"id": task_id}) as resp:
        assert resp.status == 401


async def test_retention_makes_old_tasks_notexist(http: aiohttp.ClientSession) -> None:
    clock = ManualClock()
    async with Emulator(EmulatorConfig(retention=60), clock=clock) as emu:
        [task_id] = emu.create_tasks(["old"], ready_after=0)
        token = emu.issue_token()
        assert (await fetch(http, emu.url, task_id, token))["taskStatus"] == "Completed"
        clock.advance(59.9)
        assert (await fetch(http, emu.url, task_id, token))["taskStatus"] == "Completed"
        clock.advance(0.1)
        assert (await fetch(http, emu.url, task_id, token))["taskStatus"] == "NotExist"
        assert emu.record(task_id).state is TaskState.NOT_EXIST


async def test_default_retention_is_a_day(
    emu: Emulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    [task_id] = emu.create_tasks(["old"], ready_after=0)
    clock.advance(86399)
    assert emu.record(task_id).state is TaskState.COMPLETED
    emu.advance_clock(1)  # the emulator's own skip works on any clock
    token = emu.issue_token()
    assert (await fetch(http, emu.url, task_id, token))["taskStatus"] == "NotExist"


async def test_status_only_has_null_results(http: aiohttp.ClientSession) -> None:
    async with Emulator(INSTANT) as emu:
        token = emu.issue_token()
        [done] = emu.create_tasks(["done"])
        [failed] = emu.create_tasks(["failed"], fail=True)
        body = await fetch(http, emu.url, done, token, path=STATUS)
        assert body == {
            "id": done,
            "responseStatusCode": "Ok",
            "taskStatus": "Completed",
            "results": None,
            "error": None,
        }
        body = await fetch(http, emu.url, failed, token, path=STATUS)
        assert body["taskStatus"] == "Error"
        assert body["error"]["messages"]
        record = emu.record(done)
        assert (record.status_requests, record.fetches, record.audio_started) == (1, 0, 0)
        async with http.get(emu.url + STATUS, params={"id": done}) as resp:
            assert resp.status == 401
        # Case-insensitive here too.
        lower = emu.url + STATUS.lower()
        async with http.get(lower, params={"id": done}, headers=bearer(token)) as resp:
            assert resp.status == 200
        assert emu.stats().count("status") == 4


async def test_trial_fetch_and_cancel_need_no_token(http: aiohttp.ClientSession) -> None:
    async with Emulator(INSTANT) as emu:
        async with http.post(emu.url + TRIAL, json={"text": "Trial text"}) as resp:
            task_id = await resp.text()
        body = await fetch(http, emu.url, task_id, None, path=TRIAL)
        assert body["taskStatus"] == "Completed"
        wav = base64.b64decode(body["results"][0]["data"])
        assert wav == synthesize("Trial text", watermark=True) == emu.audio(task_id)
        async with http.delete(emu.url + TRIAL, params={"id": task_id}) as resp:
            assert resp.status == 200
        assert (await fetch(http, emu.url, task_id, None, path=TRIAL))["taskStatus"] == "NotExist"
        stats = emu.stats()
        assert stats.count("trial_fetch", 200) == 2
        assert stats.count("trial_cancel", 200) == 1


async def test_create_tasks_ready_after_and_ranges(clock: ManualClock) -> None:
    config = EmulatorConfig(pending_seconds=(1, 2), processing_seconds=(3, 4))
    async with Emulator(config, clock=clock) as emu:
        ready = emu.create_tasks(5, ready_after=0)
        later = emu.create_tasks(50, ready_after=(0.5, 3.0))
        parked = emu.create_tasks(20, ready_after=600)
        drawn = emu.create_tasks(20)
        now = clock()
        assert all(emu.record(i).state is TaskState.COMPLETED for i in ready)
        delays = [emu.record(i).ready_at - now for i in later]
        assert all(0.5 <= d <= 3.0 for d in delays)
        assert len(set(delays)) == len(delays)  # drawn per task
        for i in drawn:
            record = emu.record(i)
            assert 1 <= record.processing_at - now <= 2
            assert 3 <= record.ready_at - record.processing_at <= 4
        clock.advance(599)
        assert {emu.record(i).state for i in parked} == {TaskState.PENDING}
        assert {emu.record(i).state for i in later} == {TaskState.COMPLETED}
        clock.advance(1)
        assert {emu.record(i).state for i in parked} == {TaskState.COMPLETED}
        texts = [emu.record(i).text for i in ready + later]
        assert len(set(texts)) == len(texts)  # a count gives distinct texts
        assert emu.task_ids() == tuple(ready + later + parked + drawn)
        assert emu.stats().tasks_created == 95
        assert emu.stats().count() == 0  # no requests were made


async def test_create_tasks_checks_its_arguments() -> None:
    async with Emulator() as emu:
        with pytest.raises(ValueError, match="not both"):
            emu.create_tasks(1, ready_after=1, pending=1)
        with pytest.raises(ValueError, match="non-empty"):
            emu.create_tasks([""])
        with pytest.raises(ValueError, match="fail"):
            emu.create_tasks(1, fail=2.0)
        with pytest.raises(ValueError, match="audio_bytes"):
            emu.create_tasks(1, audio_bytes=10)
        with pytest.raises(KeyError):
            emu.record("TTS00000-0000-4000-8000-000000000000")


async def test_sized_results(http: aiohttp.ClientSession) -> None:
    async with Emulator(EmulatorConfig(pending_seconds=0, processing_seconds=0)) as emu:
        token = emu.issue_token()
        [small] = emu.create_tasks(["small one"], audio_bytes=100_000)
        [big] = emu.create_tasks(["big one"], audio_bytes=30_000_000)
        for task_id, size in ((small, 100_000), (big, 30_000_000)):
            body = await fetch(http, emu.url, task_id, token)
            wav = base64.b64decode(body["results"][0]["data"], validate=True)
            assert len(wav) == 44 + (size - 44) // 3 * 3
            assert wav == synthesize(emu.record(task_id).text, size=size)
            assert emu.record(task_id).audio_finished == 1


async def test_config_audio_bytes_applies_to_every_task(http: aiohttp.ClientSession) -> None:
    config = EmulatorConfig(pending_seconds=0, processing_seconds=0, audio_bytes=5000)
    async with Emulator(config) as emu:
        async with http.post(emu.url + TRIAL, json={"text": "trial"}) as resp:
            trial_id = await resp.text()
        [made] = emu.create_tasks(1)
        for task_id in (trial_id, made):
            assert emu.record(task_id).wav_length == 44 + (5000 - 44) // 3 * 3
            assert len(emu.audio(task_id)) == emu.record(task_id).wav_length


async def test_many_concurrent_polls(http: aiohttp.ClientSession) -> None:
    import anyio

    async with Emulator() as emu:
        ids = emu.create_tasks(300, ready_after=600)
        token = emu.issue_token()

        async def poll(task_id: str) -> None:
            assert (await fetch(http, emu.url, task_id, token))["taskStatus"] == "Pending"

        async with anyio.create_task_group() as tg:
            for task_id in ids:
                tg.start_soon(poll, task_id)
        assert emu.stats().count("fetch", 200) == 300
        assert all(emu.record(i).fetches == 1 for i in ids)
