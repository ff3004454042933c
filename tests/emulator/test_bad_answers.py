"""Bad-answer knobs: 200s a careful client must refuse to save as audio."""

from __future__ import annotations

import base64
import binascii
import json
import struct

import aiohttp
import pytest

from aiotts.emulator import Emulator, Faults, synthesize

from .conftest import API, STATUS, TRIAL, bearer, get_token

pytestmark = pytest.mark.anyio


async def get(
    http: aiohttp.ClientSession, emu: Emulator, task_id: str, path: str = API
) -> tuple[aiohttp.ClientResponse, bytes]:
    headers = bearer(emu.issue_token())
    async with http.get(emu.url + path, params={"id": task_id}, headers=headers) as resp:
        return resp, await resp.read()


async def test_non_json_body_with_200(http: aiohttp.ClientSession) -> None:
    async with Emulator(faults=Faults(non_json_share=1.0)) as emu:
        [task_id] = emu.create_tasks(["x"], ready_after=0)
        resp, body = await get(http, emu, task_id)
    assert resp.status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    assert emu.record(task_id).audio_started == 0


async def test_html_error_page_with_200(http: aiohttp.ClientSession) -> None:
    async with Emulator(faults=Faults(html_share=1.0)) as emu:
        resp, body = await get(http, emu, "any-id")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert body.startswith(b"<!DOCTYPE html>")


async def test_truncated_json_is_complete_at_the_http_level(http: aiohttp.ClientSession) -> None:
    async with Emulator(faults=Faults(truncated_json_share=1.0)) as emu:
        [task_id] = emu.create_tasks(["truncated"], ready_after=0, audio_bytes=100_000)
        resp, body = await get(http, emu, task_id)  # no payload error: all declared bytes came
        assert int(resp.headers["Content-Length"]) == len(body)
        with pytest.raises(json.JSONDecodeError):
            json.loads(body)
        emu.set_faults()
        _, whole = await get(http, emu, task_id)
        assert whole.startswith(body)
        assert len(body) == len(whole) // 2
        [pending] = emu.create_tasks(["later"], ready_after=60)
        emu.set_faults(truncated_json_share=1.0)
        _, small = await get(http, emu, pending)
        with pytest.raises(json.JSONDecodeError):
            json.loads(small)
        assert emu.record(task_id).audio_finished == 1  # only the whole one


async def test_invalid_base64_in_data(http: aiohttp.ClientSession) -> None:
    async with Emulator(faults=Faults(bad_base64_share=1.0)) as emu:
        [task_id] = emu.create_tasks(["bad base64"], ready_after=0, audio_bytes=30_000)
        _, body = await get(http, emu, task_id)
    envelope = json.loads(body)
    assert envelope["taskStatus"] == "Completed"
    data = envelope["results"][0]["data"]
    assert len(data) == len(base64.b64encode(synthesize("bad base64", size=30_000)))
    with pytest.raises(binascii.Error):
        base64.b64decode(data, validate=True)


async def test_wav_header_sizes_disagree_with_the_data(http: aiohttp.ClientSession) -> None:
    async with Emulator(faults=Faults(bad_wav_header_share=1.0)) as emu:
        [task_id] = emu.create_tasks(["lying header"], ready_after=0)
        _, body = await get(http, emu, task_id)
    wav = base64.b64decode(json.loads(body)["results"][0]["data"], validate=True)
    riff_size = struct.unpack_from("<I", wav, 4)[0]
    data_size = struct.unpack_from("<I", wav, 40)[0]
    assert data_size != len(wav) - 44
    assert riff_size != len(wav) - 8
    assert wav[44:] == synthesize("lying header")[44:]


async def test_completed_without_results(http: aiohttp.ClientSession) -> None:
    async with Emulator(faults=Faults(missing_results_share=1.0)) as emu:
        [task_id] = emu.create_tasks(["nothing"], ready_after=0)
        seen = set()
        for _ in range(20):
            _, body = await get(http, emu, task_id)
            envelope = json.loads(body)
            assert envelope["taskStatus"] == "Completed"
            seen.add(json.dumps(envelope["results"]))
        assert seen == {"null", "[]"}
        # Tasks that are not Completed are answered as they are.
        [pending] = emu.create_tasks(["later"], ready_after=60)
        _, body = await get(http, emu, pending)
        assert json.loads(body)["taskStatus"] == "Pending"


async def test_unknown_task_status(http: aiohttp.ClientSession) -> None:
    async with Emulator(faults=Faults(unknown_status_share=1.0)) as emu:
        [task_id] = emu.create_tasks(["queued"], ready_after=0)
        for path in (API, STATUS, TRIAL):
            _, body = await get(http, emu, task_id, path)
            envelope = json.loads(body)
            assert envelope["taskStatus"] == "Queued"
            assert envelope["results"] is None


async def test_wrong_content_type_on_a_good_body(http: aiohttp.ClientSession) -> None:
    async with Emulator(faults=Faults(wrong_content_type_share=1.0)) as emu:
        [task_id] = emu.create_tasks(["typed"], ready_after=0)
        resp, body = await get(http, emu, task_id)
        assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
        data = json.loads(body)["results"][0]["data"]
        assert base64.b64decode(data) == emu.audio(task_id)
        resp, _ = await get(http, emu, task_id, STATUS)
        assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"


async def test_bad_answer_share_is_near_the_setting(http: aiohttp.ClientSession) -> None:
    async with Emulator(faults=Faults(non_json_share=0.25, html_share=0.25)) as emu:
        [task_id] = emu.create_tasks(["mixed"], ready_after=0)
        kinds = []
        for _ in range(200):
            resp, body = await get(http, emu, task_id)
            if resp.content_type == "text/html":
                kinds.append("html")
            elif body.startswith(b'{"id"'):
                kinds.append("good")
            else:
                kinds.append("non_json")
        assert 25 <= kinds.count("html") <= 75
        assert 25 <= kinds.count("non_json") <= 75
        assert emu.record(task_id).audio_finished == kinds.count("good")


async def test_persistent_401(http: aiohttp.ClientSession) -> None:
    async with Emulator(faults=Faults(always_401=True)) as emu:
        token = await get_token(http, emu)  # the token endpoint still works
        [task_id] = emu.create_tasks(["x"], ready_after=0)
        headers = bearer(token)
        calls = [
            http.get(emu.url + API, params={"id": task_id}, headers=headers),
            http.get(emu.url + STATUS, params={"id": task_id}, headers=headers),
            http.delete(emu.url + API, params={"id": task_id}, headers=headers),
            http.post(emu.url + API, json={"text": "x"}, headers=headers),
        ]
        for call in calls:
            async with call as resp:
                assert resp.status == 401
                assert resp.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        # Trial endpoints need no token, so they are unaffected.
        async with http.get(emu.url + TRIAL, params={"id": task_id}) as resp:
            assert resp.status == 200
        assert emu.stats().count(status=401) == 4
