"""Server text made safe to show: secrets scrubbed, control characters escaped, length capped.

Anything a server sends back (an error body, a reason phrase, a ``Location`` header, the
envelope's messages and warnings, an unknown ``taskStatus``) is untrusted: a hostile or
careless server may echo the posted form (client secret included) or the
``Authorization`` header. Every such text passes through ``server_text`` where it enters
aiotts, before it reaches an exception, a log line, an outcome or the manifest.

Invariants:

* Every client secret is registered when its client is built, every token as soon as it
  is received, so nothing the client ever sent can come back unscrubbed.
* The registry is process-wide: a text is scrubbed of the secrets of every client, which
  can only hide more, never less. Secrets stay registered for the life of the process
  (there are few); tokens are kept for the last ``_TOKENS_KEPT`` issued, far more than
  can still be valid.
* Scrubbing comes first, then escaping, then the cap, so that neither an escape nor a cut
  can split a secret into pieces that are no longer recognised.
"""

from __future__ import annotations

import re
import urllib.parse
from collections import deque

__all__ = [
    "REDACTED",
    "TEXT_LIMIT",
    "register_secret",
    "register_token",
    "safe_cause",
    "server_text",
]

REDACTED = "[redacted]"
TEXT_LIMIT = 300
"""Characters of one server text kept; longer texts end in an ellipsis."""

_TOKENS_KEPT = 256

_secrets: set[str] = set()
_tokens: deque[str] = deque(maxlen=_TOKENS_KEPT)
_pattern: re.Pattern[str] | None = None

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators and bidi overrides
# that can rewrite how a terminal shows the rest of a line.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _forms(value: str) -> set[str]:
    """The spellings of ``value`` a server may echo: as sent, form-encoded, URL-quoted."""
    return {
        value,
        urllib.parse.quote_plus(value, safe=""),
        urllib.parse.quote(value, safe=""),
    }


def register_secret(value: str | None) -> None:
    """Scrub ``value`` (a client secret) from every server text from now on."""
    global _pattern
    if value:
        _secrets.update(_forms(value))
        _pattern = None


def register_token(value: str) -> None:
    """Scrub ``value`` (a bearer token just received) from every server text from now on."""
    global _pattern
    if value and value not in _tokens:
        _tokens.append(value)
        _pattern = None


def _compiled() -> re.Pattern[str] | None:
    global _pattern
    if _pattern is None:
        known = _secrets.union(_tokens)
        if not known:
            return None
        # Longest first, so that a secret containing another is replaced whole.
        alternatives = sorted(known, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(value) for value in alternatives))
    return _pattern


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def server_text(text: object, *, limit: int = TEXT_LIMIT) -> str:
    """``text`` (any server-sent value; non-strings are shown with ``repr``) with every
    known secret and token replaced by ``[redacted]``, control characters escaped, and
    at most ``limit`` characters kept."""
    shown = text if isinstance(text, str) else repr(text)
    pattern = _compiled()
    if pattern is not None:
        shown = pattern.sub(REDACTED, shown)
    shown = _CONTROL.sub(_escape, shown)
    if len(shown) > limit:
        shown = shown[:limit] + "…"
    return shown


def safe_cause(exc: BaseException) -> BaseException | None:
    """``exc`` to chain as the cause of an aiotts error, or None when its own text holds a
    secret or a token (a traceback would print it)."""
    pattern = _compiled()
    if pattern is not None and pattern.search(str(exc)) is not None:
        return None
    return exc
