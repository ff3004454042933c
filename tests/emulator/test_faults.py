"""Fault knobs: each test shows the knob's effect over real HTTP."""

from __future__ import annotations

import base64
import email.utils
import json
import time
from collections import Counter

import aiohttp
import pytest

from aiotts.emulator import Emulator, EmulatorConfig, Faults

from .conftest import API, INSTANT, STATUS, TOKEN, TRIAL, bearer

pytestmark = pytest.mark.anyio


async def statuses(
    http: aiohttp.ClientSession, emu: Emulator, n: int, path: str = API
) -> Counter[int]:
    token = emu.issue_token()
    seen: Counter[int] = Counter()
    for _ in range(n):
        async with http.get(emu.url + path, params={"id": "x"}, headers=bearer(token)) as resp:
            await resp.read()
            seen[resp.status] += 1
    return seen


async def test_503_share_is_near_the_setting(http: aiohttp.ClientSession) -> None:
    faults = Faults(server_error_share=0.2, server_error_statuses=(503,))
    async with Emulator(faults=faults) as emu:
        seen = await statuses(http, emu, 400)
        assert set(seen) == {200, 503}
        assert 50 <= seen[503] <= 110  # 80 expected
        assert emu.stats().count("fetch", 503) == seen[503]


async def test_5xx_statuses_are_drawn_from_the_list(http: aiohttp.ClientSession) -> None:
    async with Emulator(faults=Faults(server_error_share=1.0)) as emu:
        seen = await statuses(http, emu, 150)
    assert set(seen) == {500, 502, 503}


async def test_429_share_with_retry_after_seconds(http: aiohttp.ClientSession) -> None:
    async with Emulator(faults=Faults(rate_limit_share=0.3, retry_after=2.5)) as emu:
        token = emu.issue_token()
        limited = 0
        for _ in range(300):
            async with http.get(emu.url + API, params={"id": "x"}, headers=bearer(token)) as r:
                if r.status == 429:
                    limited += 1
                    assert r.headers["Retry-After"] == "3"
                else:
                    assert r.status == 200
    assert 60 <= limited <= 120  # 90 expected


async def test_retry_after_as_http_date(http: aiohttp.ClientSession) -> None:
    faults = Faults(rate_limit_share=1.0, retry_after=120, retry_after_http_date=True)
    async with Emulator(faults=faults) as emu, http.get(emu.url + API, params={"id": "x"}) as resp:
        assert resp.status == 429
        when = email.utils.parsedate_to_datetime(resp.headers["Retry-After"])
    assert 100 < when.timestamp() - time.time() <= 121


async def test_transient_faults_hit_the_token_endpoint_too(http: aiohttp.ClientSession) -> None:
    async with Emulator(faults=Faults(server_error_share=1.0)) as emu:
        form = {"grant_type": "client_credentials", "client_id": "a", "client_secret": "b"}
        async with http.post(emu.url + TOKEN, data=form) as resp:
            assert resp.status >= 500
        stats = emu.stats()
        assert stats.count("token") == 1
        assert stats.token_requests == 1
        assert stats.tokens_issued == 0


async def test_refused_submit_creates_no_task(http: aiohttp.ClientSession) -> None:
    async with Emulator(faults=Faults(server_error_share=0.5, rate_limit_share=0.5)) as emu:
        token = emu.issue_token()
        for path, headers in ((API, bearer(token)), (TRIAL, {})):
            for _ in range(10):
                async with http.post(emu.url + path, json={"text": "x"}, headers=headers) as r:
                    assert r.status in (429, 500, 502, 503)
        assert emu.task_ids() == ()
        assert emu.stats().tasks_created == 0


async def test_latency_delays_every_request(http: aiohttp.ClientSession) -> None:
    async with Emulator(faults=Faults(latency=0.2)) as emu:
        started = time.perf_counter()
        async with http.get(emu.url + TRIAL, params={"id": "x"}) as resp:
            assert resp.status == 200
        assert time.perf_counter() - started >= 0.2


