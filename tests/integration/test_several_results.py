"""A result with several audio files saves each, numbered; from a tiny custom server."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from aiotts import TTSClient
from aiotts.emulator import synthesize

pytestmark = pytest.mark.anyio


@pytest.fixture
async def two_results_server() -> AsyncIterator[tuple[str, list[bytes]]]:
    audio = [synthesize("first part"), synthesize("second part, a little longer")]
    padding = " " * 70_000  # make the body large enough to be streamed

    async def fetch(request: web.Request) -> web.Response:
        body = {
            "id": request.query["id"],
            "results": [{"type": "WavFile", "data": base64.b64encode(a).decode()} for a in audio],
            "taskStatus": "Completed",
            "responseStatusCode": "Ok",
            "error": {"messages": [], "warnings": [padding]},
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    app = web.Application()
    app.router.add_get("/v5.0/ocr/ConvertTextToSpeechTrial", fetch)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", audio
    await runner.cleanup()


async def test_each_result_is_saved_under_a_numbered_name(
    two_results_server: tuple[str, list[bytes]], tmp_path: Path
) -> None:
    url, audio = two_results_server
    async with TTSClient(trial=True, base_url=url) as client:
        saved = await client.download("TTSmulti", tmp_path)
        result = await client.fetch("TTSmulti")
    assert [p.name for p in saved.files] == ["TTSmulti.wav", "TTSmulti.1.wav"]
    assert [p.read_bytes() for p in saved.files] == audio
    assert result.results is not None and [r.data for r in result.results] == audio
    assert saved.bytes_written == sum(map(len, audio))
