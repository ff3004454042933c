"""Server text is untrusted output: a server that echoes the client secret or the bearer
token in every kind of answer gets neither back into an exception, an outcome, the
manifest, a log line (the JSON lines of ``AIOTTS_LOG=json`` included) or a hook's event,
and control characters arrive escaped."""

from __future__ import annotations

import dataclasses
import io
import logging
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from aiotts import AiottsError, CredentialsError, Hooks, TaskResult, TTSClient
from aiotts._logs import JsonFormatter
from aiotts._redact import REDACTED, TEXT_LIMIT, server_text
from tests.hostile.servers import CLIENT_ID, CLIENT_SECRET, TOKEN, HostileServer
from tests.hostile.transport import (
    FEW_RETRIES,
    STATUS_PATH,
    TOKEN_PATH,
    TTS_PATH,
    RawServer,
    answer_with,
    client_of,
    completed,
    envelope,
)

pytestmark = pytest.mark.anyio

ESCAPE = "\x1b[2J\x1b[31m"  # clear the screen, then red: a terminal must never see it raw


def echo(request: web.Request) -> str:
    """What a careless server quotes back: the Authorization header, the secret."""
    return f"{request.headers.get('Authorization')} {CLIENT_SECRET} {ESCAPE}"


async def answers(request: web.Request) -> web.StreamResponse:
    """One kind of answer per task id, each carrying the secret and the token."""
    task_id = request.query["id"]
    text = echo(request)
    if task_id == "error-messages":
        return envelope(task_id, "Error", error={"messages": [text], "warnings": [text]})
    if task_id == "completed-warnings":
        return completed(task_id, error={"messages": [text], "warnings": [text]})
    if task_id == "unknown-status":
        return envelope(task_id, f"Odd {text}")
    if task_id == "wrong-id":
        return envelope(f"other {text}", "Pending")
    if task_id == "json-400":
        body = {"title": "Invalid", "errors": {"Authorization": [text]}, "status": 400}
        return web.Response(status=400, body=orjson.dumps(body), content_type="application/json")
    if task_id == "plain-400":
        return web.Response(status=400, text=f"bad request: {text}")
    if task_id == "reason-500":
        return web.Response(status=500, reason=f"Broken {TOKEN} {CLIENT_SECRET}", text=text)
    if task_id == "location-302":
        target = f"http://127.0.0.1:9/?token={TOKEN}&secret={CLIENT_SECRET}&e=%1b"
        return web.Response(status=302, headers={"Location": target})
    raise AssertionError(task_id)


IDS = [
    "error-messages",
    "completed-warnings",
    "unknown-status",
    "wrong-id",
    "json-400",
    "plain-400",
    "reason-500",
    "location-302",
]


def texts_of(error: BaseException | None) -> list[str]:
    """str and repr of an exception and of every exception a traceback would show."""
    found: list[str] = []
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        found += [str(error), repr(error)]
        for name in ("messages", "raw", "text"):
            found.append(repr(getattr(error, name, None)))
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    return found


def assert_clean(texts: list[str]) -> None:
    for text in texts:
        assert CLIENT_SECRET not in text, text
        assert TOKEN not in text, text
        assert "\x1b" not in text and "\r" not in text, text


def event_texts(event: object) -> list[str]:
    """repr of a hook's event, and str of each of its fields (an outcome's texts too)."""
    found = [repr(event)]
    for item in dataclasses.fields(event):  # type: ignore[arg-type]
        value = getattr(event, item.name)
        found.append(str(value))
        if dataclasses.is_dataclass(value):
            found += event_texts(value)
            found += texts_of(getattr(value, "cause", None))
    return found