async def test_faults_are_replaceable_at_runtime(http: aiohttp.ClientSession) -> None:
    async with Emulator() as emu:
        assert (await statuses(http, emu, 5)) == {200: 5}
        emu.set_faults(server_error_share=1.0, server_error_statuses=(502,))
        assert emu.faults.server_error_share == 1.0
        assert (await statuses(http, emu, 5)) == {502: 5}
        emu.update_faults(server_error_share=0.0)
        assert emu.faults.server_error_statuses == (502,)
        assert (await statuses(http, emu, 5)) == {200: 5}
        emu.set_faults(Faults(always_401=True))
        assert (await statuses(http, emu, 2)) == {401: 2}
        emu.set_faults()
        assert emu.faults == Faults()


async def test_fault_draws_are_reproducible_from_the_seed(http: aiohttp.ClientSession) -> None:
    runs = []
    for _ in range(2):
        faults = Faults(server_error_share=0.3, rate_limit_share=0.2)
        async with Emulator(EmulatorConfig(seed=9), faults=faults) as emu:
            token = emu.issue_token()
            sequence = []
            for _ in range(40):
                async with http.get(emu.url + API, params={"id": "x"}, headers=bearer(token)) as r:
                    sequence.append(r.status)
            runs.append(sequence)
    assert runs[0] == runs[1]
    assert len(set(runs[0])) > 2


async def completed(emu: Emulator, text: str = "Cut me", audio_bytes: int | None = None) -> str:
    [task_id] = emu.create_tasks([text], ready_after=0, audio_bytes=audio_bytes)
    return task_id


async def test_cut_body_ends_early_and_drops_the_connection(http: aiohttp.ClientSession) -> None:
    faults = Faults(cut_share=1.0, cut_at=0.4)
    async with Emulator(faults=faults) as emu:
        task_id = await completed(emu, audio_bytes=2_000_000)
        token = emu.issue_token()
        chunks: list[bytes] = []

        async def read_all(r: aiohttp.ClientResponse) -> None:
            async for chunk in r.content.iter_chunked(65536):
                chunks.append(chunk)

        async with http.get(emu.url + API, params={"id": task_id}, headers=bearer(token)) as r:
            declared = int(r.headers["Content-Length"])
            with pytest.raises(aiohttp.ClientPayloadError):
                await read_all(r)
        assert sum(map(len, chunks)) == int(declared * 0.4)
        record = emu.record(task_id)
        assert (record.audio_started, record.audio_finished) == (1, 0)
        # The emulator keeps serving; the next answer is whole once the knob is off.
        emu.set_faults()
        async with http.get(emu.url + API, params={"id": task_id}, headers=bearer(token)) as r:
            body = await r.json()
        assert base64.b64decode(body["results"][0]["data"]) == emu.audio(task_id)
        assert emu.record(task_id).audio_finished == 1


async def test_cut_share_is_near_the_setting(http: aiohttp.ClientSession) -> None:
    async with Emulator(faults=Faults(cut_share=0.5)) as emu:
        task_id = await completed(emu, audio_bytes=1000)
        token = emu.issue_token()
        cut = 0
        for _ in range(100):
            try:
                async with http.get(
                    emu.url + API, params={"id": task_id}, headers=bearer(token)
                ) as r:
                    await r.read()
            except aiohttp.ClientPayloadError:
                cut += 1
        assert 30 <= cut <= 70
        record = emu.record(task_id)
        assert record.audio_started == 100
        assert record.audio_finished == 100 - cut
        assert emu.stats().faults == {"cut": cut}


