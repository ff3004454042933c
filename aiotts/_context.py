"""The task a piece of work is about, for log lines.

The scheduler sets ``log_task_id`` for each poll, so every log line written while a request
about a task runs (the request itself, its retries, a token refresh it waits for) can name
that task; a log handler reads it (the command line's adds it to each line).
"""

from __future__ import annotations

import contextvars

__all__ = ["log_task_id"]

log_task_id: contextvars.ContextVar[str] = contextvars.ContextVar("aiotts_task_id", default="-")
"""The id of the task the current asyncio task works for, or ``-``."""
