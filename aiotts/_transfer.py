"""Reading one result response: its envelope, and its audio straight to disk.

A small body (most polls: ``Pending``, ``Processing``, errors) is read whole and parsed
with orjson. A large body is never held in memory: it is read in ``READ_CHUNK`` pieces and
fed to the streaming scanner, whose decoded audio goes straight into temporary files.
Either way the files take their final names only through ``commit_all``.

Bad bodies (not JSON, invalid Base64, a WAV that disagrees with its length, ``Completed``
without audio) raise ``Retryable``: a GET is safe to repeat, and the session's retry budget
bounds how often.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pybase64

from aiotts._decode import EnvelopeScanner
from aiotts._errors import DecodeError, ResponseError
from aiotts._files import OutputTarget, ResultFile, commit_all
from aiotts._models import AudioResult, TaskResult, TaskStatus
from aiotts._retry import Retryable
from aiotts._session import READ_CHUNK

__all__ = ["SMALL_BODY", "Answer", "read_answer", "read_envelope"]

SMALL_BODY = 64 * 1024
"""Bodies up to this size (by Content-Length) are read whole; larger ones are streamed."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What one result request told: the envelope, and for a ``Completed`` task its audio,
    written and verified but not yet at its final name.

    ``settle`` gives the files their final names (after an fsync, if durable); it runs after
    the request, so a slow disk holds neither a connection nor a download slot. Until then
    the files are temporary: ``discard`` removes them.
    """

    result: TaskResult
    pending: tuple[ResultFile, ...] = ()

    @property
    def files(self) -> tuple[Path, ...]:
        return tuple(file.final for file in self.pending)

    @property
    def bytes_written(self) -> int:
        return sum(file.size for file in self.pending)

    async def settle(self, *, durable: bool) -> None:
        await commit_all(self.pending, durable=durable)

    def discard(self) -> None:
        for file in self.pending:
            file.discard()


def _bad_body(error: ResponseError) -> Retryable:
    return Retryable(error, sent=True)


def _loads(body: bytes, task_id: str, response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        content_type = response.content_type  # parsed only when it helps explain an error
        raise _bad_body(
            DecodeError(
                f"task {task_id}: the answer is not JSON ({content_type or 'no content type'})",
                offset=exc.pos,
                task_id=task_id,
            )
        ) from exc
    if not isinstance(data, dict):
        raise _bad_body(
            DecodeError(
                f"task {task_id}: the answer is not a JSON object", offset=0, task_id=task_id
            )
        )
    return data


def _result_items(data: dict[str, Any], task_id: str) -> list[tuple[str, str]]:
    """``(type, base64 data)`` of each result of a parsed ``Completed`` envelope."""
    results = data.get("results")
    items: list[tuple[str, str]] = []
    if isinstance(results, list):
        for item in results:
            if isinstance(item, dict) and isinstance(item.get("data"), str) and item["data"]:
                items.append((str(item.get("type") or "WavFile"), item["data"]))
    if not items:
        raise _bad_body(
            ResponseError(
                f"task {task_id}: Completed, but the answer holds no audio", task_id=task_id
            )
        )
    return items


def _b64decode(text: str, task_id: str) -> bytes:
    try:
        return pybase64.b64decode(text, validate=True)
    except ValueError as exc:
        raise _bad_body(
            DecodeError(f"task {task_id}: the audio is not valid Base64", offset=0, task_id=task_id)
        ) from exc


async def read_envelope(response: aiohttp.ClientResponse, task_id: str) -> TaskResult:
    """The whole envelope in memory, audio decoded (``fetch``) or absent (``status``)."""
    data = _loads(await response.read(), task_id, response)
    result = _parse(data, task_id)
    if result.status is not TaskStatus.COMPLETED or data.get("results") is None:
        return result
    audio = tuple(
        AudioResult(kind, _b64decode(text, task_id)) for kind, text in _result_items(data, task_id)
    )
    return dataclasses.replace(result, results=audio)


def _parse(fields: dict[str, Any], task_id: str) -> TaskResult:
    try:
        return TaskResult.from_fields(fields, task_id=task_id)
    except ResponseError as exc:
        raise _bad_body(exc) from None


async def read_answer(
    response: aiohttp.ClientResponse,
    *,
    task_id: str,
    target: OutputTarget,
    download_slots: asyncio.Semaphore,
    on_download: Callable[[], None] | None = None,
) -> Answer:
    """Read a result response; if the task is ``Completed``, write its audio to temporary
    files for ``target`` (the caller settles or discards them).

    ``on_download`` is called once a download slot is held and audio is about to be written.
    """
    length = response.content_length
    if length is not None and length <= SMALL_BODY:
        data = _loads(await response.read(), task_id, response)
        result = _parse(data, task_id)
        if result.status is not TaskStatus.COMPLETED:
            return Answer(result)
        items = _result_items(data, task_id)
        async with download_slots:
            if on_download is not None:
                on_download()
            return _save_decoded(result, items, target)
    async with download_slots:
        if on_download is not None:
            on_download()
        return await _stream_to_files(response, task_id, target)


def _save_decoded(result: TaskResult, items: list[tuple[str, str]], target: OutputTarget) -> Answer:
    files: list[ResultFile] = []
    try:
        for index, (kind, text) in enumerate(items):
            audio = _b64decode(text, result.task_id)
            file = ResultFile(target.path(index, kind), task_id=result.task_id, result_type=kind)
            files.append(file)
            file.write(audio)
        _verify(files)
    except BaseException:
        for file in files:
            file.discard()
        raise
    return Answer(result, tuple(files))


def _verify(files: list[ResultFile]) -> None:
    """Every file is a whole WAV of the length written; a bad one is a bad answer."""
    try:
        for file in files:
            file.verify()
    except DecodeError as exc:
        raise _bad_body(exc) from None


async def _stream_to_files(
    response: aiohttp.ClientResponse, task_id: str, target: OutputTarget
) -> Answer:
    scanner = EnvelopeScanner()
    files: dict[int, ResultFile] = {}
    try:
        try:
            async for chunk in response.content.iter_chunked(READ_CHUNK):
                for piece in scanner.feed(chunk):
                    file = files.get(piece.index)
                    if file is None:
                        # The type may come after the data; it only picks the suffix.
                        file = ResultFile(target.path(piece.index), task_id=task_id)
                        files[piece.index] = file
                    file.write(piece.data)
            envelope = scanner.finish()
        except DecodeError as exc:
            error = DecodeError(
                f"task {task_id}: the answer is not a valid result envelope: {exc.reason}",
                offset=exc.offset,
                task_id=task_id,
            )
            raise _bad_body(error) from exc
        result = _parse(envelope.fields, task_id)
        if result.status is not TaskStatus.COMPLETED:
            _discard(files)
            return Answer(result)
        saved = [files[i] for i in sorted(files)]
        if not saved or envelope.results is None or len(saved) != len(envelope.results):
            raise _bad_body(
                ResponseError(
                    f"task {task_id}: Completed, but the answer holds no audio"
                    if not saved
                    else f"task {task_id}: Completed, but a result holds no audio",
                    task_id=task_id,
                )
            )
        for index, file in enumerate(saved):
            file.result_type = str(envelope.results[index].fields.get("type") or "WavFile")
        _verify(saved)
    except BaseException:
        _discard(files)
        raise
    return Answer(result, tuple(saved))


def _discard(files: dict[int, ResultFile]) -> None:
    for file in files.values():
        file.discard()
