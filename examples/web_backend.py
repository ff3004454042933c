"""An async web backend sharing one TTSClient (one token, one pool, one poll loop).

    python examples/web_backend.py [PORT] [HOST]      (HOST: 127.0.0.1 unless given)

    POST /speak        {"text": "..."}  -> 201 {"id": "..."}; 400 for anything else
    GET  /audio/{id}                     -> 202 while pending, the WAV when done,
                                            404 for an unknown id, 502 if conversion failed
    GET  /audio/{id}?wait=SECONDS        -> the same, but waits up to SECONDS (at most 60)
                                            for the task to finish before answering 202

Every request waits through the client's one scheduler: however many requests wait for
the same id, it is polled as often as one, and its audio is streamed from the service to
the cache folder once, then served from disk.
Without credentials it runs against an emulator on this machine.
"""

from __future__ import annotations

import math
import re
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from aiotts import (
    AiottsError,
    TaskFailedError,
    TaskNotFoundError,
    TaskStatus,
    TaskTimeoutError,
    TTSClient,
)

from _common import service

TASK_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
MAX_WAIT = 60.0
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


def wait_seconds(request: web.Request) -> float:
    try:
        seconds = float(request.query.get("wait", "0"))
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= MAX_WAIT:  # NaN too
        raise web.HTTPBadRequest(text=f"wait must be a number of seconds from 0 to {MAX_WAIT:g}")
    return seconds


async def audio(request: web.Request) -> web.StreamResponse:
    task_id = request.match_info["id"]
    if not TASK_ID.fullmatch(task_id):  # ids name files below: accept only the id alphabet
        raise web.HTTPNotFound(text=f"no task {task_id!r}")
    seconds = wait_seconds(request)
    client, cache = request.app[CLIENT], request.app[CACHE]
    saved = cache / f"{task_id}.wav"
    if not seconds and not saved.is_file():  # answer at once: ask for its status only
        status = await client.status(task_id)
        if status.status in (TaskStatus.PENDING, TaskStatus.PROCESSING):
            return web.json_response({"id": task_id, "ready": False}, status=202)
        seconds = MAX_WAIT  # it ended: wait() below fetches it
    # No await between this check and wait() joining the client's poll of the id: a
    # request either finds the file whole or shares the one download still to come.
    if not saved.is_file():
        try:
            saved = (await client.wait(task_id, cache, timeout=seconds)).path
        except TaskTimeoutError:
            return web.json_response({"id": task_id, "ready": False}, status=202)
        except TaskNotFoundError:
            raise web.HTTPNotFound(text=f"no task {task_id}") from None
        except TaskFailedError as exc:
            raise web.HTTPBadGateway(text="; ".join(exc.messages) or "conversion failed") from exc
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