async def test_trickled_body_arrives_whole_but_slowly(http: aiohttp.ClientSession) -> None:
    faults = Faults(trickle_share=1.0, trickle_chunk_bytes=500, trickle_delay=0.02)
    async with Emulator(faults=faults) as emu:
        task_id = await completed(emu, audio_bytes=3000)
        token = emu.issue_token()
        started = time.perf_counter()
        async with http.get(emu.url + API, params={"id": task_id}, headers=bearer(token)) as r:
            body = await r.read()
        elapsed = time.perf_counter() - started
        pieces = -(-len(body) // 500)
        assert elapsed >= (pieces - 1) * 0.02 * 0.9  # a lower bound: it did pause
        data = json.loads(body)["results"][0]["data"]
        assert base64.b64decode(data) == emu.audio(task_id)
        assert emu.record(task_id).audio_finished == 1


async def fetch_raw(http: aiohttp.ClientSession, emu: Emulator, task_id: str) -> bytes:
    token = emu.issue_token()
    async with http.get(emu.url + API, params={"id": task_id}, headers=bearer(token)) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/json; charset=utf-8"
        return await r.read()


async def test_escaped_base64_is_valid_json_of_the_same_audio(
    http: aiohttp.ClientSession,
) -> None:
    async with Emulator(faults=Faults(escape_share=1.0)) as emu:
        task_id = await completed(emu, "Escapes everywhere", audio_bytes=50_000)
        raw = await fetch_raw(http, emu, task_id)
    assert b"\\/" in raw
    assert b"\\u002B" in raw
    assert b"+" not in raw
    data = json.loads(raw)["results"][0]["data"]
    assert base64.b64decode(data, validate=True) == emu.audio(task_id)


async def test_reordered_and_pretty_envelopes(http: aiohttp.ClientSession) -> None:
    faults = Faults(reorder_keys_share=1.0, pretty_share=1.0)
    async with Emulator(INSTANT, faults=faults) as emu:
        task_id = await completed(emu, "Pretty")
        raw = await fetch_raw(http, emu, task_id)
        body = json.loads(raw)
        assert list(body) != ["id", "responseStatusCode", "taskStatus", "results", "error"]
        assert list(body["results"][0]) == ["data", "type"]
        assert b"\n  " in raw
        assert base64.b64decode(body["results"][0]["data"]) == emu.audio(task_id)
        [pending] = emu.create_tasks(["later"], ready_after=60)
        raw = await fetch_raw(http, emu, pending)
        assert b"\n" in raw
        assert json.loads(raw)["taskStatus"] == "Pending"
        token = emu.issue_token()
        async with http.get(emu.url + STATUS, params={"id": task_id}, headers=bearer(token)) as r:
            raw = await r.read()
        assert b"\n" in raw
        assert json.loads(raw)["results"] is None


async def test_encoding_shares_mix(http: aiohttp.ClientSession) -> None:
    faults = Faults(reorder_keys_share=0.5, pretty_share=0.5, escape_share=0.5)
    async with Emulator(faults=faults) as emu:
        task_id = await completed(emu, "Mixed", audio_bytes=5_000)
        bodies = {await fetch_raw(http, emu, task_id) for _ in range(40)}
        assert len(bodies) == 8  # every combination showed up
        for raw in bodies:
            data = json.loads(raw)["results"][0]["data"]
            assert base64.b64decode(data) == emu.audio(task_id)
        assert emu.record(task_id).audio_finished == 40


async def test_client_going_away_mid_body_is_harmless(http: aiohttp.ClientSession) -> None:
    async with Emulator() as emu:
        task_id = await completed(emu, audio_bytes=20_000_000)
        token = emu.issue_token()
        async with http.get(emu.url + API, params={"id": task_id}, headers=bearer(token)) as r:
            await r.content.read(1000)
            r.close()
        # The abandoned write ends quietly and the server keeps answering.
        raw = await fetch_raw(http, emu, task_id)
        assert base64.b64decode(json.loads(raw)["results"][0]["data"]) == emu.audio(task_id)
        record = emu.record(task_id)
        assert (record.audio_started, record.audio_finished) == (2, 1)
