"""One answer, one meaning: every body gets the same outcome, files, suffixes and bytes
whether it comes whole (with its Content-Length) or in chunks of 1, 7 or 64 KiB."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiotts import AiottsError, ResponseError, RetryPolicy, TTSClient
from tests.hostile.answers import FETCH_PATH, TASK_ID, b64, envelope, serve, wav
from tests.hostile.servers import CLIENT_ID, CLIENT_SECRET, HostileServer

pytestmark = pytest.mark.anyio

AUDIO = wav(300)
AUDIO2 = wav(301, seed=1)
BIG = wav(80_000, seed=2)  # its body is longer than SMALL_BODY: never read whole
ONE = [{"type": "WavFile", "data": b64(AUDIO)}]
PCM = AUDIO[44:]


def raw(text: str) -> bytes:
    return text.replace("ID", TASK_ID).encode()


# (name, body, expected: "done" with the file names, or the error class's name)
CORPUS: list[tuple[str, bytes, str]] = [
    ("one result", envelope(ONE), "done ID.wav"),
    ("big result", envelope([{"type": "WavFile", "data": b64(BIG)}]), "done ID.wav"),
    (
        "two results",
        envelope([*ONE, {"type": "WavFile", "data": b64(AUDIO2)}]),
        "done ID.1.wav ID.wav",
    ),
    (
        "type after data",
        raw(
            '{"id":"ID","taskStatus":"Completed","results":[{"data":"'
            + b64(AUDIO)
            + '","type":"WavFile"}]}'
        ),
        "done ID.wav",
    ),
    ("no type", envelope([{"data": b64(AUDIO)}]), "done ID.wav"),
    ("mp3", envelope([{"type": "Mp3File", "data": b64(b"ID3 not a wav")}]), "done ID.bin"),
    (
        "mp3 after data",
        raw(
            '{"id":"ID","taskStatus":"Completed","results":[{"data":"'
            + b64(b"ID3 not a wav")
            + '","type":"Mp3File"}]}'
        ),
        "done ID.bin",
    ),
    ("second result null", envelope([*ONE, {"type": "WavFile", "data": None}]), "ResponseError"),
    ("second result empty", envelope([*ONE, {"type": "WavFile", "data": ""}]), "ResponseError"),
    (
        "results twice",
        raw(
            '{"id":"ID","taskStatus":"Completed","results":[{"data":"'
            + b64(AUDIO)
            + '"}],"results":[{"data":"'
            + b64(AUDIO2)
            + '"}]}'
        ),
        "DecodeError",
    ),
    (
        "null results twice, pending",
        raw('{"id":"ID","taskStatus":"Pending","results":null,"results":null}'),
        "DecodeError",
    ),
    (
        "escaped results twice, pending",
        raw('{"id":"ID","taskStatus":"Pending","results":null,"re\\u0073ults":null}'),
        "DecodeError",
    ),
    (
        "data twice",
        raw(
            '{"id":"ID","taskStatus":"Completed","results":[{"data":"'
            + b64(AUDIO)
            + '","data":"'
            + b64(AUDIO2)
            + '"}]}'
        ),
        "DecodeError",
    ),
    (
        "escaped base64",
        raw(
            '{"id":"ID","taskStatus":"Completed","results":[{"data":"'
            + b64(AUDIO).replace("/", "\\/")
            + '"}]}'
        ),
        "done ID.wav",
    ),
    ("trailing bytes", envelope([{"data": b64(AUDIO + b"junk")}]), "DecodeError"),
    (
        "data chunk shorter than the file",
        envelope([{"data": b64(AUDIO[:40] + (len(PCM) - 4).to_bytes(4, "little") + PCM)}]),
        "DecodeError",
    ),
    ("completed, no results", envelope([]), "ResponseError"),
    ("completed, results null", envelope(None), "ResponseError"),
    ("result data lost", envelope(None, code="ResultDataLost"), "TaskFailedError"),
    ("no result data", envelope([], code="NoAnyResultData"), "TaskFailedError"),
    ("partly found", envelope(ONE, code="PartiallyNotFound"), "done ID.wav"),
    ("pending", envelope(None, task_status="Pending", code="NotReady"), "TaskNotReadyError"),
    (
        "pending with escapes",
        envelope(None, task_status="Pending", error={"messages": ["a\nb \u00e9"], "warnings": []}),
        "TaskNotReadyError",
    ),
    ("pending with results", envelope([{"data": "!!"}], task_status="Pending"), "DecodeError"),
    (
        "error",
        envelope(None, task_status="Error", code="Error", error={"messages": ["it broke"]}),
        "TaskFailedError",
    ),
    (
        "not exist, empty id",
        envelope(None, task_status="NotExist", code="TaskNotFound", task_id=""),
        "TaskNotFoundError",
    ),
    (
        "not exist, null id",
        envelope(None, task_status="NotExist", task_id=None),
        "TaskNotFoundError",
    ),
    ("someone else's id", envelope(ONE, task_id="TTSother"), "ResponseError"),
    ("empty id on completed", envelope(ONE, task_id=""), "ResponseError"),
    ("not json", b"<html>oops</html>", "DecodeError"),
    ("cut short", envelope(ONE)[:-3], "DecodeError"),
    ("array", b"[]", "DecodeError"),
]

MODES: list[int | None] = [None, 1, 7, 64 * 1024]


async def outcome_of(client: TTSClient, folder: Path) -> tuple[object, ...]:
    """What ``download`` made of the answer: the files, their bytes and the warnings, or
    the error (its class and message)."""
    folder.mkdir()
    try:
        saved = await client.download(TASK_ID, folder)
    except AiottsError as exc:
        assert not list(folder.iterdir()), "a failed answer left files behind"
        return (type(exc).__name__, str(exc))
    names = sorted(path.name for path in folder.iterdir())
    assert names == sorted(path.name for path in saved.files)
    contents = tuple((path.name, path.read_bytes()) for path in sorted(folder.iterdir()))
    return ("done", contents, saved.result.warnings)


@pytest.mark.parametrize(("name", "body", "expected"), CORPUS, ids=[c[0] for c in CORPUS])
async def test_every_chunking_of_a_body_means_the_same(
    name: str, body: bytes, expected: str, tmp_path: Path
) -> None:
    async with HostileServer() as server:
        retry = RetryPolicy(max_attempts=1)
        async with TTSClient(CLIENT_ID, CLIENT_SECRET, base_url=server.url, retry=retry) as client:
            outcomes = []
            for mode in MODES:
                server.route("GET", FETCH_PATH, serve(body, mode))
                outcomes.append(await outcome_of(client, tmp_path / str(mode)))
    first = outcomes[0]
    for mode, outcome in zip(MODES, outcomes, strict=True):
        assert outcome == first, f"{name}: chunks of {mode} disagree with the whole body"
    kind, *rest = expected.split()
    assert first[0] == kind, first
    if kind == "done":
        assert [entry[0] for entry in first[1]] == [n.replace("ID", TASK_ID) for n in rest]  # type: ignore[attr-defined]


async def test_the_response_code_of_a_partial_result_is_kept_as_a_warning(tmp_path: Path) -> None:
    async with HostileServer() as server:
        server.route("GET", FETCH_PATH, serve(envelope(ONE, code="PartiallyNotFound"), 7))
        async with TTSClient(CLIENT_ID, CLIENT_SECRET, base_url=server.url) as client:
            saved = await client.download(TASK_ID, tmp_path)
    assert "responseStatusCode PartiallyNotFound" in saved.result.warnings


@pytest.mark.parametrize("chunk", [None, 7])
async def test_an_encoding_aiotts_does_not_read_is_refused_by_name(
    chunk: int | None, tmp_path: Path
) -> None:
    async with HostileServer() as server:
        server.route("GET", FETCH_PATH, serve(envelope(ONE), chunk, **{"Content-Encoding": "xz"}))
        async with TTSClient(CLIENT_ID, CLIENT_SECRET, base_url=server.url) as client:
            with pytest.raises(ResponseError, match="compressed its answer as 'xz'"):
                await client.download(TASK_ID, tmp_path)
    assert not list(tmp_path.iterdir())
