"""The vendor's endpoints over ``aiohttp.web``.

A low-level aiohttp server (no router) hands every request to :meth:`VendorApi.dispatch`,
which finds the handler in a dict keyed by the lower-cased path (the service routes
case-insensitively), so routing costs one ``str.lower`` and two dict lookups.
``/_emulator/...`` goes to the admin API instead, uncounted and never faulted.

Per request, in order: transient faults (latency, then a 5xx or 429 drawn before anything
else, so a refused submit creates nothing), authentication, the handler. Every vendor
response is counted by ``(endpoint, status)`` and logged as one debug line that names the
method, path, task id and status, and never a header, token or secret.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote_plus

import orjson
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from aiotts.emulator._admin import AdminApi
from aiotts.emulator._config import Faults
from aiotts.emulator._envelope import Results, Style, envelope, escape_runs
from aiotts.emulator._faulty import (
    HTML_PAGE,
    NON_JSON_BODY,
    UNKNOWN_STATUS,
    corrupt_runs,
    misstate_runs,
)
from aiotts.emulator._respond import (
    HTML,
    JSON,
    PROBLEM_JSON,
    TEXT,
    Delivery,
    retry_after_value,
    send_runs,
)
from aiotts.emulator._snapshots import Endpoint, TaskState
from aiotts.emulator._state import EmulatorState
from aiotts.emulator._store import Task
from aiotts.emulator._validation import parse_submit, problem_body

__all__ = ["VendorApi", "build_app", "build_server"]

logger = logging.getLogger("aiotts.emulator")

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]

_MAX_REQUEST_BYTES = 64 * 1024 * 1024  # authorised texts have no documented length limit
_JSON_HEADERS = {"Content-Type": JSON}
_BAD_AUDIO = frozenset({"bad_base64", "bad_wav_header"})
_NO_AUDIO = frozenset({"missing_results", "result_data_lost"})
"""Bad answers that say ``Completed`` without the audio."""


def _json(data: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    all_headers = {"Content-Type": JSON, **(headers or {})}
    return web.Response(body=orjson.dumps(data), status=status, headers=all_headers)


def _unauthorised(*, invalid: bool) -> web.Response:
    # RFC 6750: no error code when no credentials came at all.
    challenge = 'Bearer error="invalid_token"' if invalid else "Bearer"
    return web.Response(status=401, headers={"WWW-Authenticate": challenge})


def _query_id(request: web.BaseRequest) -> str | None:
    """The ``id`` query parameter, its name matched ignoring case (as the service binds it)."""
    query = request.query
    value = query.get("id")
    if value is None:
        for key, candidate in query.items():
            if key.lower() == "id":
                return candidate
    return value


class VendorApi:
    """Handlers for every endpoint of the contract, over one :class:`EmulatorState`."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.admin = AdminApi(state)
        self._plain = Delivery(chunk_bytes=state.config.chunk_bytes)
        # Keyed by lower-cased path, then method.
        self.routes: dict[str, dict[str, tuple[Endpoint, Handler]]] = {
            "/connect/token": {"POST": (Endpoint.TOKEN, self.token)},
            "/v5.0/ocr/converttexttospeech": {
                "POST": (Endpoint.SUBMIT, self.submit),
                "GET": (Endpoint.FETCH, self.fetch),
                "DELETE": (Endpoint.CANCEL, self.cancel),
            },
            "/v5.0/ocr/converttexttospeechtrial": {
                "POST": (Endpoint.TRIAL_SUBMIT, self.trial_submit),
                "GET": (Endpoint.TRIAL_FETCH, self.trial_fetch),
                "DELETE": (Endpoint.TRIAL_CANCEL, self.trial_cancel),
            },
            "/v5.0/ocr/utilities/gettaskstatus": {"GET": (Endpoint.STATUS, self.status)},
        }

    # -- dispatch --------------------------------------------------------------------------

    async def dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_emulator/"):
            return await self.admin.dispatch(request)
        started = time.perf_counter()
        lowered = path.lower()
        methods = self.routes.get(lowered) or self.routes.get(lowered.rstrip("/"))
        endpoint = Endpoint.UNKNOWN
        if methods is None:
            resp: web.StreamResponse = web.Response(status=404)
        elif (entry := methods.get(request.method)) is None:
            resp = web.Response(status=405, headers={"Allow": ", ".join(sorted(methods))})
        else:
            endpoint, handler = entry
            state = self.state
            if endpoint is Endpoint.TOKEN:
                state.token_requests += 1  # every one, even those a fault answers
            refusal = await self._transient(state.faults) if state.any_transient else None
            resp = refusal if refusal is not None else await handler(request)
        self.state.count(endpoint, resp.status)
        if logger.isEnabledFor(logging.DEBUG):
            # The id is the only part of the query logged: a query could carry anything.
            logger.debug(
                "%s %s id=%s -> %d %s (%.1f ms)",
                request.method,
                path,
                _query_id(request),
                resp.status,
                endpoint,
                (time.perf_counter() - started) * 1000,
            )
        return resp

    async def _transient(self, faults: Faults) -> web.Response | None:
        """Latency, then maybe a 5xx or 429 instead of an answer (one draw decides)."""
        if faults.latency:
            await asyncio.sleep(faults.latency)
        if not (faults.server_error_share or faults.rate_limit_share):
            return None
        rng = self.state.rng
        draw = rng.random()
        if draw < faults.server_error_share:
            status = rng.choice(faults.server_error_statuses)
            return web.Response(status=status, text=f"emulated {status}")
        if draw < faults.server_error_share + faults.rate_limit_share:
            wait = retry_after_value(faults.retry_after, http_date=faults.retry_after_http_date)
            return web.Response(status=429, text="Too Many Requests", headers={"Retry-After": wait})
        return None

    def _refuse(self, request: web.BaseRequest) -> web.Response | None:
        """A 401 unless the request carries a live bearer token (and 401s are not forced)."""
        if self.state.faults.always_401:
            return _unauthorised(invalid=True)
        header = request.headers.get("Authorization")
        if header is None:
            return _unauthorised(invalid=False)
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not self.state.authority.valid(token.strip()):
            return _unauthorised(invalid=True)
        return None

    # -- token -----------------------------------------------------------------------------

    async def token(self, request: web.BaseRequest) -> web.StreamResponse:
        """Client credentials from a form (urlencoded or multipart) or HTTP Basic auth."""
        state = self.state
        try:
            form = await request.post()
        except ValueError:
            return _json({"error": "invalid_request"}, 400)
        client_id = form.get("client_id")
        secret = form.get("client_secret")
        header = request.headers.get("Authorization", "")
        if header[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return _json({"error": "invalid_client"}, 400)
            basic_id, _, basic_secret = decoded.partition(":")
            # RFC 6749 2.3.1: both parts are form-urlencoded before joining.
            client_id, secret = unquote_plus(basic_id), unquote_plus(basic_secret)
        grant_type = form.get("grant_type")
        if grant_type is None:
            return _json({"error": "invalid_request"}, 400)
        if grant_type != "client_credentials":
            return _json({"error": "unsupported_grant_type"}, 400)
        grant = state.authority.request(
            client_id if isinstance(client_id, str) else "",
            secret if isinstance(secret, str) else "",
        )
        if grant.token is not None:
            state.tokens_issued += 1
            lifetime = state.config.token_lifetime
            expires_in = int(lifetime) if lifetime == int(lifetime) else lifetime
            return _json(
                {"access_token": grant.token, "expires_in": expires_in, "token_type": "Bearer"},
                headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
            )
        if grant.retry_after is not None:
            wait = retry_after_value(
                grant.retry_after, http_date=state.faults.retry_after_http_date
            )
            return _json(
                {
                    "error": "invalid_client",
                    "error_description": "Too many failed attempts; try again later.",
                },
                429,
                headers={"Retry-After": wait},
            )
        return _json({"error": "invalid_client"}, 400)

    # -- submit ----------------------------------------------------------------------------

    async def submit(self, request: web.BaseRequest) -> web.StreamResponse:
        return self._refuse(request) or await self._submit(request, trial=False)

    async def trial_submit(self, request: web.BaseRequest) -> web.StreamResponse:
        return await self._submit(request, trial=True)

    async def _submit(self, request: web.BaseRequest, *, trial: bool) -> web.StreamResponse:
        state = self.state
        address = request.remote or "unknown"
        if trial:
            wait = state.trial_wait(address)
            if wait is not None:
                limit = state.config.trial_daily_limit
                body = problem_body(
                    {"Trial": [f"The trial allows {limit} calls a day per address."]},
                    status=429,
                )
                header = retry_after_value(wait, http_date=state.faults.retry_after_http_date)
                return web.Response(
                    body=body,
                    status=429,
                    headers={"Content-Type": PROBLEM_JSON, "Retry-After": header},
                )
        raw = await request.read()
        text, errors = parse_submit(raw, max_chars=state.config.trial_max_chars if trial else None)
        if errors:
            return web.Response(
                body=problem_body(errors), status=400, headers={"Content-Type": PROBLEM_JSON}
            )
        if trial:
            state.trial_used(address)
        task = state.create_task(text, trial=trial)
        return web.Response(body=task.id.encode("ascii"), headers={"Content-Type": TEXT})

    # -- cancel ----------------------------------------------------------------------------

    async def cancel(self, request: web.BaseRequest) -> web.StreamResponse:
        return self._refuse(request) or await self.trial_cancel(request)

    async def trial_cancel(self, request: web.BaseRequest) -> web.StreamResponse:
        task_id = _query_id(request)
        if task_id is None:
            return _missing_id()
        task = self.state.store.get(task_id)
        if task is not None:
            task.cancelled = True
        return web.Response(status=200)

    # -- fetch and status ------------------------------------------------------------------

    async def fetch(self, request: web.BaseRequest) -> web.StreamResponse:
        return self._refuse(request) or await self._result(request, status_only=False)

    async def trial_fetch(self, request: web.BaseRequest) -> web.StreamResponse:
        return await self._result(request, status_only=False)

    async def status(self, request: web.BaseRequest) -> web.StreamResponse:
        return self._refuse(request) or await self._result(request, status_only=True)

    async def _result(self, request: web.BaseRequest, *, status_only: bool) -> web.StreamResponse:
        state = self.state
        task_id = _query_id(request)
        if task_id is None:
            return _missing_id()
        task = state.store.get(task_id)
        status = TaskState.NOT_EXIST if task is None else task.state_at(state.clock())
        if task is not None:
            if status_only:
                task.status_requests += 1
            else:
                task.fetches += 1
        messages = task.messages if task is not None and status is TaskState.ERROR else ()
        with_audio = task is not None and status is TaskState.COMPLETED and not status_only
        if not state.any_body:
            # The fast path: no draws, a plain envelope or the cached Base64.
            if with_audio:
                assert task is not None
                return await self._send_audio(request, task, Style(), self._plain, None, False)
            body, _ = envelope(task_id, status, messages=messages)
            return web.Response(body=body, headers=_JSON_HEADERS)
        return await self._faulty_result(
            request,
            task_id,
            task,
            status,
            messages,
            with_audio=with_audio,
            status_only=status_only,
            faults=state.faults,
        )

    async def _faulty_result(
        self,
        request: web.BaseRequest,
        task_id: str,
        task: Task | None,
        status: TaskState,
        messages: tuple[str, ...],
        *,
        with_audio: bool,
        status_only: bool,
        faults: Faults,
    ) -> web.StreamResponse:
        """The slow path: draw the bad answer, encoding and delivery for this response."""
        rng = self.state.rng

        def chance(share: float) -> bool:
            return share > 0 and rng.random() < share

        bad = self._draw_bad_answer(faults)
        if bad in _BAD_AUDIO or bad in _NO_AUDIO:
            bad = bad if with_audio else None
        style = Style(reorder=chance(faults.reorder_keys_share), pretty=chance(faults.pretty_share))
        escape = chance(faults.escape_share)
        # Cut and trickle are about result bodies; a status answer is never cut or slowed.
        cut = not status_only and chance(faults.cut_share)
        trickle = not status_only and chance(faults.trickle_share)
        # Drawn last, and only when asked for, so the draws above stay as they were.
        notes = status is TaskState.COMPLETED and chance(faults.notes_share)
        shown_id: str | None = task_id
        null_id = status is TaskState.NOT_EXIST and chance(faults.null_id_share)
        if null_id:
            shown_id = None if rng.random() < 0.5 else ""
        if notes:
            messages, warnings = faults.note_messages, faults.note_warnings
        else:
            warnings = ()
        drawn = {
            "reorder": style.reorder,
            "pretty": style.pretty,
            "escape": escape and with_audio,
            "cut": cut,
            "trickle": trickle,
            "notes": notes,
            "null_id": null_id,
            str(bad): bad is not None,
        }
        for kind, happened in drawn.items():
            if happened:
                self.state.note_fault(kind)
        delivery = Delivery(
            chunk_bytes=self.state.config.chunk_bytes,
            truncate=bad == "truncated_json",
            cut_at=faults.cut_at if cut else None,
            trickle=(faults.trickle_chunk_bytes, faults.trickle_delay) if trickle else None,
        )
        content_type = TEXT if bad == "wrong_content_type" else JSON
        if bad == "non_json":
            body = NON_JSON_BODY
        elif bad == "html":
            body, content_type = HTML_PAGE, HTML
        elif with_audio and bad not in _NO_AUDIO and bad != "unknown_status":
            assert task is not None
            return await self._send_audio(
                request,
                task,
                style,
                delivery,
                bad,
                escape,
                content_type=content_type,
                good=bad is None,
                notes=(messages, warnings),
            )
        else:
            results: Results = "null"
            shown_status: str = status
            code: str | None = None
            if bad == "missing_results":
                shown_status = TaskState.COMPLETED
                results = "empty" if rng.random() < 0.5 else "null"
            elif bad == "result_data_lost":
                shown_status, code = TaskState.COMPLETED, "ResultDataLost"
            elif bad == "unknown_status":
                shown_status = UNKNOWN_STATUS
            body, _ = envelope(
                shown_id,
                shown_status,
                results=results,
                messages=messages,
                warnings=warnings,
                response_code=code,
                style=style,
            )
        if delivery == self._plain:
            return web.Response(body=body, headers={"Content-Type": content_type})
        resp, _ = await send_runs(
            request, ((body, 1),), content_type=content_type, delivery=delivery
        )
        return resp

    def _draw_bad_answer(self, faults: Faults) -> str | None:
        shares = faults.bad_answer_shares()
        if not any(share for _, share in shares):
            return None
        draw = self.state.rng.random()
        edge = 0.0
        for kind, share in shares:
            edge += share
            if draw < edge:
                return kind
        return None

    async def _send_audio(
        self,
        request: web.BaseRequest,
        task: Task,
        style: Style,
        delivery: Delivery,
        bad: str | None,
        escape: bool,
        *,
        content_type: str = JSON,
        good: bool = True,
        notes: tuple[tuple[str, ...], tuple[str, ...]] = ((), ()),
    ) -> web.StreamResponse:
        """A ``Completed`` envelope around the task's Base64, written in chunks.

        ``good`` bodies (plain or merely re-encoded, possibly cut or trickled) count as audio
        started, and as finished once their last byte is written. ``notes`` are the
        ``(messages, warnings)`` its ``error`` object carries.
        """
        state = self.state
        data = state.encoded(task)
        if bad == "bad_base64":
            data = corrupt_runs(data)
        elif bad == "bad_wav_header":
            data = misstate_runs(data)
        if escape:
            data = escape_runs(data)
        messages, warnings = notes
        head, tail = envelope(
            task.id,
            TaskState.COMPLETED,
            results="data",
            messages=messages,
            warnings=warnings,
            style=style,
        )
        if good:
            task.audio_started += 1
            state.audio_started += 1
        resp, finished = await send_runs(
            request, ((head, 1), *data, (tail, 1)), content_type=content_type, delivery=delivery
        )
        if good and finished and not delivery.truncate:
            task.audio_finished += 1
            state.audio_finished += 1
        return resp


def _missing_id() -> web.Response:
    return web.Response(
        body=problem_body({"id": ["The id field is required."]}),
        status=400,
        headers={"Content-Type": PROBLEM_JSON},
    )


def build_server(state: EmulatorState, **kwargs: Any) -> web.Server:
    """A low-level server answering from ``state`` (needs a running event loop).

    No ``Application``, router or middleware: :meth:`VendorApi.dispatch` does its own dict
    routing, which saves a regex match and the middleware chain on every request.
    ``kwargs`` go to aiohttp's ``RequestHandler`` (for example ``access_log=None``).
    """
    api = VendorApi(state)

    def make_request(
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        return web.BaseRequest(
            message,
            payload,
            protocol,
            writer,
            task,
            asyncio.get_running_loop(),
            client_max_size=_MAX_REQUEST_BYTES,
        )

    return web.Server(api.dispatch, request_factory=make_request, **kwargs)


def build_app(state: EmulatorState) -> web.Application:
    """The same endpoints as an ``Application`` (one catch-all route), to mount or test."""
    api = VendorApi(state)
    app = web.Application(client_max_size=_MAX_REQUEST_BYTES)
    app.router.add_route("*", "/{tail:.*}", api.dispatch)
    return app