async def test_no_secret_or_token_comes_back_from_any_answer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiotts")
    json_log = io.StringIO()
    json_handler = logging.StreamHandler(json_log)  # what AIOTTS_LOG=json writes
    json_handler.setFormatter(JsonFormatter())
    logging.getLogger("aiotts").addHandler(json_handler)
    events: list[object] = []
    every_event = Hooks(*[events.append] * len(dataclasses.fields(Hooks)))
    outputs: list[str] = []
    async with HostileServer() as server:
        server.route("GET", TTS_PATH, answers)
        server.route("GET", STATUS_PATH, answers)
        async with client_of(server, retry=FEW_RETRIES, hooks=every_event) as client:
            manifest = tmp_path / "manifest.jsonl"
            report = await client.fetch_all(IDS, tmp_path / "out", manifest=manifest)
            for outcome in report.done + report.failed:
                outputs += [repr(outcome), outcome.error or "", *outcome.messages]
                outputs += texts_of(outcome.cause)
            outputs.append(manifest.read_text())
            for task_id in IDS:
                for call in (client.status, client.fetch):
                    try:
                        result: TaskResult = await call(task_id)
                    except AiottsError as exc:
                        outputs += texts_of(exc)
                    else:
                        outputs += [repr(result), *result.messages, *result.warnings]
                try:
                    await client.download(task_id, tmp_path / "single")
                except AiottsError as exc:
                    outputs += texts_of(exc)
    logging.getLogger("aiotts").removeHandler(json_handler)
    outputs += [record.getMessage() for record in caplog.records]
    json_lines = json_log.getvalue().splitlines()
    outputs += json_lines
    for event in events:
        outputs += event_texts(event)
    assert any(TOKEN in request.headers.get("Authorization", "") for request in server.received)
    assert_clean(outputs)
    # Every kind of record and event was there to be checked, the server's texts scrubbed.
    kinds = {orjson.loads(line).get("event") for line in json_lines}
    assert {"state", "retry", "request", "token", "file"} <= kinds
    assert {type(event).__name__ for event in events} >= {
        "TaskStateChanged",
        "RetryScheduled",
        "RequestFinished",
        "TokenRefreshed",
        "FileWritten",
    }
    assert any(REDACTED in line and '"event":"retry"' in line for line in json_lines)
    assert any(REDACTED in text for event in events for text in event_texts(event))
    # The texts were there and scrubbed, not dropped.
    failed = {o.task_id: o for o in report.failed}
    assert REDACTED in failed["error-messages"].messages[0]
    assert "\\x1b[2J" in failed["error-messages"].messages[0]
    assert {o.task_id for o in report.done} == {"completed-warnings"}
    assert REDACTED in report.done[0].messages[0]
    assert REDACTED in (failed["unknown-status"].error or "")
    assert REDACTED in (failed["location-302"].error or "")
    assert REDACTED in (failed["json-400"].error or "")
    assert "Broken [redacted] [redacted]" in (failed["reason-500"].error or "")
    assert REDACTED in manifest.read_text()


@pytest.mark.parametrize("status", [400, 401, 403])
async def test_a_token_endpoint_that_echoes_the_form_gets_no_secret_back(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiotts")

    async def refuse(request: web.Request) -> web.StreamResponse:
        form = (await request.read()).decode()
        body = {"error": "invalid_client", "error_description": f"refused {form} {ESCAPE}"}
        return web.json_response(body, status=status)

    async with HostileServer() as server:
        server.route("POST", TOKEN_PATH, refuse)
        async with client_of(server) as client:
            with pytest.raises(CredentialsError) as caught:
                await client.status("any")
    assert CLIENT_SECRET in server.received[0].body.decode()  # it was sent, and echoed
    assert REDACTED in str(caught.value)
    assert_clean(texts_of(caught.value) + [r.getMessage() for r in caplog.records])


def test_server_text_is_capped_and_escaped() -> None:
    shown = server_text("a\u202eb\x00" + "x" * 1000)
    assert shown.startswith("a\\u202eb\\x00x")
    assert len(shown) == TEXT_LIMIT + 1 and shown.endswith("…")
    assert server_text(12) == "12"


@pytest.mark.parametrize(
    "raw",
    [
        f"HTTP/1.1 2x0 {TOKEN} {CLIENT_SECRET}\r\n\r\n",
        f"HTTP/1.1 200 OK\r\n{TOKEN}: {CLIENT_SECRET}\x1b\r\n\r\n",
    ],
    ids=["status line", "header"],
)
async def test_a_broken_answer_quoting_secrets_leaves_them_out_of_the_chain(raw: str) -> None:
    async with (
        HostileServer() as tokens,
        RawServer(answer_with(raw.encode())) as server,
        TTSClient(
            CLIENT_ID,
            CLIENT_SECRET,
            base_url=server.url,
            token_url=tokens.url + TOKEN_PATH,
            retry=FEW_RETRIES,
        ) as client,
    ):
        with pytest.raises(AiottsError) as caught:
            await client.status("any")
    assert_clean(texts_of(caught.value))
