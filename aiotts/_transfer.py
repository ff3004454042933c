"""Reading one result response: its envelope, and its audio straight to disk.

Every body goes through the streaming scanner, whole or in pieces, and every scanned
envelope through one decision function, :func:`decide`: so one answer means one thing
(the same outcome, the same files, the same suffixes) whatever its size and however it
was cut into chunks. The one shortcut, for the small answers of most polls (``Pending``,
``Processing``, errors), parses the body with orjson only when it holds no ``results``
and nothing the scanner could read differently (no escape, no second ``results`` key).

The audio goes straight into temporary files, one open at a time: a result's file is
closed as soon as the next result's audio begins (the last one stays open until it is
committed). Files are named only
in :func:`decide`, once each result's ``type`` is known; they take their final names only
through ``commit_all``.

Bad bodies (not JSON, invalid Base64, too much JSON besides the audio, a WAV that
disagrees with its length, ``Completed`` without audio) raise ``Retryable``: a GET is safe
to repeat, and the session's retry budget bounds how often. Running out of file
descriptors is local and passes: it is retried the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import orjson

from aiotts import _redact
from aiotts._body import READ_CHUNK, body_chunks, check_encoding
from aiotts._decode import AudioPiece, EnvelopeScanner, ScannedEnvelope
from aiotts._errors import DecodeError, OutputError, ResponseError
from aiotts._files import OutputTarget, ResultFile, commit_all, is_out_of_descriptors
from aiotts._models import AudioResult, TaskResult, TaskStatus
from aiotts._retry import Retryable
from aiotts._slots import Slots

__all__ = ["NO_RESULT_CODES", "SMALL_BODY", "Answer", "decide", "read_answer", "read_envelope"]

SMALL_BODY: Final = 64 * 1024
"""Bodies up to this size (by Content-Length, uncompressed) are read whole; others are
read in pieces. Either way they go through the same scanner and the same decision."""

NO_RESULT_CODES: Final = frozenset({"ResultDataLost", "NoAnyResultData"})
"""``responseStatusCode`` values that make ``Completed`` without audio a definite answer."""

_QUIET_CODES: Final = frozenset({"Ok", "NotReady"})


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


def _parse(fields: dict[str, Any], task_id: str) -> TaskResult:
    try:
        return TaskResult.from_fields(fields, task_id=task_id)
    except ResponseError as exc:
        raise _bad_body(exc) from None


def _result_type(fields: dict[str, Any]) -> str:
    kind = fields.get("type")
    return kind if isinstance(kind, str) and kind else "WavFile"


def _without_audio(result: TaskResult, envelope: ScannedEnvelope) -> TaskResult:
    """The ending of a ``Completed`` answer that holds no audio at all.

    A ``responseStatusCode`` that says the result is gone (``NO_RESULT_CODES``) is a
    definite answer: the task failed, with the code and the server's messages named.
    Anything else is a bad body, retried.
    """
    code = result.response_code
    if code in NO_RESULT_CODES:
        said = f"taskStatus Completed with responseStatusCode {code}: the server holds no audio"
        return dataclasses.replace(
            result, status=TaskStatus.ERROR, messages=(said, *result.messages)
        )
    task_id = result.task_id
    detail = f" (responseStatusCode {code})" if code else ""
    raise _bad_body(
        ResponseError(
            f"task {task_id}: Completed, but the answer holds no audio{detail}", task_id=task_id
        )
    )


def _named_code(result: TaskResult) -> TaskResult:
    """A ``Completed`` result whose ``responseStatusCode`` is not ``Ok`` keeps it as a warning."""
    code = result.response_code
    if code is None or code in _QUIET_CODES:
        return result
    return dataclasses.replace(result, warnings=(f"responseStatusCode {code}", *result.warnings))


def decide(
    envelope: ScannedEnvelope,
    task_id: str,
    files: dict[int, ResultFile],
    target: OutputTarget,
) -> Answer:
    """What one scanned answer means, and the files it keeps (named here, by type).

    The one decision for every body. ``files`` holds the temporary file of each result
    that had audio, by index; the caller discards them all if this raises.
    """
    result = _parse(envelope.fields, task_id)
    if result.status is not TaskStatus.COMPLETED:
        _discard(files)
        return Answer(result)
    results = envelope.results or ()
    if not files:
        _discard(files)
        return Answer(_without_audio(result, envelope))
    saved: list[ResultFile] = []
    for index, scanned in enumerate(results):
        file = files.get(index)
        if file is None:
            raise _bad_body(
                ResponseError(
                    f"task {task_id}: Completed, but results[{index}] holds no audio",
                    task_id=task_id,
                )
            )
        kind = _result_type(scanned.fields)
        file.name_as(target.name(index, kind), kind)
        saved.append(file)
    try:
        for file in saved:
            file.verify()
    except DecodeError as exc:
        raise _bad_body(exc) from None
    return Answer(_named_code(result), tuple(saved))


class _AudioWriter:
    """Writes audio pieces to one temporary file per result, holding one open at a time.

    Invariant: all pieces of one result come one after another, so when a piece of a new
    index arrives, the previous file is complete and is closed.
    """

    __slots__ = ("_current", "files", "target", "task_id")

    def __init__(self, target: OutputTarget, task_id: str) -> None:
        self.target = target
        self.task_id = task_id
        self.files: dict[int, ResultFile] = {}
        self._current: ResultFile | None = None

    def write(self, pieces: list[AudioPiece]) -> None:
        for piece in pieces:
            file = self._current
            if file is None or file is not self.files.get(piece.index):
                if file is not None:
                    file.close()
                    self._current = None
                file = ResultFile(self.target.name(piece.index), task_id=self.task_id)
                self.files[piece.index] = file
                self._current = file
            file.write(piece.data)


def _quick(body: bytes) -> ScannedEnvelope | None:
    """The shortcut for a small answer without ``results``: orjson reads it exactly as the
    scanner would, or ``None`` (then the scanner reads it)."""
    if b"\\" in body or body.count(b'"results"') > 1:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # the scanner names the error and its offset
    if not isinstance(data, dict) or data.pop("results", None) is not None:
        return None
    return ScannedEnvelope(data, None)


async def _whole(body: bytes) -> AsyncIterator[bytes]:
    yield body


def _small_body(response: aiohttp.ClientResponse) -> bool:
    """A body aiohttp reads exactly as long as its ``Content-Length`` (not inflated)."""
    length = response.content_length
    return (
        length is not None and length <= SMALL_BODY and "Content-Encoding" not in response.headers
    )


def _bad_envelope(exc: DecodeError, task_id: str, response: aiohttp.ClientResponse) -> Retryable:
    what = "not a valid result envelope"
    if exc.offset == 0:  # not even the start of a JSON object: say what it claims to be
        what = f"not JSON ({_redact.server_text(response.content_type or 'no content type')})"
    error = DecodeError(
        f"task {task_id}: the answer is {what}: {exc.reason}",
        offset=exc.offset,
        task_id=task_id,
    )
    error.__cause__ = exc
    return _bad_body(error)


async def read_answer(
    response: aiohttp.ClientResponse,
    *,
    task_id: str,
    target: OutputTarget,
    download_slots: Slots,
    on_download: Callable[[], None] | None = None,
) -> Answer:
    """Read a result response; if the task is ``Completed``, write its audio to temporary
    files for ``target`` (the caller settles or discards them).

    A download slot is taken when the first audio arrives; ``on_download`` is called once
    it is held.
    """
    whole: bytes | None = None
    if _small_body(response):
        whole = await response.read()
        quick = _quick(whole)
        if quick is not None:
            return decide(quick, task_id, {}, target)
    else:
        check_encoding(response, "result")
    content = response.content
    scanner = EnvelopeScanner()
    writer = _AudioWriter(target, task_id)
    holding_slot = False  # a download slot is held from the first audio to the end
    try:
        try:
            while True:
                # A small body is fed whole; a large one, read by read, as it arrives.
                if whole is None:
                    chunk = await content.read(READ_CHUNK)
                else:
                    chunk, whole = whole, b""
                if not chunk:
                    break
                pieces = scanner.feed(chunk)
                if pieces:
                    if not holding_slot:
                        await download_slots.acquire()
                        holding_slot = True
                        if on_download is not None:
                            on_download()
                    writer.write(pieces)
            envelope = scanner.finish()
        except DecodeError as exc:
            raise _bad_envelope(exc, task_id, response) from exc
        except OutputError as exc:
            if is_out_of_descriptors(exc):
                raise Retryable(exc, sent=True) from exc
            raise
        # The last file stays open: commit_all syncs it through the same descriptor.
        return decide(envelope, task_id, writer.files, target)
    except BaseException:
        _discard(writer.files)
        raise
    finally:
        if holding_slot:
            download_slots.release()


async def read_envelope(
    response: aiohttp.ClientResponse, task_id: str, *, keep_audio: bool
) -> TaskResult:
    """The envelope, with its audio decoded in memory (``fetch``) or read and dropped
    (``status``: never held, whatever its size)."""
    if _small_body(response):
        body = await response.read()
        quick = _quick(body)
        if quick is not None:
            return _envelope_result(quick, task_id, {}, keep_audio=keep_audio)
        chunks = _whole(body)
    else:
        chunks = body_chunks(response)
    scanner = EnvelopeScanner()
    audio: dict[int, list[bytes]] = {}
    try:
        async for chunk in chunks:
            pieces = scanner.feed(chunk)
            if keep_audio:
                for piece in pieces:
                    audio.setdefault(piece.index, []).append(piece.data)
        envelope = scanner.finish()
    except DecodeError as exc:
        raise _bad_envelope(exc, task_id, response) from exc
    return _envelope_result(envelope, task_id, audio, keep_audio=keep_audio)


def _envelope_result(
    envelope: ScannedEnvelope,
    task_id: str,
    audio: dict[int, list[bytes]],
    *,
    keep_audio: bool,
) -> TaskResult:
    """``decide`` for an answer whose audio stays in memory (or is dropped)."""
    result = _parse(envelope.fields, task_id)
    if result.status is not TaskStatus.COMPLETED:
        return result
    if not keep_audio:
        # The status endpoint leaves ``results`` out: only a code that says the result is
        # gone makes this an ending without audio.
        no_audio = not any(scanned.data_length for scanned in envelope.results or ())
        if no_audio and result.response_code in NO_RESULT_CODES:
            return _without_audio(result, envelope)
        return _named_code(result)
    if not audio:
        return _without_audio(result, envelope)
    results: list[AudioResult] = []
    for index, scanned in enumerate(envelope.results or ()):
        if index not in audio:
            raise _bad_body(
                ResponseError(
                    f"task {task_id}: Completed, but results[{index}] holds no audio",
                    task_id=task_id,
                )
            )
        results.append(AudioResult(_result_type(scanned.fields), b"".join(audio.pop(index))))
    return dataclasses.replace(_named_code(result), results=tuple(results))


def _discard(files: dict[int, ResultFile]) -> None:
    for file in files.values():
        file.discard()
