"""The admin API under ``/_emulator/``: drive an emulator running in another process.

No authentication, never faulted, never counted in the vendor statistics. Bodies are JSON;
errors are ``{"error": "..."}`` with 400 (bad input), 404 (unknown id or path) or 405.

============================== ==================================================
``GET /_emulator/stats``       :class:`Stats` as JSON
``DELETE /_emulator/stats``    zero the global counters
``GET /_emulator/config``      the config (client ids only, no secrets)
``GET /_emulator/faults``      the fault knobs
``PUT /_emulator/faults``      replace the knobs (missing ones take defaults)
``GET /_emulator/tasks``       ``{"ids": [...]}``, every task in creation order
``POST /_emulator/tasks``      create tasks (``create_tasks`` arguments) -> ``{"ids"}``
``GET /_emulator/tasks/{id}``  the task's record, with ``wav_sha256``
``GET /_emulator/records``     every task's record (with ``wav_sha256``), creation order
``GET /_emulator/audio/{id}``  the task's WAV bytes (``audio/wav``)
``POST /_emulator/clock``      ``{"advance": seconds}``: skip the emulator's time ahead
``POST /_emulator/tokens``     ``{"expire": true}``: forget every issued token
============================== ==================================================
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from aiotts.emulator._config import Duration, Faults, config_to_json
from aiotts.emulator._respond import JSON
from aiotts.emulator._state import EmulatorState

__all__ = ["ADMIN_PREFIX", "AdminApi"]

ADMIN_PREFIX = "/_emulator/"


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, headers={"Content-Type": JSON})


def _error(message: str, status: int = 400) -> web.Response:
    return _json({"error": message}, status)


def _duration(value: Any) -> Duration | None:
    if value is None:
        return None
    if isinstance(value, list) and len(value) == 2:
        return (float(value[0]), float(value[1]))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"a duration must be seconds or [low, high], got {value!r}")


class AdminApi:
    """Handlers of ``/_emulator/...`` over the same state the vendor endpoints serve."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    async def dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        rest = request.path[len(ADMIN_PREFIX) :]
        name, _, arg = rest.partition("/")
        method = request.method
        try:
            body: Any = None
            if method in ("POST", "PUT"):
                raw = await request.read()
                body = orjson.loads(raw) if raw else {}
                if not isinstance(body, dict):
                    return _error("the body must be a JSON object")
            return self._route(name, arg, method, body)
        except orjson.JSONDecodeError as exc:
            return _error(f"invalid JSON: {exc}")
        except (ValueError, TypeError, KeyError) as exc:
            return _error(f"{type(exc).__name__}: {exc}")

    def _route(
        self, name: str, arg: str, method: str, body: Mapping[str, Any] | None
    ) -> web.StreamResponse:
        state = self.state
        match name, bool(arg), method:
            case "stats", False, "GET":
                return _json(state.stats().to_json())
            case "stats", False, "DELETE":
                state.reset_stats()
                return _json(state.stats().to_json())
            case "config", False, "GET":
                return _json(config_to_json(state.config))
            case "faults", False, "GET":
                return _json(state.faults.to_json())
            case "faults", False, "PUT":
                assert body is not None
                state.faults = Faults.from_json(body)
                return _json(state.faults.to_json())
            case "tasks", False, "GET":
                return _json({"ids": list(state.store.ids())})
            case "tasks", False, "POST":
                assert body is not None
                return _json({"ids": self._create(body)})
            case "tasks", True, "GET":
                return self._record(arg)
            case "records", False, "GET":
                return _json([self._record_json(task_id) for task_id in state.store.ids()])
            case "audio", True, "GET":
                task = state.store.get(arg)
                if task is None:
                    return _error(f"no task {arg}", 404)
                return web.Response(body=state.wav(task), headers={"Content-Type": "audio/wav"})
            case "clock", False, "POST":
                assert body is not None
                state.clock.advance(float(body.get("advance", 0.0)))
                return _json({"now": state.clock()})
            case "tokens", False, "POST":
                assert body is not None
                if body.get("expire"):
                    state.authority.expire_all()
                return _json({})
        known = {"stats", "config", "faults", "tasks", "records", "audio", "clock", "tokens"}
        return _error("method not allowed", 405) if name in known else _error("not found", 404)

    def _create(self, body: Mapping[str, Any]) -> list[str]:
        allowed = {
            "texts",
            "count",
            "ready_after",
            "pending",
            "processing",
            "fail",
            "trial",
            "audio_bytes",
        }
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise ValueError(f"unknown keys: {', '.join(unknown)}")
        if ("texts" in body) == ("count" in body):
            raise ValueError("give exactly one of texts or count")
        texts = body["texts"] if "texts" in body else int(body["count"])
        if not isinstance(texts, int | list):
            raise ValueError("texts must be a list of strings")
        fail = body.get("fail")
        if fail is not None and not isinstance(fail, bool | int | float):
            raise ValueError(f"fail must be a bool or a share, got {fail!r}")
        return self.state.create_tasks(
            texts,
            ready_after=_duration(body.get("ready_after")),
            pending=_duration(body.get("pending")),
            processing=_duration(body.get("processing")),
            fail=fail,
            trial=bool(body.get("trial", False)),
            audio_bytes=body.get("audio_bytes"),
        )

    def _record(self, task_id: str) -> web.Response:
        try:
            return _json(self._record_json(task_id))
        except KeyError:
            return _error(f"no task {task_id}", 404)

    def _record_json(self, task_id: str) -> dict[str, Any]:
        record = self.state.record(task_id)
        data = record.to_json()
        data["wav_sha256"] = hashlib.sha256(record.wav()).hexdigest()
        return data
