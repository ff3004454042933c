"""Text from outside (ids, server messages) made safe to print on a terminal or in a log.

Invariant: what ``shown`` returns holds no control character, no lone surrogate and at
most ``limit`` characters, so an id can neither recolour the user's terminal nor fill a
log line with thousands of characters.
"""

from __future__ import annotations

import re

__all__ = ["ID_LIMIT", "MESSAGE_LIMIT", "shown", "shown_id"]

ID_LIMIT = 80
"""Characters of an id shown (real ids have 36)."""

MESSAGE_LIMIT = 2000
"""Characters of a message shown."""

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:  # a byte that was not UTF-8, kept as a lone surrogate
        return f"\\x{code - 0xDC00:02x}" if code >= 0xDC80 else f"\\u{code:04x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def shown(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` with control characters escaped (``\\x1b``), cut to ``limit`` characters."""
    safe = _UNSAFE.sub(_escape, text)
    if len(safe) <= limit:
        return safe
    return f"{safe[: limit - 1]}… ({len(safe)} characters)"


def shown_id(task_id: str) -> str:
    """A task id as it is shown on standard error and in log lines."""
    return shown(task_id, ID_LIMIT)
