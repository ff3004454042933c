"""The emulator's two knob sets: :class:`EmulatorConfig` (fixed for a run) and :class:`Faults`.

Both are frozen, slotted dataclasses validated in ``__post_init__``: an instance that exists
is a valid one, so the server never re-checks a knob per request. ``Faults`` may be replaced
while the emulator runs (``Emulator.set_faults``, ``PUT /_emulator/faults``); the config may
not, because tasks already created depend on it.

Every "share" is a probability in ``[0, 1]``, drawn per request from the emulator's seeded
random generator, so a run is reproducible given its seed and its sequence of requests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, TypeAlias

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "Duration",
    "EmulatorConfig",
    "Faults",
]

DEFAULT_CLIENT_ID = "aiotts-emulator"
"""The client id the emulator accepts unless configured otherwise (a fake, not a secret)."""

DEFAULT_CLIENT_SECRET = "emulator-secret"
"""The client secret paired with :data:`DEFAULT_CLIENT_ID`."""

Duration: TypeAlias = float | tuple[float, float]
"""Seconds: a fixed value, or ``(low, high)`` drawn uniformly per task from the seeded RNG."""

MiB = 1024 * 1024


def _check_share(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a share between 0 and 1, got {value!r}")


def _check_seconds(name: str, value: float, *, positive: bool = False) -> None:
    ok = isinstance(value, int | float) and math.isfinite(value) and value >= 0
    if not ok or (positive and value <= 0):
        kind = "positive" if positive else "non-negative"
        raise ValueError(f"{name} must be a {kind} number of seconds, got {value!r}")


def _check_int(name: str, value: int, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_duration(name: str, value: Duration) -> Duration:
    """Validate a :data:`Duration` and return it normalised (a list becomes a tuple)."""
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ValueError(f"{name} must be seconds or a (low, high) pair, got {value!r}")
        low, high = value
        _check_seconds(name, low)
        _check_seconds(name, high)
        if low > high:
            raise ValueError(f"{name}: low {low} is above high {high}")
        return (float(low), float(high))
    _check_seconds(name, value)
    return float(value)


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """How the emulated service behaves; fixed for the emulator's life.

    With ``queue_workers > 0`` the queue model replaces ``pending_seconds`` and
    ``processing_seconds`` for tasks created without explicit durations (see ``_queue``).

    Invariants (checked on construction): every duration is finite and non-negative, every
    share is in ``[0, 1]``, ``credentials`` is a non-empty read-only mapping of non-empty
    strings, and ``audio_bytes`` is ``None`` or large enough to hold the WAV header and one
    sample.
    """

    credentials: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET}),
        hash=False,
        metadata={"help": "accepted client id -> secret"},
    )
    token_lifetime: float = field(default=3600.0, metadata={"help": "token lifetime, seconds"})
    token_failure_limit: int = field(
        default=5, metadata={"help": "failed token requests per credential pair before 429"}
    )
    token_lockout: float = field(
        default=600.0, metadata={"help": "seconds a credential pair stays locked out"}
    )
    pending_seconds: Duration = field(
        default=0.2, metadata={"help": "seconds a new task stays Pending"}
    )
    processing_seconds: Duration = field(
        default=0.3, metadata={"help": "seconds a task then stays Processing"}
    )
    queue_workers: int = field(
        default=0,
        metadata={
            "help": "workers of the queue model: tasks wait in one FIFO queue (Pending), then "
            "are served (Processing); 0 = off, pending/processing seconds apply"
        },
    )
    service_base_seconds: float = field(
        default=0.1, metadata={"help": "queue model: seconds to serve any task"}
    )
    service_seconds_per_char: float = field(
        default=0.002, metadata={"help": "queue model: seconds added per character of text"}
    )
    service_noise: float = field(
        default=0.2,
        metadata={"help": "queue model: sigma of the lognormal factor (mean 1) on service time"},
    )
    error_share: float = field(
        default=0.0, metadata={"help": "share of tasks that end in Error instead of Completed"}
    )
    error_messages: tuple[str, ...] = field(
        default=("Text-to-speech conversion failed.",),
        metadata={"help": "messages an Error task reports"},
    )
    retention: float = field(
        default=86400.0, metadata={"help": "seconds after creation before a task is NotExist"}
    )
    trial_max_chars: int = field(
        default=500, metadata={"help": "longest text the trial endpoint accepts"}
    )
    trial_daily_limit: int = field(
        default=10, metadata={"help": "trial submits per client address per day"}
    )
    audio_bytes: int | None = field(
        default=None,
        metadata={"help": "make every WAV exactly this many bytes (repeat or cut the audio)"},
    )
    seed: int = field(default=0, metadata={"help": "seed of every random choice"})
    cache_bytes: int = field(
        default=512 * MiB, metadata={"help": "memory bound of the encoded-audio cache, bytes"}
    )
    chunk_bytes: int = field(
        default=256 * 1024, metadata={"help": "size of the writes of a large body, bytes"}
    )

    def __post_init__(self) -> None:
        creds = dict(self.credentials)
        if not creds:
            raise ValueError("credentials must hold at least one client id")
        for key, value in creds.items():
            if not (isinstance(key, str) and key and isinstance(value, str) and value):
                raise ValueError("credentials must map non-empty client ids to non-empty secrets")
        # A read-only copy: the caller's dict can change later without changing the emulator.
        object.__setattr__(self, "credentials", MappingProxyType(creds))
        _check_seconds("token_lifetime", self.token_lifetime, positive=True)
        _check_int("token_failure_limit", self.token_failure_limit, minimum=0)
        _check_seconds("token_lockout", self.token_lockout)
        for name in ("pending_seconds", "processing_seconds"):
            object.__setattr__(self, name, check_duration(name, getattr(self, name)))
        _check_int("queue_workers", self.queue_workers, minimum=0)
        _check_seconds("service_base_seconds", self.service_base_seconds)
        _check_seconds("service_seconds_per_char", self.service_seconds_per_char)
        if not (
            isinstance(self.service_noise, int | float)
            and not isinstance(self.service_noise, bool)
            and 0.0 <= self.service_noise <= 5.0
        ):
            raise ValueError(
                f"service_noise must be a sigma between 0 and 5, got {self.service_noise!r}"
            )
        _check_share("error_share", self.error_share)
        messages = tuple(self.error_messages)
        if not messages or not all(isinstance(m, str) for m in messages):
            raise ValueError("error_messages must be a non-empty sequence of strings")
        object.__setattr__(self, "error_messages", messages)
        _check_seconds("retention", self.retention)
        _check_int("trial_max_chars", self.trial_max_chars, minimum=1)
        _check_int("trial_daily_limit", self.trial_daily_limit, minimum=0)
        if self.audio_bytes is not None:
            _check_int("audio_bytes", self.audio_bytes, minimum=47)
        _check_int("seed", self.seed, minimum=-(2**63))
        _check_int("cache_bytes", self.cache_bytes, minimum=0)
        _check_int("chunk_bytes", self.chunk_bytes, minimum=1)


@dataclass(frozen=True, slots=True)
class Faults:
    """What goes wrong, and how often; replaceable while the emulator runs.

    Transient faults (``latency``, ``server_error_share``, ``rate_limit_share``) apply to every
    vendor endpoint, token included, and are decided before the request is processed: a
    submit answered 503 created no task. Body faults (cut, trickle, encodings) and bad answers
    apply to result fetches; the envelope-level bad answers (non-JSON, HTML, truncated JSON,
    unknown status, wrong content type) also apply to ``GetTaskStatus``. ``result_data_lost``
    is a bad answer of a ``Completed`` fetch (``Completed``, ``ResultDataLost``, results
    null). Notes (``notes_share``: ``error.messages`` and ``error.warnings`` on a
    ``Completed`` answer, fetch or status) and null or empty ids (``null_id_share``, on
    ``NotExist`` answers) are drawn on their own, on top of any other fault. At most one bad
    answer is chosen per response, so the bad-answer shares must sum to at most 1; so must
    ``server_error_share + rate_limit_share``.
    """

    latency: float = field(default=0.0, metadata={"help": "seconds added to every request"})
    server_error_share: float = field(
        default=0.0, metadata={"help": "share of requests answered with a 5xx"}
    )
    server_error_statuses: tuple[int, ...] = field(
        default=(500, 502, 503), metadata={"help": "the 5xx statuses to pick from"}
    )
    rate_limit_share: float = field(
        default=0.0, metadata={"help": "share of requests answered 429 with Retry-After"}
    )
    retry_after: float = field(
        default=1.0, metadata={"help": "Retry-After of a fault 429, seconds"}
    )
    retry_after_http_date: bool = field(
        default=False, metadata={"help": "send every Retry-After as an HTTP date"}
    )
    cut_share: float = field(
        default=0.0, metadata={"help": "share of result bodies cut off mid-stream"}
    )
    cut_at: float = field(
        default=0.5, metadata={"help": "fraction of a cut body sent before the drop"}
    )
    trickle_share: float = field(
        default=0.0, metadata={"help": "share of result bodies sent slowly"}
    )
    trickle_chunk_bytes: int = field(
        default=1024, metadata={"help": "bytes per write of a trickled body"}
    )
    trickle_delay: float = field(
        default=0.01, metadata={"help": "seconds between writes of a trickled body"}
    )
    reorder_keys_share: float = field(
        default=0.0, metadata={"help": "share of envelopes with their keys in another order"}
    )
    pretty_share: float = field(default=0.0, metadata={"help": "share of envelopes pretty-printed"})
    escape_share: float = field(
        default=0.0, metadata={"help": "share of Base64 bodies with escaped / and +"}
    )
    non_json_share: float = field(
        default=0.0, metadata={"help": "share of fetches answered 200 with a non-JSON body"}
    )
    html_share: float = field(
        default=0.0, metadata={"help": "share of fetches answered 200 with an HTML error page"}
    )
    truncated_json_share: float = field(
        default=0.0, metadata={"help": "share of fetches whose JSON is cut (HTTP-complete)"}
    )
    bad_base64_share: float = field(
        default=0.0, metadata={"help": "share of Completed fetches with invalid Base64"}
    )
    bad_wav_header_share: float = field(
        default=0.0, metadata={"help": "share of Completed fetches whose WAV sizes disagree"}
    )
    missing_results_share: float = field(
        default=0.0, metadata={"help": "share of Completed fetches with results null or []"}
    )
    unknown_status_share: float = field(
        default=0.0, metadata={"help": "share of fetches with an unknown taskStatus"}
    )
    wrong_content_type_share: float = field(
        default=0.0, metadata={"help": "share of fetches with a good body sent as text/plain"}
    )
    always_401: bool = field(
        default=False, metadata={"help": "answer 401 to every authorised call, valid or not"}
    )
    result_data_lost_share: float = field(
        default=0.0,
        metadata={
            "help": "share of Completed fetches answered Completed + ResultDataLost, results null"
        },
    )
    notes_share: float = field(
        default=0.0,
        metadata={
            "help": "share of Completed answers whose error object carries the note messages "
            "and warnings (the conversion still succeeded)"
        },
    )
    note_messages: tuple[str, ...] = field(
        default=("Emulated note: the text was normalised before conversion.",),
        metadata={"help": "error.messages of an answer with notes"},
    )
    note_warnings: tuple[str, ...] = field(
        default=("Emulated warning: some characters were not spoken.",),
        metadata={"help": "error.warnings of an answer with notes"},
    )
    null_id_share: float = field(
        default=0.0,
        metadata={"help": "share of NotExist answers whose id is null or empty (half each)"},
    )

    def __post_init__(self) -> None:
        for name in ("retry_after_http_date", "always_401"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        _check_seconds("latency", self.latency)
        _check_seconds("retry_after", self.retry_after)
        _check_seconds("trickle_delay", self.trickle_delay)
        _check_int("trickle_chunk_bytes", self.trickle_chunk_bytes, minimum=1)
        if not 0.0 <= self.cut_at < 1.0:
            raise ValueError(f"cut_at must be in [0, 1), got {self.cut_at!r}")
        statuses = tuple(self.server_error_statuses)
        if not statuses or not all(
            isinstance(s, int) and not isinstance(s, bool) and 500 <= s <= 599 for s in statuses
        ):
            raise ValueError(f"server_error_statuses must be 5xx codes, got {statuses!r}")
        object.__setattr__(self, "server_error_statuses", statuses)
        for name in ("note_messages", "note_warnings"):
            texts = tuple(getattr(self, name))
            if not all(isinstance(text, str) for text in texts):
                raise ValueError(f"{name} must be a sequence of strings, got {texts!r}")
            object.__setattr__(self, name, texts)
        for f in fields(self):
            if f.name.endswith("_share"):
                _check_share(f.name, getattr(self, f.name))
        if self.server_error_share + self.rate_limit_share > 1.0:
            raise ValueError("server_error_share + rate_limit_share must not exceed 1")
        if sum(share for _, share in self.bad_answer_shares()) > 1.0:
            raise ValueError("the bad-answer shares must not sum to more than 1")

    def bad_answer_shares(self) -> tuple[tuple[str, float], ...]:
        """The bad-answer kinds with their shares, in a fixed order (the draw depends on it)."""
        return (
            ("non_json", self.non_json_share),
            ("html", self.html_share),
            ("truncated_json", self.truncated_json_share),
            ("bad_base64", self.bad_base64_share),
            ("bad_wav_header", self.bad_wav_header_share),
            ("missing_results", self.missing_results_share),
            ("unknown_status", self.unknown_status_share),
            ("wrong_content_type", self.wrong_content_type_share),
            ("result_data_lost", self.result_data_lost_share),
        )

    @property
    def any_transient(self) -> bool:
        """True if a request may be delayed or refused before processing (the slow path)."""
        return bool(self.latency or self.server_error_share or self.rate_limit_share)

    @property
    def any_body(self) -> bool:
        """True if a result response may deviate from the plain, fast path."""
        return any(
            getattr(self, f.name)
            for f in fields(self)
            if f.name.endswith("_share")
            and f.name not in ("server_error_share", "rate_limit_share")
        )

    def to_json(self) -> dict[str, Any]:
        """The knobs as a JSON-ready dict (the shape ``PUT /_emulator/faults`` takes)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Faults:
        """Build from a dict of knob names; missing knobs take their defaults."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown fault knobs: {', '.join(unknown)}")
        kwargs = dict(data)
        for name in ("server_error_statuses", "note_messages", "note_warnings"):
            if name in kwargs:
                kwargs[name] = tuple(kwargs[name])
        return cls(**kwargs)


def config_to_json(config: EmulatorConfig) -> dict[str, Any]:
    """The config as a JSON-ready dict; secrets are left out (only client ids are shown)."""
    out: dict[str, Any] = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if f.name == "credentials":
            out["client_ids"] = sorted(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out
