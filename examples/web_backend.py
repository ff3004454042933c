"""An async web backend sharing one TTSClient (one token, one pool) for its whole life.

    python examples/web_backend.py [PORT] [HOST]      (HOST: 127.0.0.1 unless given)

    POST /speak        {"text": "..."}  -> 201 {"id": "..."}; 400 for anything else
    GET  /audio/{id}                     -> 202 while pending, the WAV when done,
                                            404 for an unknown id, 502 if conversion failed

Finished audio is streamed from the service to a cache folder once, then served from disk.
Without credentials it runs against an emulator on this machine.
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from aiotts import AiottsError, TaskStatus, TTSClient

from _common import service

TASK_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
CLIENT = web.AppKey("client", TTSClient)
CACHE = web.AppKey("cache", Path)


async def tts_client(app: web.Application) -> AsyncIterator[None]:
    """Opens the client when the app starts and closes it, once, when the app stops."""
    async with service() as (client, _emulator):
        app[CLIENT] = client
        yield


async def speak(request: web.Request) -> web.Response:
    try:
        payload = await request.json()
    except ValueError:  # not JSON (or not UTF-8): the caller's mistake, not the server's
        raise web.HTTPBadRequest(text='send a JSON body: {"text": "..."}') from None
    text = payload.get("text") if isinstance(payload, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise web.HTTPBadRequest(text='send {"text": "..."}')
    task_id = await request.app[CLIENT].submit(text)
    return web.json_response({"id": task_id}, status=201)


async def audio(request: web.Request) -> web.StreamResponse:
    task_id = request.match_info["id"]
    if not TASK_ID.fullmatch(task_id):  # ids name files below: accept only the id alphabet
        raise web.HTTPNotFound(text=f"no task {task_id!r}")
    client = request.app[CLIENT]
    saved = request.app[CACHE] / f"{task_id}.wav"
    if not saved.is_file():
        status = await client.status(task_id)
        if status.status in (TaskStatus.PENDING, TaskStatus.PROCESSING):
            return web.json_response({"id": task_id, "status": status.status}, status=202)
        if status.status is TaskStatus.NOT_EXIST:
            raise web.HTTPNotFound(text=f"no task {task_id}")
        if status.status is TaskStatus.ERROR:
            raise web.HTTPBadGateway(text="; ".join(status.messages) or "conversion failed")
        try:
            saved = (await client.download(task_id, request.app[CACHE])).path
        except AiottsError as exc:
            raise web.HTTPBadGateway(text=str(exc)) from exc
    return web.FileResponse(saved, headers={"Content-Type": "audio/wav"})


def make_app(cache: Path) -> web.Application:
    app = web.Application()
    app[CACHE] = cache
    app.cleanup_ctx.append(tts_client)
    app.router.add_post("/speak", speak)
    app.router.add_get("/audio/{id}", audio)
    return app


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8081
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"  # this machine only by default
    web.run_app(make_app(Path(tempfile.mkdtemp(prefix="aiotts-cache-"))), host=host, port=port)
