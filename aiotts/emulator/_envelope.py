"""The result envelope as bytes: pure functions, no I/O.

A ``Completed`` body is ``head + base64 + tail``: only the small head and tail are built per
request, and the Base64 (megabytes) is written as it sits in the cache, never re-serialised.
The style knobs produce other valid JSON encodings of the same envelope: keys in another
order, pretty-printed whitespace, and escaped ``\\/`` and ``\\u002B`` inside the Base64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

from aiotts.emulator._audio import Runs
from aiotts.emulator._snapshots import TaskState

__all__ = ["RESPONSE_STATUS", "Style", "envelope", "escape_base64", "escape_runs"]

RESPONSE_STATUS: dict[str, str] = {
    TaskState.PENDING: "NotReady",
    TaskState.PROCESSING: "NotReady",
    TaskState.COMPLETED: "Ok",
    TaskState.ERROR: "Error",
    TaskState.NOT_EXIST: "TaskNotFound",
}
"""The ``responseStatusCode`` sent with each ``taskStatus`` (an unknown one gets NotReady)."""

# Stands where the Base64 goes; the id (the only caller-influenced string in a body that
# carries data) is one of our own ids, so it cannot contain this text.
_PLACEHOLDER = "@@aiotts-emulator-data@@"
_PLACEHOLDER_JSON = orjson.dumps(_PLACEHOLDER)

Results = Literal["data", "null", "empty"]


@dataclass(frozen=True, slots=True)
class Style:
    """How one envelope is encoded; every style is valid JSON of the same content."""

    reorder: bool = False
    pretty: bool = False


PLAIN = Style()


def envelope(
    task_id: str | None,
    status: str,
    *,
    results: Results = "null",
    messages: tuple[str, ...] = (),
    warnings: tuple[str, ...] = (),
    response_code: str | None = None,
    style: Style = PLAIN,
) -> tuple[bytes, bytes]:
    """``(head, tail)`` of the envelope for ``task_id`` in ``status``.

    With ``results="data"`` the body is ``head + base64 + tail``; otherwise ``head`` is the
    whole body and ``tail`` is empty. ``messages`` and ``warnings`` fill ``error`` (null
    without either). ``response_code`` replaces the ``responseStatusCode`` that goes with
    ``status`` (:data:`RESPONSE_STATUS`).
    """
    result_list: list[dict[str, str]] | None
    if results == "data":
        item = {"type": "WavFile", "data": _PLACEHOLDER}
        if style.reorder:
            item = {"data": _PLACEHOLDER, "type": "WavFile"}
        result_list = [item]
    else:
        result_list = [] if results == "empty" else None
    error = (
        {"messages": list(messages), "warnings": list(warnings)} if messages or warnings else None
    )
    code = response_code if response_code is not None else RESPONSE_STATUS.get(status, "NotReady")
    pairs: list[tuple[str, Any]] = [
        ("id", task_id),
        ("responseStatusCode", code),
        ("taskStatus", status),
        ("results", result_list),
        ("error", error),
    ]
    if style.reorder:
        pairs.reverse()
    body = orjson.dumps(dict(pairs), option=orjson.OPT_INDENT_2 if style.pretty else 0)
    if results != "data":
        return body, b""
    head, found, tail = body.partition(_PLACEHOLDER_JSON)
    assert found, "the placeholder is always serialised verbatim"
    return head + b'"', b'"' + tail


def escape_base64(data: bytes) -> bytes:
    """Base64 with every ``/`` written ``\\/`` and every ``+`` written ``\\u002B``.

    Still the same JSON string; ``bytes.replace`` keeps it at C speed for tens of megabytes.
    """
    return data.replace(b"/", b"\\/").replace(b"+", b"\\u002B")


def escape_runs(runs: Runs) -> Runs:
    """:func:`escape_base64` piece by piece (escaping is per character, so runs survive)."""
    return tuple((escape_base64(piece), times) for piece, times in runs)
