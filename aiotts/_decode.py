"""The streaming scanner: a result body's bytes in, envelope fields and decoded audio out.

A fetch answer may carry tens of megabytes of Base64 inside one JSON string, so the
client never parses a whole result body. It feeds the body, in chunks split anywhere
(down to one byte), to an :class:`EnvelopeScanner`, which follows the JSON structure of
the envelope and hands back the audio of ``results[i].data`` as decoded bytes while they
arrive::

    scanner = EnvelopeScanner()
    for chunk in body_chunks:
        for piece in scanner.feed(chunk):       # AudioPiece(index, data)
            files[piece.index].write(piece.data)
    envelope = scanner.finish()                 # ScannedEnvelope(fields, results)

Any valid JSON encoding of the envelope is accepted: any key order, any whitespace, any
escape inside a string, any number of results. Anything else raises
:class:`~aiotts._errors.DecodeError` naming the absolute byte offset in the body.

How it works
------------
The scanner is a small state machine over three fixed levels of nesting: the top-level
object (level 0), the ``results`` array (level 1) and one result object (level 2). Its
states (``_S_*``) are::

    DOC_START   before the document: whitespace, then ``{``
    OBJ_OPEN    just after ``{``: whitespace, then a key or ``}``
    OBJ_KEY     just after ``,`` in an object: whitespace, then a key (no trailing comma)
    CAPTURE     inside a captured token: a key, or a value other than ``results``/``data``
    COLON       after a key: whitespace, then ``:``
    VALUE       after ``:``: whitespace, then the value, dispatched on (level, key)
    DATA        inside the string ``results[i].data``: the Base64 decoder runs
    AFTER       after a value: whitespace, then ``,`` or the closer of the current level
    ARR_OPEN    just after ``[`` of ``results``: whitespace, then ``{`` or ``]``
    ARR_ITEM    just after ``,`` in ``results``: whitespace, then ``{``
    DOC_END     after the final ``}``: whitespace only
    FAILED      an error was raised; it is raised again on every later call

Keys and every value other than ``results`` and ``results[i].data`` are small: their raw
bytes are found (straight in the chunk when the token ends there, else captured across
chunks while the scanner tracks nesting and strings just enough to find where it ends)
and parsed with :func:`orjson.loads`, so exactly orjson's rules apply to them (numbers,
literals, escapes, UTF-8, nesting depth). The structural part (the two objects, the
array, keys, colons, commas and whitespace) is checked here, as strictly as orjson checks
it. A repeated key keeps its last value, as in orjson, except that a second ``results``
or a second ``data`` in one result is an error: its audio could not be taken back.

The ``data`` string is never accumulated. Its content is unescaped (only ``\\/`` and
``\\uXXXX`` escapes can spell Base64 characters; anything else is an error), checked
against the standard Base64 alphabet with ``=`` padding only at the very end, and decoded
by :func:`pybase64.b64decode` (``validate=True``) in 4-character-aligned runs:

* the fast path, for a chunk inside an unescaped string, is one strict decode of a
  zero-copy memoryview slice of the chunk: if it succeeds, the slice held no quote and no
  backslash. Only when it fails is the closing quote searched for (``bytes.find``);
* a run with escapes is unescaped by orjson, 16 KiB at a time (an escape cut by a window
  or chunk boundary waits in ``_pending``), then decoded the same way;
* when either refuses, the run is walked one character at a time to raise the error at
  its exact offset. That walk only ever runs on invalid input.

Invariants
----------
* ``bytes_seen`` counts every byte fed; each error's offset is absolute in that stream.
* Inside ``data``, ``_carry`` holds the 0 to 3 characters of the Base64 quad that is not
  complete yet (already checked one by one) and ``_pending`` an escape sequence cut by a
  chunk or window boundary (at most 5 bytes, starting with a backslash). With ``_pad``
  they are all the decoder keeps between chunks.
* Audio leaves as soon as it is decoded, at most a few pieces per chunk, never an empty
  one: a result whose ``data`` is ``""`` or ``null`` yields none (``data_length`` then
  tells 0 from ``None``).
* ``_cap`` holds only the raw bytes of the one key or small value being captured, and
  never more than ``max_value_bytes``; ``_held`` counts the raw bytes of every key and
  small value stored, never more than ``max_field_bytes`` (``MAX_FIELD_BYTES``; the
  one-step tail checks its members against that cap but adds none, as nothing follows
  it), and ``results`` never has more than ``max_results`` (``MAX_RESULTS``) elements.
  So what the scanner keeps is bounded by those caps plus the output of the chunk being
  fed, whatever the size of the body; past a cap it raises a ``DecodeError`` naming it.
* The fast path of the data string commits nothing until its whole run decoded, so the
  slow path can retake a refused run from the same state.
* After an error the scanner is FAILED for good: every later call raises that error.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from typing import Any, Final, NoReturn

import orjson
import pybase64

from aiotts._errors import DecodeError

__all__ = [
    "DEFAULT_MAX_VALUE_BYTES",
    "MAX_FIELD_BYTES",
    "MAX_RESULTS",
    "AudioPiece",
    "EnvelopeScanner",
    "ScannedEnvelope",
    "ScannedResult",
    "scan_body",
]

#: The largest key or small value (anything but ``results[i].data``) the scanner captures.
DEFAULT_MAX_VALUE_BYTES: Final = 1024 * 1024

#: The most bytes of JSON besides the audio (keys and every other value, at every level)
#: one answer may hold: the scanner keeps them all until the end. A real envelope has
#: a few hundred.
MAX_FIELD_BYTES: Final = 1024 * 1024

#: The most elements ``results`` may have. A real answer has one.
MAX_RESULTS: Final = 1000

# The slow path unescapes a data string this many bytes at a time.
_WINDOW: Final = 16 * 1024

# How far from a chunk's end the data string looks for its closing quote before decoding.
_TAIL: Final = 256

# orjson refuses documents nested deeper than this many arrays and objects.
_MAX_DEPTH: Final = 1024

_WS: Final = frozenset(b" \t\n\r")
_B64: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")
_EQ: Final = 0x3D  # "="
_QUOTE: Final = 0x22  # '"'
_BACKSLASH: Final = 0x5C  # "\\"
# The one-character JSON escapes (the byte after the backslash) and what they stand for.
_SHORT_ESCAPES: Final = {
    b'"': 0x22,
    b"\\": 0x5C,
    b"/": 0x2F,
    b"b": 0x08,
    b"f": 0x0C,
    b"n": 0x0A,
    b"r": 0x0D,
    b"t": 0x09,
}

_NOT_WS: Final = re.compile(rb"[^ \t\n\r]")
# A whole plain member (``"key": "text"`` or ``"key": null``, then ``,`` or ``}``) in one
# match: printable ASCII strings without quote or backslash, which every JSON parser reads
# as the very same characters, so no parse is needed. The key is neither ``results`` nor
# ``data`` (those two may open the audio, so they always take the general path).
_PLAIN: Final = rb"[\x20\x21\x23-\x5b\x5d-\x7f]*"
_PLAIN_MEMBER: Final = re.compile(
    rb'"(?!(?:results|data)")(' + _PLAIN + rb')"[ \t\n\r]*:[ \t\n\r]*'
    rb'(?:"(' + _PLAIN + rb')"|null)[ \t\n\r]*([,}])'
)
# The usual head of a ``Completed`` answer in one match: ``{``, plain members, ``"results":
# [{``, plain members, then ``"data":"``, where the audio begins. Its members are read with
# ``_HEAD_MEMBER`` (``null`` fills group 3 instead of 2). The scanner takes this head in one step
# instead of a dozen, and only when it stores exactly what the general path would store
# (``_fast_head``); otherwise it goes the general way from the same place.
_WSP: Final = rb"[ \t\n\r]*"
_COLON: Final = _WSP + b":" + _WSP
# No member the groups repeat is named ``results`` or ``data``: else they would try the
# audio itself as a plain value (megabytes scanned, then given back) before finding where
# the audio begins.
_MEMBER: Final = (
    rb'"(?!(?:results|data)")' + _PLAIN + rb'"' + _COLON + rb'(?:"' + _PLAIN + rb'"|null)'
)
_MEMBERS: Final = b"((?:" + _MEMBER + _WSP + b"," + _WSP + b")*)"
_HEAD: Final = re.compile(
    rb"\{"
    + _WSP
    + _MEMBERS
    + rb'"results"'
    + _COLON
    + rb"\["
    + _WSP
    + rb"\{"
    + _WSP
    + _MEMBERS
    + rb'"data"'
    + _COLON
    + b'"'
)
_HEAD_MEMBER: Final = re.compile(
    rb'"(' + _PLAIN + rb')"' + _COLON + rb'(?:"(' + _PLAIN + rb')"|(null))'
)
# The usual tail, right after the closing quote of the one result's ``data``: its object
# and the array closed, then plain members, then the closing ``}``.
_RESULT_TAIL: Final = re.compile(
    _WSP + rb"\}" + _WSP + rb"\]" + _WSP + b"((?:," + _WSP + _MEMBER + _WSP + rb")*)\}"
)
_STRING_SPECIAL: Final = re.compile(rb'["\\]')
_CONTAINER_SPECIAL: Final = re.compile(rb'["\[\]{}]')
_SCALAR_END: Final = re.compile(rb"[ \t\n\r,\]}]")

# States (see the module docstring).
_S_DOC_START: Final = 0
_S_OBJ_OPEN: Final = 1
_S_OBJ_KEY: Final = 2
_S_CAPTURE: Final = 3
_S_COLON: Final = 4
_S_VALUE: Final = 5
_S_DATA: Final = 6
_S_AFTER: Final = 7
_S_ARR_OPEN: Final = 8
_S_ARR_ITEM: Final = 9
_S_DOC_END: Final = 10
_S_FAILED: Final = 11
_STATE_NAMES: Final = (
    "DOC_START",
    "OBJ_OPEN",
    "OBJ_KEY",
    "CAPTURE",
    "COLON",
    "VALUE",
    "DATA",
    "AFTER",
    "ARR_OPEN",
    "ARR_ITEM",
    "DOC_END",
    "FAILED",
)

# Levels of nesting.
_L_TOP: Final = 0
_L_RESULTS: Final = 1
_L_RESULT: Final = 2

# Capture modes: how the end of the captured token is found.
_M_STRING: Final = 0
_M_CONTAINER: Final = 1
_M_SCALAR: Final = 2

# Capture targets: what the parsed token becomes.
_T_KEY: Final = 0
_T_FIELD: Final = 1
_T_NULL: Final = 2  # the null of ``results`` or ``results[i].data``: checked, not stored


@dataclass(frozen=True, slots=True)
class AudioPiece:
    """Decoded audio from ``results[index].data``, in order.

    All pieces of one index come one after another in the stream of pieces.
    """

    index: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ScannedResult:
    """One element of ``results``: its keys except ``data``, and the decoded size of ``data``.

    ``data_length`` is ``None`` when ``data`` is absent or ``null``.
    """

    fields: dict[str, Any]
    data_length: int | None


@dataclass(frozen=True, slots=True)
class ScannedEnvelope:
    """The envelope without its audio.

    ``fields`` holds every top-level key except ``results``, parsed as JSON (``id``,
    ``responseStatusCode``, ``taskStatus``, ``error``, unknown keys). ``results`` is
    ``None`` when the key is absent or ``null``.
    """

    fields: dict[str, Any]
    results: tuple[ScannedResult, ...] | None


def _show(byte: int) -> str:
    """A byte as a message shows it."""
    if 0x20 <= byte < 0x7F:
        return repr(chr(byte))
    return f"byte 0x{byte:02x}"


def _b64_step(byte: int, qpos: int, pad: int) -> int | None:
    """The Base64 checker's ``pad`` after one more character, at position ``qpos`` (0-3)
    of its quad, or ``None`` if the character is not allowed there.

    ``pad`` is 0 before any ``=``, 1 after a ``=`` in position 2 (a second ``=`` must
    follow), 2 after the final quad. The caller moves ``qpos`` on by one.
    """
    if pad == 2:
        return None
    if pad == 1:
        return 2 if byte == _EQ else None
    if byte in _B64:
        return 0
    if byte == _EQ:
        if qpos == 2:
            return 1
        if qpos == 3:
            return 2
    return None


def _b64_check(text: bytes, qpos: int, pad: int) -> int | None:
    """``_b64_step`` over a few characters from ``qpos``: ``pad`` after them, or ``None``."""
    for byte in text:
        step = _b64_step(byte, qpos, pad)
        if step is None:
            return None
        qpos = (qpos + 1) & 3
        pad = step
    return pad


def _unescape_fast(text: bytes) -> bytes | None:
    """Unescape ``text`` (a part of a JSON string holding only complete escapes) with
    orjson; ``None`` if orjson refuses it.

    The result is not checked here: an escape that spells no Base64 character leaves a
    character that the strict Base64 decoder refuses next.
    """
    try:
        # ``text`` holds no quote but an escaped one (the run ends before the string's
        # closing quote), so this is one JSON string or nothing: orjson gives a str.
        value: str = orjson.loads(b'"' + text + b'"')
    except orjson.JSONDecodeError:
        return None
    # UTF-8 cannot fail: orjson refuses a lone surrogate.
    return value.encode()


def _escape_cut(seg: bytes) -> int:
    """Where the incomplete escape at the end of ``seg`` begins (``len(seg)`` if none).

    An escape is at most 6 bytes, so only a backslash among the last 5 can be cut short:
    one that ends ``seg``, or one of a ``\\u`` escape (which is then shorter than 6 bytes).
    """
    n = len(seg)
    k = seg.rfind(b"\\", max(0, n - 5))
    if k < 0:
        return n
    if k == n - 1 or seg[k + 1] == 0x75:  # 0x75: "u"
        return k
    return n


def _byte_pos(raw: bytes, char_pos: int) -> int:
    """Turn orjson's character position in ``raw`` into a byte position."""
    head = raw.decode(errors="surrogateescape")[: max(char_pos, 0)]
    return min(len(head.encode(errors="surrogateescape")), len(raw))


