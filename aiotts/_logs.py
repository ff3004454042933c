"""Structured log records, and ``AIOTTS_LOG`` to turn them on without code.

The ``aiotts`` logger writes one record per event (a task's state change, a retry, a 429,
a slowdown, a new token, a file written, an answer), each with its facts as attributes of
the record (``extra=``): ``event``, ``task_id``, ``state``, ``previous``, ``elapsed``,
``attempt``, ``kind``, ``status``, ``delay``, ``cause``... (``FIELDS``). State changes,
files and answers are logged at DEBUG, the rest at INFO; nothing at WARNING or above
unless a hook fails. Whether a kind of event is logged at all is decided once, when a
client is made: a client made while the ``aiotts`` logger is not enabled for DEBUG or INFO
writes no record of that level and builds none.

``AIOTTS_LOG`` (read when the first client is made, and by the command line at start):

* ``json``: one JSON object per line on standard error, with the fields above;
* ``debug``: readable lines on standard error;
* unset or empty: nothing is configured (the application's own logging applies).

Any other value is an error that names the accepted ones. No field ever holds a secret or
a token: the facts logged are ids, states, numbers and texts already made safe
(``_redact``), and every string goes through ``_redact.server_text`` once more here.
"""

from __future__ import annotations

import datetime
import logging
import os
import sys
import threading
from typing import Any

import orjson

from aiotts import _redact
from aiotts._errors import UsageError

__all__ = [
    "ENV_VAR",
    "EVENT_LEVELS",
    "FIELDS",
    "JsonFormatter",
    "configure_from_env",
    "log_levels",
]

ENV_VAR = "AIOTTS_LOG"
LOGGER = "aiotts"

EVENT_LEVELS: dict[str, int] = {
    "state": logging.DEBUG,
    "file": logging.DEBUG,
    "request": logging.DEBUG,
    "retry": logging.INFO,
    "throttle": logging.INFO,
    "rate": logging.INFO,
    "token": logging.INFO,
}
"""The level each kind of event is logged at."""

FIELDS = (
    "event",
    "task_id",
    "state",
    "previous",
    "elapsed",
    "attempt",
    "kind",
    "method",
    "path",
    "status",
    "delay",
    "cause",
    "error",
    "retry_after",
    "rate",
    "slowdowns",
    "lifetime",
    "refreshes",
    "path",
    "bytes",
    "resumed",
)
"""The structured fields a record of aiotts may carry (as attributes of the record)."""

_configured = False
_lock = threading.Lock()


def log_levels(logger: logging.Logger | None = None) -> dict[str, int]:
    """The kinds of event the ``aiotts`` logger would write now, with their levels."""
    logger = logger or logging.getLogger(LOGGER)
    return {kind: level for kind, level in EVENT_LEVELS.items() if logger.isEnabledFor(level)}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        line: dict[str, Any] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _redact.server_text(record.getMessage(), limit=2000),
        }
        values = record.__dict__
        for name in FIELDS:
            value = values.get(name)
            if value is not None:
                line[name] = _safe(value)
        if record.exc_info:
            line["exception"] = _redact.server_text(
                self.formatException(record.exc_info), limit=8000
            )
        return orjson.dumps(line).decode()


def _safe(value: object) -> object:
    if isinstance(value, bool | int | float):
        return value
    return _redact.server_text(str(value), limit=2000)


class _ReadableFormatter(logging.Formatter):
    """``time level [task] message``, secrets scrubbed, one line per record."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        task_id = record.__dict__.get("task_id")
        if isinstance(task_id, str) and task_id and task_id != "-":
            head, _, rest = text.partition(f" {record.name} ")
            text = f"{head} {record.name} [{task_id}] {rest}"
        return _redact.server_text(text, limit=8000) if not record.exc_info else text


def configure_from_env(environ: dict[str, str] | os._Environ[str] | None = None) -> str | None:
    """Apply ``AIOTTS_LOG`` once per process: a handler on the ``aiotts`` logger writing to
    standard error. Returns the mode applied (None when the variable is unset or the
    configuration was already done)."""
    global _configured
    mode = (environ if environ is not None else os.environ).get(ENV_VAR, "").strip().lower()
    if not mode:
        return None
    if mode not in ("json", "debug"):
        raise UsageError(
            f"{ENV_VAR}={mode!r} is not understood: use json, debug, or leave it unset"
        )
    with _lock:
        if _configured:
            return None
        _configured = True
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if mode == "json" else _ReadableFormatter())
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # one line per record, not a second through the root's handlers
    return mode