class EnvelopeScanner:
    """An incremental scanner for one result envelope. Feed it the body; then finish it.

    Single use: after :meth:`finish` (or an error) it only repeats its outcome.
    """

    __slots__ = (
        "_cap",
        "_cap_depth",
        "_cap_esc",
        "_cap_in_str",
        "_cap_mode",
        "_cap_start",
        "_cap_target",
        "_carry",
        "_data_len",
        "_envelope",
        "_error",
        "_fields",
        "_held",
        "_index",
        "_key",
        "_level",
        "_max_held",
        "_max_results",
        "_max_value",
        "_pad",
        "_pending",
        "_rdata_len",
        "_rdata_seen",
        "_results",
        "_results_seen",
        "_rfields",
        "_seen",
        "_state",
    )

    def __init__(
        self,
        *,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        max_field_bytes: int = MAX_FIELD_BYTES,
        max_results: int = MAX_RESULTS,
    ) -> None:
        self._max_value = max_value_bytes
        self._max_held = max_field_bytes
        self._max_results = max_results
        self._held = 0  # raw bytes of every key and small value stored so far
        self._state = _S_DOC_START
        self._level = _L_TOP
        self._seen = 0  # bytes fed so far: the absolute offset of the next chunk
        self._error: DecodeError | None = None
        self._envelope: ScannedEnvelope | None = None  # set by a finish() that succeeded
        # The top level.
        self._fields: dict[str, Any] = {}
        self._results: list[ScannedResult] | None = None
        self._results_seen = False
        # CAPTURE: the raw bytes of the token so far (see _start_capture for the rest).
        self._cap = bytearray()
        # The other attributes (annotated on the class) are set when their part of the
        # body begins, and read only inside it.

    # The result object being scanned (level 2), set when it begins.
    _index: int  # its index in "results"
    _rfields: dict[str, Any]
    _rdata_len: int | None
    _rdata_seen: bool
    # The last key read, set by each key.
    _key: str
    # CAPTURE: how the token's end is found, what it becomes (set by _start_capture).
    _cap_mode: int
    _cap_target: int
    _cap_start: int
    _cap_depth: int  # open arrays/objects in a captured container
    _cap_in_str: bool  # inside a string in a captured container
    _cap_esc: bool  # the chunk ended right after a backslash in a string
    # DATA: see the invariants in the module docstring (set by _begin_data).
    _carry: bytes
    _pad: int
    _pending: bytes
    _data_len: int

    def __repr__(self) -> str:
        results = "-" if self._results is None else str(len(self._results))
        return (
            f"<EnvelopeScanner state={_STATE_NAMES[self._state]} "
            f"bytes_seen={self._seen} results={results}>"
        )

    @property
    def bytes_seen(self) -> int:
        """How many bytes were fed so far."""
        return self._seen

    # -- the public steps --------------------------------------------------------------

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[AudioPiece]:
        """Consume the next bytes of the body; return the audio they completed.

        The list holds the decoded audio not returned before, in order (possibly none).
        Raises :class:`DecodeError` with the absolute byte offset on invalid input, and
        again on every call after an error or after :meth:`finish`.
        """
        if self._error is not None:
            raise self._error
        if self._envelope is not None:
            raise DecodeError("the body already ended: feed() after finish()", offset=self._seen)
        # bytes(chunk) would give a bytes chunk itself too, but more slowly.
        buf = chunk if type(chunk) is bytes else bytes(chunk)
        base = self._seen
        self._seen = base + len(buf)
        out: list[AudioPiece] = []
        try:
            self._run(buf, base, out)
        except DecodeError as exc:
            self._fail(exc)
        return out

    def finish(self) -> ScannedEnvelope:
        """The body ended: return the envelope, or raise if it was cut short or followed
        by anything but whitespace."""
        if self._error is not None:
            raise self._error
        if self._envelope is not None:
            return self._envelope
        if self._state != _S_DOC_END:
            where = "empty body" if self._seen == 0 else self._where()
            self._fail(DecodeError(f"the body ended early: {where}", offset=self._seen))
        results = None if self._results is None else tuple(self._results)
        self._envelope = ScannedEnvelope(self._fields, results)
        return self._envelope

    def _fail(self, exc: DecodeError) -> NoReturn:
        self._state = _S_FAILED
        self._error = exc
        raise exc

    def _where(self) -> str:
        state = self._state
        if state == _S_DATA:
            return f"inside {self._path('data')}"
        if state == _S_CAPTURE:
            what = "a key" if self._cap_target == _T_KEY else self._path(self._key)
            return f"inside {what}"
        return f"unfinished JSON ({_STATE_NAMES[state]})"

    def _path(self, key: str) -> str:
        """How a message names the value of ``key`` in the current object (level 0 or 2)."""
        if self._level == _L_TOP:
            return repr(key)
        return f"results[{self._index}].{key}"

    # -- the state machine -------------------------------------------------------------

    def _run(self, buf: bytes, base: int, out: list[AudioPiece]) -> None:
        """Consume ``buf``, whose first byte is at absolute offset ``base``."""
        i = 0
        n = len(buf)
        while i < n:
            state = self._state
            if state == _S_DATA:
                i = self._data(buf, i, base, out)
                continue
            if state == _S_CAPTURE:
                i = self._capture(buf, i, base)
                continue
            c = buf[i]
            if c in _WS:
                m = _NOT_WS.search(buf, i)
                if m is None:
                    return
                i = m.start()
                c = buf[i]
            off = base + i
            if state == _S_VALUE:
                i = self._value(buf, i, off)
                continue
            if state == _S_AFTER:
                if c == 0x7D and self._level == _L_RESULT:  # "}" closing a result
                    m = _RESULT_TAIL.match(buf, i)
                    if m is not None and self._fast_tail(m):
                        i = m.end()
                        continue
                self._after(c, off)
            elif state == _S_COLON:
                if c != 0x3A:  # ":"
                    raise DecodeError(f"expected ':' after a key, found {_show(c)}", offset=off)
                self._state = _S_VALUE
            elif state in (_S_OBJ_OPEN, _S_OBJ_KEY):
                if c == _QUOTE:
                    m = _PLAIN_MEMBER.match(buf, i)
                    if m is not None and self._plain_member(m):
                        i = m.end()
                        continue
                    i = self._token(buf, i, off, _M_STRING, _T_KEY)
                    continue
                if c == 0x7D and state == _S_OBJ_OPEN:  # "}"
                    self._close_object()
                else:
                    want = "a key or '}'" if state == _S_OBJ_OPEN else "a key after ','"
                    raise DecodeError(f"expected {want}, found {_show(c)}", offset=off)
            elif state in (_S_ARR_OPEN, _S_ARR_ITEM):
                # Inside "results", which is a list (the invariant of levels 1 and 2).
                assert self._results is not None
                if c == 0x7B:  # "{"
                    if len(self._results) >= self._max_results:
                        raise DecodeError(
                            f"'results' has more than {self._max_results} elements "
                            "(MAX_RESULTS); the real API sends one",
                            offset=off,
                        )
                    self._level = _L_RESULT
                    self._index = len(self._results)
                    self._rfields = {}
                    self._rdata_len = None
                    self._rdata_seen = False
                    self._state = _S_OBJ_OPEN
                elif c == 0x5D and state == _S_ARR_OPEN:  # "]"
                    self._level = _L_TOP
                    self._state = _S_AFTER
                else:
                    raise DecodeError(
                        f"results[{len(self._results)}] must be an object, found {_show(c)}",
                        offset=off,
                    )
            elif state == _S_DOC_START:
                if c != 0x7B:
                    raise DecodeError(
                        f"the body must be a JSON object, found {_show(c)}", offset=off
                    )
                m = _HEAD.match(buf, i)
                if m is not None and self._fast_head(m):
                    i = m.end()
                    continue
                self._state = _S_OBJ_OPEN
            else:  # DOC_END (never FAILED: feed() raises first)
                raise DecodeError(
                    f"unexpected {_show(c)} after the end of the JSON document", offset=off
                )
            i += 1

    def _members(self, raw: bytes) -> tuple[dict[str, Any], int] | None:
        """The plain members ``raw`` holds (``_HEAD_MEMBER``), and the bytes they count
        toward ``max_field_bytes``, as the general path counts them; ``None`` if one of them
        passes ``max_value_bytes`` (the general path must read them). ``_MEMBER`` names
        neither ``results`` nor ``data``, so no member here is one of those."""
        found = _HEAD_MEMBER.findall(raw)  # (key, text, b"null" or b"") each
        # A key or value counts its quotes, ``null`` 4 bytes: len(key) + len(text) + 4 for
        # a member with a string, len(key) + 6 for one with null.
        held = 0
        for raw_key, raw_text, null in found:
            held += len(raw_key) + len(raw_text) + (6 if null else 4)
        if len(raw) > self._max_value:
            # Rare: a member may be longer than a value may be; each one is checked.
            limit = self._max_value
            for raw_key, raw_text, null in found:
                if len(raw_key) + 2 > limit or (4 if null else len(raw_text) + 2) > limit:
                    return None
        # Each key and value lies within ``raw``, quotes included: when ``raw`` is within
        # ``max_value_bytes``, so is each of them.
        fields = {
            raw_key.decode(): None if null else raw_text.decode()
            for raw_key, raw_text, null in found
        }
        return fields, held

    def _fast_head(self, m: re.Match[bytes]) -> bool:
        """Take the head that ``_HEAD`` matched in one step, leaving the scanner just as the
        general path would at the first byte of ``results[0].data``. False, having changed
        nothing, if the general path must read it (a cap reached)."""
        top = self._members(m.group(1))
        inner = self._members(m.group(2))
        # The key "results" (9 bytes, quotes included) meets max_value_bytes as any key.
        if top is None or inner is None or self._max_results < 1 or self._max_value < 9:
            return False
        held = self._held + top[1] + inner[1] + 15  # and the keys "results" (9), "data" (6)
        if held > self._max_held:
            return False
        self._held = held
        self._fields.update(top[0])
        self._results = []
        self._results_seen = True
        self._level = _L_RESULT
        self._index = 0
        self._rfields = inner[0]
        self._rdata_seen = True
        self._begin_data()  # _data_end sets _rdata_len
        return True

    def _fast_tail(self, m: re.Match[bytes]) -> bool:
        """Take the tail that ``_RESULT_TAIL`` matched (the result and ``results`` closed, plain
        members, the final ``}``) in one step; False, having changed nothing, if the general
        path must read it."""
        tail = self._members(m.group(1))
        if tail is None or self._held + tail[1] > self._max_held:
            return False
        assert self._results is not None  # at level 2, as in _close_object
        self._results.append(ScannedResult(self._rfields, self._rdata_len))
        self._fields.update(tail[0])
        # The document ended: nothing reads the level or _held again.
        self._state = _S_DOC_END
        return True

    def _plain_member(self, m: re.Match[bytes]) -> bool:
        """Store a member that ``_PLAIN_MEMBER`` matched whole, and move past its ``,`` or
        ``}``: what the general path does for it, in one step. False, having changed
        nothing, if a cap would be passed (the general path then raises its error)."""
        raw_key, raw_text, closer = m.group(1, 2, 3)
        key_size = len(raw_key) + 2
        value_size = 4 if raw_text is None else len(raw_text) + 2
        held = self._held + key_size + value_size
        if max(key_size, value_size) > self._max_value or held > self._max_held:
            return False
        self._held = held
        key = self._key = raw_key.decode()
        value = None if raw_text is None else raw_text.decode()
        if self._level == _L_TOP:
            self._fields[key] = value  # a repeated key: the last wins, as in orjson
        else:
            self._rfields[key] = value
        if closer == b",":
            self._state = _S_OBJ_KEY
        else:
            self._close_object()
        return True

    def _value(self, buf: bytes, i: int, off: int) -> int:
        """The value starting at ``buf[i]`` (absolute ``off``), for the key ``self._key``;
        returns where the scan goes on."""
        c = buf[i]
        level = self._level
        if level == _L_TOP and self._key == "results":
            if c == 0x5B:  # "["
                self._results = []
                self._level = _L_RESULTS
                self._state = _S_ARR_OPEN
                return i + 1
            if c == 0x6E:  # "n": must be null
                return self._token(buf, i, off, _M_SCALAR, _T_NULL)
            raise DecodeError(f"'results' must be an array or null, found {_show(c)}", offset=off)
        if level == _L_RESULT and self._key == "data":
            if c == _QUOTE:
                self._begin_data()
                return i + 1
            if c == 0x6E:
                return self._token(buf, i, off, _M_SCALAR, _T_NULL)
            raise DecodeError(
                f"{self._path('data')} must be a string or null, found {_show(c)}", offset=off
            )
        if c == _QUOTE:
            return self._token(buf, i, off, _M_STRING, _T_FIELD)
        if c in (0x7B, 0x5B):  # "{" or "["
            # At most 4 levels deep so far: _check_depth needs to see only what it opens.
            self._start_capture(_M_CONTAINER, _T_FIELD, off, buf[i : i + 1])
            return i + 1
        if c in b",:]}":
            raise DecodeError(
                f"expected a value for {self._path(self._key)}, found {_show(c)}", offset=off
            )
        return self._token(buf, i, off, _M_SCALAR, _T_FIELD)

    def _token(self, buf: bytes, i: int, off: int, mode: int, target: int) -> int:
        """A string or a scalar starting at ``buf[i]``; returns where the scan goes on.

        The common case, a token that ends within this chunk (a string without escapes),
        is parsed straight from the chunk; any other is captured across chunks.
        """
        if mode == _M_STRING:
            m = _STRING_SPECIAL.search(buf, i + 1)
            if m is not None and buf[m.start()] == _QUOTE:
                end = m.start() + 1
                self._store(buf[i:end], off, target)
                return end
            self._start_capture(mode, target, off, b'"')
            return i + 1
        m = _SCALAR_END.search(buf, i)
        if m is not None:
            end = m.start()
            self._store(buf[i:end], off, target)
            return end
        # A scalar's first byte is left for the capture loop: it may also be its last.
        self._start_capture(mode, target, off, b"")
        return i

    def _after(self, c: int, off: int) -> None:
        """The byte after a value: a comma or the closer of the current level."""
        level = self._level
        if c == 0x2C:  # ","
            self._state = _S_ARR_ITEM if level == _L_RESULTS else _S_OBJ_KEY
        elif c == 0x7D and level != _L_RESULTS:  # "}"
            self._close_object()
        elif c == 0x5D and level == _L_RESULTS:  # "]"
            self._level = _L_TOP
            self._state = _S_AFTER
        else:
            want = "']'" if level == _L_RESULTS else "'}'"
            raise DecodeError(f"expected ',' or {want}, found {_show(c)}", offset=off)

    def _close_object(self) -> None:
        if self._level == _L_TOP:
            self._state = _S_DOC_END
            return
        # A result object ends; the invariant _results is not None holds at level 2.
        assert self._results is not None
        self._results.append(ScannedResult(self._rfields, self._rdata_len))
        self._level = _L_RESULTS
        self._state = _S_AFTER

    # -- capture of keys and small values ----------------------------------------------

    def _start_capture(self, mode: int, target: int, off: int, opening: bytes) -> None:
        """Begin capturing a token that starts at ``off`` with ``opening``, the bytes
        consumed already: a string's quote, a container's bracket, nothing of a scalar."""
        self._cap[:] = opening
        self._cap_mode = mode
        self._cap_target = target
        self._cap_start = off
        self._cap_depth = 1  # a container's opening bracket (the other modes ignore it)
        self._cap_in_str = False
        self._cap_esc = False
        self._state = _S_CAPTURE

    def _check_depth(self, off: int) -> None:
        outer = 1 if self._level == _L_TOP else 3
        if outer + self._cap_depth > _MAX_DEPTH:
            raise DecodeError(
                f"{self._path(self._key)} is nested deeper than {_MAX_DEPTH} levels", offset=off
            )

    def _too_much(self, start: int) -> NoReturn:
        raise DecodeError(
            f"the answer holds more than {self._max_held} bytes of JSON besides the audio "
            "(MAX_FIELD_BYTES); the real API sends a few hundred",
            offset=start,
        )

    def _append(self, buf: bytes, start: int, end: int) -> None:
        size = len(self._cap) + (end - start)
        if self._held + size > self._max_held:
            self._too_much(self._cap_start)
        if size > self._max_value:
            what = "a key" if self._cap_target == _T_KEY else self._path(self._key)
            raise DecodeError(
                f"{what} is longer than {self._max_value} bytes", offset=self._cap_start
            )
        self._cap += buf[start:end]

    def _scan_string(self, buf: bytes, i: int) -> int | None:
        """Skip string content from ``i``: the index after the closing quote, or ``None``
        if the string goes on past ``buf``."""
        if self._cap_esc:
            # The previous chunk ended right after a backslash: this byte is escaped.
            self._cap_esc = False
            i += 1
        n = len(buf)
        while True:  # past the end, the search finds nothing
            m = _STRING_SPECIAL.search(buf, i)
            if m is None:
                return None
            j = m.start()
            if buf[j] == _QUOTE:
                return j + 1
            if j + 1 >= n:
                self._cap_esc = True
                return None
            i = j + 2

    def _capture(self, buf: bytes, i: int, base: int) -> int:
        """Continue the capture at ``buf[i]``; return where the scan goes on."""
        n = len(buf)
        mode = self._cap_mode
        if mode == _M_SCALAR:
            m = _SCALAR_END.search(buf, i)
            end = n if m is None else m.start()
            self._append(buf, i, end)
            if m is None:
                return n
            self._complete()
            return end
        if mode == _M_STRING:
            close = self._scan_string(buf, i)
            if close is None:
                self._append(buf, i, n)
                return n
            self._append(buf, i, close)
            self._complete()
            return close
        # A container: track strings and nesting until the opening bracket is closed.
        start = i
        while True:  # past the end, the searches find nothing
            if self._cap_in_str:
                close = self._scan_string(buf, i)
                if close is None:
                    break
                self._cap_in_str = False
                i = close
                continue
            m = _CONTAINER_SPECIAL.search(buf, i)
            if m is None:
                break
            j = m.start()
            c = buf[j]
            i = j + 1
            if c == _QUOTE:
                self._cap_in_str = True
            elif c in (0x5B, 0x7B):
                self._cap_depth += 1
                self._check_depth(base + j)
            else:
                self._cap_depth -= 1
                if self._cap_depth == 0:
                    self._append(buf, start, i)
                    self._complete()
                    return i
        self._append(buf, start, n)
        return n

    def _complete(self) -> None:
        """The captured token is complete: parse it and store it."""
        raw = bytes(self._cap)
        self._cap.clear()
        self._store(raw, self._cap_start, self._cap_target)

    def _store(self, raw: bytes, start: int, target: int) -> None:
        """Parse the token ``raw``, found at ``start``, with orjson and store it."""
        if len(raw) > self._max_value:
            what = "a key" if target == _T_KEY else self._path(self._key)
            raise DecodeError(f"{what} is longer than {self._max_value} bytes", offset=start)
        self._held += len(raw)
        if self._held > self._max_held:
            self._too_much(start)
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            what = "key" if target == _T_KEY else self._path(self._key)
            raise DecodeError(
                f"invalid JSON in {what}: {exc.msg}", offset=start + _byte_pos(raw, exc.pos)
            ) from None
        if target == _T_KEY:
            self._set_key(value, start)
            self._state = _S_COLON
            return
        self._state = _S_AFTER
        # A _T_NULL token starts with "n", which orjson reads as null or refuses.
        if target == _T_FIELD:
            if self._level == _L_TOP:
                self._fields[self._key] = value  # a repeated key: the last wins, as in orjson
            else:
                self._rfields[self._key] = value

    def _set_key(self, key: str, off: int) -> None:
        self._key = key
        if self._level == _L_TOP:
            if key == "results":
                if self._results_seen:
                    raise DecodeError("the key 'results' appears twice", offset=off)
                self._results_seen = True
        elif key == "data":
            if self._rdata_seen:
                raise DecodeError(f"{self._path('data')} appears twice", offset=off)
            self._rdata_seen = True

    # -- the data string ---------------------------------------------------------------

    def _begin_data(self) -> None:
        """The data string's opening quote was read."""
        self._carry = b""
        self._pad = 0
        self._pending = b""
        self._data_len = 0
        self._state = _S_DATA

    def _data(self, buf: bytes, i: int, base: int, out: list[AudioPiece]) -> int:
        """Consume data-string content from ``buf[i]``; return where the scan goes on."""
        n = len(buf)
        # Optimistic, and no search of the chunk: if the first quote in the chunk's last
        # bytes is at ``tail`` (or there is none), try to decode up to there (``stop``). A
        # run that decodes holds no quote and no backslash, so ``tail`` is the closing
        # quote (or the string goes on past the chunk). An escape cut by the last chunk
        # (``_pending``) only the slow path joins up.
        tail = buf.find(b'"', max(i, n - _TAIL))
        stop = n if tail < 0 else tail
        fast = not self._pending
        if fast and self._data_raw(buf, i, stop, out):
            return n if tail < 0 else self._data_end(tail, base)
        q = buf.find(b'"', i)
        end = n if q < 0 else q
        # The run up to the first quote gets the fast path too, unless it was just refused.
        if not (fast and end != stop and self._data_raw(buf, i, end, out)):
            self._data_slow(buf, i, end, base, out)
        return end if q < 0 else self._data_end(q, base)

    def _data_end(self, q: int, base: int) -> int:
        """The data string's closing quote is at ``q``: check the string ended whole."""
        # The closing quote (a quote right after a cut escape belongs to that escape).
        if self._pending:
            raise DecodeError(
                f"{self._path('data')}: an escape that is not a Base64 character",
                offset=base + q - len(self._pending),
            )
        if self._carry or self._pad == 1:
            raise DecodeError(
                f"{self._path('data')}: Base64 length is not a multiple of 4", offset=base + q
            )
        self._rdata_len = self._data_len
        self._state = _S_AFTER
        return q + 1

    def _data_raw(self, buf: bytes, i: int, end: int, out: list[AudioPiece]) -> bool:
        """The fast path: decode ``buf[i:end]`` if it holds no escape and no error.

        Returns False, having changed nothing, if anything is unusual; the slow path then
        takes the same run from the same state.
        """
        if i == end:
            return True
        pad = self._pad
        carry = self._carry
        p = i
        first = b""
        if carry:
            need = 4 - len(carry)
            if end - p < need:
                # So ``need`` is 2 or 3, and the carry holds no "=" yet (pad is 0).
                tail = buf[p:end]
                after = _b64_check(tail, len(carry), 0)
                if after is None:
                    return False
                self._carry = carry + tail
                self._pad = after
                return True
            quad = carry + buf[p : p + need]
            try:
                # binascii's strict mode is pybase64's validate=True, and cheaper on 4 bytes.
                first = binascii.a2b_base64(quad, strict_mode=True)
            except ValueError:
                return False
            p += need
            if quad[3] == _EQ:
                pad = 2
        m = (end - p) & ~3
        body = b""
        if m:
            if pad == 2:
                return False
            try:
                # A memoryview slice: the run is decoded where it lies, without a copy.
                body = pybase64.b64decode(memoryview(buf)[p : p + m], validate=True)
            except ValueError:
                return False
            p += m
            if buf[p - 1] == _EQ:
                pad = 2
        tail = buf[p:end]
        if tail:
            after = _b64_check(tail, 0, pad)
            if after is None:
                return False
            pad = after
        # Nothing can fail from here on: commit.
        self._carry = tail
        self._pad = pad
        if first:
            out.append(AudioPiece(self._index, first))
        if body:
            out.append(AudioPiece(self._index, body))
        self._data_len += len(first) + len(body)
        return True

    def _data_slow(self, buf: bytes, i: int, end: int, base: int, out: list[AudioPiece]) -> None:
        """The slow path: a run with escapes, an escape cut by a chunk boundary, or an
        error. Linear in the run; raises DecodeError at the exact offset of an error.

        The run is unescaped in windows of ``_WINDOW`` bytes, so that the copies made on
        the way (orjson's scratch space is about 13 times its input) stay small whatever
        the chunk size; the windows' audio leaves as one piece.
        """
        parts: list[AudioPiece] = []
        for a in range(i, end, _WINDOW):
            b = min(a + _WINDOW, end)
            pending = self._pending
            seg = pending + buf[a:b]
            cut = _escape_cut(seg)
            text = _unescape_fast(seg[:cut])
            if text is None or not self._data_raw(text, 0, len(text), parts):
                self._raise_first_error(seg, base + a - len(pending))
            self._pending = seg[cut:]
        if parts:
            out.append(AudioPiece(self._index, b"".join([p.data for p in parts])))

    def _raise_first_error(self, seg: bytes, seg_off: int) -> NoReturn:
        """Walk ``seg``, a window the slow path refused, one character at a time, checking
        JSON escapes and Base64 as they come, and raise DecodeError at the first wrong byte.

        The walk accepts exactly what orjson and the strict decoder accept together, one
        character at a time, so a window they refuse holds a wrong byte before its end
        and before any escape that ``_escape_cut`` cut off: the walk always raises there.
        """
        what = self._path("data")
        qpos = len(self._carry)
        pad = self._pad
        n = len(seg)
        j = 0
        while j < n:
            byte = seg[j]
            width = 1
            if byte == _BACKSLASH:
                kind = seg[j + 1 : j + 2]  # empty past the end, where the walk never gets
                if kind == b"u":
                    digits = seg[j + 2 : j + 6]
                    if len(digits) < 4 or not _HEX.issuperset(digits):
                        raise DecodeError(f"{what}: invalid \\u escape", offset=seg_off + j)
                    byte = int(digits, 16)
                    width = 6
                elif kind in _SHORT_ESCAPES:
                    byte = _SHORT_ESCAPES[kind]
                    width = 2
                else:
                    raise DecodeError(f"{what}: invalid escape", offset=seg_off + j)
            step = _b64_step(byte, qpos, pad)
            if step is None:
                if byte == _EQ or byte in _B64:
                    problem = "Base64 padding '=' is allowed only at the end"
                elif width == 1:
                    problem = f"{_show(byte)} is not a Base64 character"
                else:
                    problem = "an escape that is not a Base64 character"
                raise DecodeError(f"{what}: {problem}", offset=seg_off + j)
            qpos = (qpos + 1) & 3
            pad = step
            j += width
        # Unreachable (see above): a window the walk accepts, the slow path accepted.
        raise AssertionError("no error found in a refused window")  # pragma: no cover, no mutate


def scan_body(body: bytes) -> tuple[ScannedEnvelope, list[bytes]]:
    """Scan a whole body at once: the envelope and the decoded audio of each result.

    For small bodies and tests; a result body is best streamed through the scanner.
    """
    scanner = EnvelopeScanner()
    audio: dict[int, bytearray] = {}
    for piece in scanner.feed(body):
        audio.setdefault(piece.index, bytearray()).extend(piece.data)
    envelope = scanner.finish()
    count = 0 if envelope.results is None else len(envelope.results)
    return envelope, [bytes(audio.get(i, b"")) for i in range(count)]
