"""``TTSClient``: the one object a user holds.

Lifecycle: ``async with TTSClient(...) as client:`` opens one aiohttp session (inside the
running loop); each batch runs in a task the client keeps; leaving the block cancels any
batch or synthesis still running, ends every call still running (``ClientClosedError``),
waits for their clean-up, and closes the session exactly once (unless it was given in:
aiotts closes only what it opened). Opening and closing may happen in different tasks (a web
app's start-up and clean-up hooks). A client is used once: reopening a closed one is
refused.

``client.with_options(...)`` makes a view: another ``TTSClient`` with other timeouts,
retry or poll policy that shares everything else with the client it came from (the
session, the token, the rate limiter, the one scheduler, the running batches and
syntheses, the lifecycle, all held by one ``_Shared``). A view opens and closes with that
client: its own ``aclose`` closes nothing.
"""

from __future__ import annotations

import asyncio
import copy
import enum
import ipaddress
import math
import os
import ssl
import time
import urllib.parse
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from weakref import WeakSet

import aiohttp
import anyio
import orjson

from aiotts import _redact
from aiotts._admission import EarlierRecord, ResumeRules, TaskIds, folder_mark, id_problem
from aiotts._batch import Batch, BatchOptions, BatchReport
from aiotts._body import ID_ANSWER_LIMIT, drain, read_prefix
from aiotts._config import (
    DEFAULT_BASE_URL,
    DEFAULT_LIMITS,
    DEFAULT_POLL,
    DEFAULT_RETRY,
    DEFAULT_TASK_TIMEOUT,
    DEFAULT_TIMEOUTS,
    Limits,
    PollPolicy,
    RetryPolicy,
    Timeouts,
)
from aiotts._errors import (
    ApiError,
    ClientClosedError,
    ResponseError,
    SubmitUncertainError,
    TaskFailedError,
    TaskNotFoundError,
    TaskNotReadyError,
    TaskTimeoutError,
    TrialLimitError,
    UsageError,
)
from aiotts._files import OutputTarget, output_error, remove_stale_parts
from aiotts._hooks import Emitter, HooksArgument, hooks_list
from aiotts._logs import configure_from_env, log_levels
from aiotts._manifest import read_manifest
from aiotts._models import Outcome, OutcomeState, TaskResult, TaskStatus
from aiotts._network import Proxy, check_headers, env_proxy, parse_proxy
from aiotts._readiness import Readiness
from aiotts._retry import UncertainDelivery
from aiotts._scheduler import Scheduler, Subscription
from aiotts._session import Handler, HttpSession, SessionSettings
from aiotts._slots import Slots
from aiotts._states import State
from aiotts._store import OutcomeStore, is_store_path, open_record
from aiotts._submit import DEFAULT_SUBMIT_CONCURRENCY, Submissions, Texts
from aiotts._synthesize import Synthesis, TextTargets
from aiotts._transfer import Answer, read_answer, read_envelope

__all__ = ["TRIAL_MAX_CHARS", "SavedAudio", "TTSClient"]

T = TypeVar("T")

TRIAL_MAX_CHARS = 500

_TTS_PATH = "/v5.0/ocr/ConvertTextToSpeech"
_TRIAL_PATH = "/v5.0/ocr/ConvertTextToSpeechTrial"
_STATUS_PATH = "/v5.0/ocr/Utilities/GetTaskStatus"
_TOKEN_PATH = "/connect/token"


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_url(name: str, url: str, *, sends_secrets: bool, allow_insecure_http: bool) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{name} must be an http:// or https:// URL, got {url!r}")
    if (
        sends_secrets
        and parts.scheme == "http"
        and not _is_loopback(parts.hostname)
        and not allow_insecure_http
    ):
        raise UsageError(
            f"{name} {url!r} is plain http:// to a host that is not this machine: credentials "
            "and tokens would travel unencrypted. Use https://, or pass allow_insecure_http=True "
            "(CLI: --allow-insecure-http) if you really mean it"
        )
    return url.rstrip("/")


def _ssl_setting(ca_file: str | os.PathLike[str] | None, context: ssl.SSLContext | None) -> Any:
    if context is not None and ca_file is not None:
        raise UsageError("pass either ca_file or ssl_context, not both")
    if context is not None:
        return context
    if ca_file is not None:
        try:
            return ssl.create_default_context(cafile=os.fspath(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot load the CA file {os.fspath(ca_file)!r}: {exc}") from exc
    return True  # aiohttp's default: verify against the system's certificate authorities


class Lifecycle(enum.Enum):
    """A client is used once: opened, then closed; reopening a closed one is refused."""

    NEW = "not opened"
    OPEN = "open"
    CLOSED = "closed"


class _Shared:
    """What a client and every view of it share: one lifecycle, the session with its
    pool, token and limiter, the one scheduler, the running batches and syntheses."""

    __slots__ = (
        "batch_tasks",
        "download_slots",
        "lifecycle",
        "poll",
        "runs",
        "scheduler",
        "scheduler_task",
        "session",
    )

    def __init__(self, session: HttpSession, poll: PollPolicy) -> None:
        self.session = session
        """The client's own session (not a view's): the scheduler's polls go through it."""
        self.poll = poll
        """The client's poll policy: the scheduler's, its budget included."""
        self.lifecycle = Lifecycle.NEW
        self.download_slots: Slots | None = None
        self.scheduler: Scheduler | None = None
        self.scheduler_task: asyncio.Task[None] | None = None
        self.runs: WeakSet[Batch | Synthesis] = WeakSet()
        """The batches and syntheses made by the client or its views: closing cancels them."""
        self.batch_tasks: set[asyncio.Task[None]] = set()


def _proxies(
    proxy: str | None,
    proxy_auth: aiohttp.BasicAuth | tuple[str, str] | None,
    trust_env: bool,
    urls: tuple[str, str],
) -> tuple[Proxy | None, Proxy | None]:
    """The proxies of the API's requests and of the token request."""
    if proxy is not None and trust_env:
        raise UsageError(
            "pass either proxy=... or trust_env=True (the proxy from HTTP_PROXY/HTTPS_PROXY), "
            "not both"
        )
    if proxy is not None:
        chosen = parse_proxy(proxy, proxy_auth)
        return chosen, chosen
    if proxy_auth is not None:
        raise UsageError("proxy_auth needs a proxy: pass proxy=... too")
    if trust_env:
        return env_proxy(urls[0]), env_proxy(urls[1])
    return None, None


class SavedAudio:
    """The files one task's audio was saved to."""

    __slots__ = ("bytes_written", "files", "result")

    def __init__(self, result: TaskResult, files: tuple[Path, ...], bytes_written: int) -> None:
        self.result = result
        self.files = files
        self.bytes_written = bytes_written

    def __repr__(self) -> str:
        names = ", ".join(str(p) for p in self.files)
        return (
            f"SavedAudio(task_id={self.result.task_id!r}, files=[{names}], "
            f"bytes={self.bytes_written})"
        )

    @property
    def path(self) -> Path:
        """The first (usually the only) file."""
        return self.files[0]


def _raise_for_unfinished(result: TaskResult) -> None:
    """Raise the error that says why ``result`` holds no audio to save."""
    task_id = result.task_id
    message = f"task {task_id}: {result.why_no_audio}"
    if result.status is TaskStatus.ERROR:
        raise TaskFailedError(message, task_id=task_id, messages=result.messages)
    if result.status is TaskStatus.NOT_EXIST:
        raise TaskNotFoundError(message, task_id=task_id)
    raise TaskNotReadyError(message, task_id=task_id)


class TTSClient:
    """An asyncio client for the text-to-speech queue.

    Credentials come from the arguments or from ``ASPOSE_CLIENT_ID`` and
    ``ASPOSE_CLIENT_SECRET``; with ``trial=True`` no credentials are used and the trial
    endpoints are called instead (at most 500 characters, a few calls a day).

    The service's address comes from ``base_url``, else ``AIOTTS_BASE_URL``, else
    ``https://api.aspose.cloud``; the token's from ``token_url``, else ``AIOTTS_TOKEN_URL``
    (only when ``base_url`` is not passed either), else the base URL + ``/connect/token``.

    Files are always written to a temporary name and renamed when whole, so a crash of the
    process never leaves a partial file at a final name. ``durable=True`` also fsyncs each
    file before the rename, so that a power cut cannot either; it costs throughput, and a
    resumed batch checks every file it skips (size and WAV header) in any case.

    The network: ``proxy="http://host:port"`` (credentials in the URL or in
    ``proxy_auth``) carries every request, the token request included; ``trust_env=True``
    takes the proxy from ``HTTP_PROXY``/``HTTPS_PROXY`` instead, skipping hosts that
    ``NO_PROXY`` names. ``headers`` are sent with every request (a ``User-Agent`` here
    replaces aiotts's own). ``session=`` (an open ``aiohttp.ClientSession``) or
    ``connector=`` make the client send through yours; it never closes either.
    ``hooks`` (a ``Hooks``, or a list of them) are called for the client's events: state
    changes, files, retries, 429s, tokens, answers. ``AIOTTS_LOG=json`` or ``debug`` turns
    on the ``aiotts`` logger's records of the same events without code (``_logs``).
    """

    def __init__(
        self,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        trial: bool = False,
        base_url: str | None = None,
        token_url: str | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        retry: RetryPolicy = DEFAULT_RETRY,
        poll: PollPolicy = DEFAULT_POLL,
        limits: Limits = DEFAULT_LIMITS,
        ca_file: str | os.PathLike[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        allow_insecure_http: bool = False,
        durable: bool = False,
        proxy: str | None = None,
        proxy_auth: aiohttp.BasicAuth | tuple[str, str] | None = None,
        trust_env: bool = False,
        headers: Mapping[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
        connector: aiohttp.BaseConnector | None = None,
        hooks: HooksArgument = None,
    ) -> None:
        if session is not None and connector is not None:
            raise UsageError(
                "pass either session=... or connector=..., not both (a session has its own)"
            )
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise UsageError(f"session must be an aiohttp.ClientSession, got {session!r}")
        if connector is not None and not isinstance(connector, aiohttp.BaseConnector):
            raise UsageError(f"connector must be an aiohttp.BaseConnector, got {connector!r}")
        configure_from_env()  # AIOTTS_LOG, once per process
        self._events = Emitter(hooks_list(hooks), log_levels=log_levels())
        if trial:
            if client_id or client_secret:
                raise UsageError("trial mode sends no credentials: drop client_id/client_secret")
        else:
            client_id = client_id or os.environ.get("ASPOSE_CLIENT_ID") or None
            client_secret = client_secret or os.environ.get("ASPOSE_CLIENT_SECRET") or None
            if not client_id or not client_secret:
                raise UsageError(
                    "no credentials: pass client_id and client_secret, set ASPOSE_CLIENT_ID "
                    "and ASPOSE_CLIENT_SECRET, or use trial=True"
                )
        # Where to connect: the argument, else the environment, else the default. The two
        # variables describe one deployment, so AIOTTS_TOKEN_URL is not paired with a
        # base_url argument: the token then comes from that base URL unless token_url is
        # passed too (credentials never go where the caller did not point them).
        base_url_name, token_url_name = "base_url", "token_url"
        if base_url is None:
            from_env = os.environ.get("AIOTTS_BASE_URL") or None
            if from_env is not None:
                base_url, base_url_name = from_env, "AIOTTS_BASE_URL"
            if token_url is None:
                from_env = os.environ.get("AIOTTS_TOKEN_URL") or None
                if from_env is not None:
                    token_url, token_url_name = from_env, "AIOTTS_TOKEN_URL"
        sends_secrets = not trial
        self._base_url = _check_url(
            base_url_name,
            base_url or DEFAULT_BASE_URL,
            sends_secrets=sends_secrets,
            allow_insecure_http=allow_insecure_http,
        )
        self._token_url = _check_url(
            token_url_name,
            token_url or self._base_url + _TOKEN_PATH,
            sends_secrets=sends_secrets,
            allow_insecure_http=allow_insecure_http,
        )
        api_proxy, token_proxy = _proxies(
            proxy, proxy_auth, trust_env, (self._base_url, self._token_url)
        )
        self._trial = trial
        self._client_id = client_id
        self._poll = poll
        self._view_poll: PollPolicy | None = None
        """A view's poll policy, for the tasks its waits and batches start."""
        self._is_view = False
        self._timeouts = timeouts
        self._retry = retry
        self._limits = limits
        self._durable = durable
        self._session = HttpSession(
            SessionSettings(
                token_url=self._token_url,
                client_id=client_id,
                client_secret=client_secret,
                timeouts=timeouts,
                retry=retry,
                limits=limits,
                ssl=_ssl_setting(ca_file, ssl_context),
                base_url=self._base_url,
                api_proxy=api_proxy,
                token_proxy=token_proxy,
                headers=check_headers(headers),
                session=session,
                connector=connector,
            )
        )
        self._shared = _Shared(self._session, poll)
        self._events.attach(self._session)
        tts_path = _TRIAL_PATH if trial else _TTS_PATH
        self._tts_url = self._base_url + tts_path
        self._status_url = self._base_url + (_TRIAL_PATH if trial else _STATUS_PATH)
        # Every id this client submits, with when and how long, so that its polls can aim
        # at the moment each is likely ready (``PollPolicy.predict``).
        self._readiness = Readiness()  # shared by the client's views
        self._folders = _ProvenFolders()  # shared by the client's views

    def __repr__(self) -> str:
        mode = "trial" if self._trial else f"client_id={self._client_id!r}"
        state = self._shared.lifecycle.value
        view = " (a view: with_options)" if self._is_view else ""
        return f"<TTSClient {self._base_url} {mode} {state}{view}>"

    def with_options(
        self,
        *,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
    ) -> TTSClient:
        """This client with other options: a view that shares its session, token, rate
        limiter, scheduler and lifecycle, and leaves it unchanged.

        ``timeouts`` and ``retry`` apply to the view's own calls (``submit``, ``fetch``,
        ``status``, ``cancel``, ``download``); ``poll`` sets the delays of the tasks its
        ``wait`` and ``fetch_many`` start (the budget stays the client's). Polls are sent
        by the one scheduler, with the client's own retry policy and timeouts.

        A view may be made before or after the client opens; it is open while the client
        is. Closing the view (``aclose``, or leaving ``async with view``) closes nothing;
        closing the client ends the view's calls with ``ClientClosedError``.
        """
        for name, value, kind in (
            ("timeouts", timeouts, Timeouts),
            ("retry", retry, RetryPolicy),
            ("poll", poll, PollPolicy),
        ):
            if value is not None and not isinstance(value, kind):
                raise UsageError(f"{name} must be a {kind.__name__}, got {value!r}")
        view = copy.copy(self)  # shares _shared, and with it every piece of live state
        view._is_view = True
        view._timeouts = timeouts or self._timeouts
        view._retry = retry or self._retry
        if poll is not None:
            view._poll = view._view_poll = poll
        view._session = self._session.derive(timeouts=view._timeouts, retry=view._retry)
        return view

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> TTSClient:
        shared = self._shared
        if self._is_view:
            self._require_open()  # a view opens with its client
            return self
        if shared.lifecycle is Lifecycle.CLOSED:
            raise ClientClosedError("this client was closed; create a new TTSClient")
        if shared.lifecycle is Lifecycle.OPEN:
            raise UsageError("this client is already open")
        await self._session.open()
        shared.download_slots = Slots(self._limits.downloads)
        shared.lifecycle = Lifecycle.OPEN
        return self

    @property
    def _download_slots(self) -> Slots | None:
        return self._shared.download_slots

    @property
    def _runs(self) -> WeakSet[Batch | Synthesis]:
        return self._shared.runs

    @property
    def _scheduler(self) -> Scheduler | None:
        return self._shared.scheduler

    def _the_scheduler(self) -> Scheduler:
        """The one scheduler every wait and batch of this client (and of its views)
        feeds, started on first use in a task the client keeps (so it outlives the caller
        that started it)."""
        shared = self._shared
        if shared.scheduler is None:
            assert shared.download_slots is not None
            shared.scheduler = Scheduler(
                shared.session,
                fetch_url=self._tts_url,
                authorised=not self._trial,
                poll=shared.poll,
                limits=self._limits,
                download_slots=shared.download_slots,
                durable=self._durable,
                readiness=self._readiness,
            )
            shared.scheduler.events = self._events
            shared.scheduler_task = asyncio.get_running_loop().create_task(shared.scheduler.run())
        return shared.scheduler

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel running batches and syntheses (waiting for their clean-up), end running
        calls, then close the pool (if the client opened it). Safe to call more than once.
        On a view (``with_options``) it does nothing: the client it came from owns all of
        that."""
        if self._is_view:
            return
        shared = self._shared
        shared.lifecycle = Lifecycle.CLOSED
        try:
            for run in list(shared.runs):
                run.cancel()  # a synthesis too: its outcomes may wait for a reader gone
            if shared.batch_tasks:
                with anyio.CancelScope(shield=True):
                    await asyncio.gather(*shared.batch_tasks, return_exceptions=True)
            if shared.scheduler_task is not None:
                shared.scheduler_task.cancel()
                with anyio.CancelScope(shield=True):
                    await asyncio.gather(shared.scheduler_task, return_exceptions=True)
        finally:
            with anyio.CancelScope(shield=True):
                await self._events.aclose()  # async hooks take what is left, briefly
                await self._session.close()

    def _require_open(self) -> None:
        lifecycle = self._shared.lifecycle
        if lifecycle is Lifecycle.CLOSED:
            raise ClientClosedError("this client is closed; create a new TTSClient")
        if lifecycle is Lifecycle.NEW:
            raise ClientClosedError(
                "this client is not open; use it as `async with TTSClient(...) as client:`"
                + (" (a view opens with the client it was made from)" if self._is_view else "")
            )

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        tasks = self._shared.batch_tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    @property
    def trial(self) -> bool:
        return self._trial

    @property
    def counters(self) -> dict[str, int]:
        """Requests sent so far, by kind (``token``, ``submit``, ``poll``, ...)."""
        return dict(self._session.counters.requests)

    # -- one task ------------------------------------------------------------------------------

    async def submit(
        self,
        text: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 -- kept by the session's cancel scope
    ) -> str:
        """Send ``text`` for conversion; return its task id.

        Submits are billable, so a submit is retried only when it provably never reached the
        server; any other failure raises ``SubmitUncertainError`` carrying the text, and so
        does the deadline (``timeout`` seconds, default ``Timeouts.call``) once the request
        may have been sent.
        """
        self._require_open()
        if not isinstance(text, str) or not text.strip():
            raise UsageError("the text to convert is empty")
        if self._trial and len(text) > TRIAL_MAX_CHARS:
            raise TrialLimitError(
                f"trial mode converts at most {TRIAL_MAX_CHARS} characters; this text has "
                f"{len(text)}: shorten it or use credentials"
            )
        return await self._post_text(text, self._call_timeout(timeout))

    async def _post_text(self, text: str, timeout: float) -> str:  # noqa: ASYNC109
        """The one POST of a text, which every submit goes through: send it, map its
        failures, and record the id it got (when, and how long its text) for the readiness
        model."""
        body = orjson.dumps(
            {"text": text, "settings": {"language": "English", "resultType": "Wav"}}
        )

        async def read_id(response: aiohttp.ClientResponse) -> str:
            answer, longer = await read_prefix(response, ID_ANSWER_LIMIT)
            raw = answer.decode("utf-8", "replace")
            task_id = raw.strip().strip('"')
            if longer or not task_id or any(c.isspace() for c in task_id):
                shown = _redact.server_text(repr(raw), limit=80)
                raise ResponseError(f"the submit answer is not a task id: {shown}")
            return task_id

        try:
            task_id = await self._session.request(
                "submit",
                "POST",
                self._tts_url,
                read_id,
                body=body,
                authorised=not self._trial,
                idempotent=False,
                timeout=timeout,
            )
            # The scheduler's clock: submits and polls are stamped on one timeline.
            self._readiness.submitted(task_id, at=time.monotonic(), chars=len(text))
            return task_id
        except UncertainDelivery as exc:
            raise SubmitUncertainError(
                f"the submit may have reached the server ({exc.error}); it was not retried, "
                "because a second submit may be billed again: check for the task, or resubmit",
                text=text,
                status=exc.error.status,
            ) from exc.error
        except ResponseError as exc:
            raise SubmitUncertainError(
                f"the submit may have reached the server but its answer was unusable ({exc}); "
                "check for the task, or resubmit",
                text=text,
            ) from exc
        except ApiError as exc:
            if self._trial and exc.status in (400, 429):
                raise TrialLimitError(
                    f"the trial endpoint refused the text (HTTP {exc.status}): trial mode allows "
                    f"{TRIAL_MAX_CHARS} characters and a few calls a day per address",
                    status=exc.status,
                    messages=exc.messages,
                ) from exc
            raise

    def _call_timeout(self, timeout: float | None) -> float:
        """The deadline of one single-task call: ``timeout``, or ``Timeouts.call``."""
        if timeout is None:
            return self._timeouts.call
        if not (isinstance(timeout, int | float) and 0 < timeout < float("inf")):
            raise UsageError(f"timeout must be a positive number of seconds, got {timeout!r}")
        return float(timeout)

    async def _about(
        self,
        kind: str,
        method: str,
        url: str,
        task_id: str,
        read: Handler[T],
        timeout: float | None,  # noqa: ASYNC109 -- kept by the session's cancel scope
    ) -> T:
        """One request about one task (``?id=``), read by ``read``, within the call's
        deadline."""
        self._require_open()
        return await self._session.request(
            kind,
            method,
            url,
            read,
            params={"id": task_id},
            authorised=not self._trial,
            timeout=self._call_timeout(timeout),
        )

    async def fetch(
        self,
        task_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 -- kept by the session's cancel scope
    ) -> TaskResult:
        """The task's whole result envelope, with any audio decoded in memory.

        For large audio prefer ``download``, which streams to disk. ``timeout`` bounds the
        whole call (default ``Timeouts.call``); past it, ``RequestTimeout``."""

        async def read(response: aiohttp.ClientResponse) -> TaskResult:
            return await read_envelope(response, task_id, keep_audio=True)

        return await self._about("fetch", "GET", self._tts_url, task_id, read, timeout)

    async def status(
        self,
        task_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 -- kept by the session's cancel scope
    ) -> TaskResult:
        """The task's status without its audio (``Utilities/GetTaskStatus``); ``timeout``
        as for ``fetch``."""

        async def read(response: aiohttp.ClientResponse) -> TaskResult:
            return await read_envelope(response, task_id, keep_audio=False)

        return await self._about("status", "GET", self._status_url, task_id, read, timeout)

    async def cancel(
        self,
        task_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 -- kept by the session's cancel scope
    ) -> None:
        """Ask the server to drop the task; it becomes ``NotExist``. ``timeout`` as for
        ``fetch``."""

        async def read(response: aiohttp.ClientResponse) -> None:
            await drain(response)

        await self._about("cancel", "DELETE", self._tts_url, task_id, read, timeout)

    async def download(
        self,
        task_id: str,
        to: str | os.PathLike[str],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 -- kept by the session's cancel scope
    ) -> SavedAudio:
        """Stream a completed task's audio to disk, decoding as the bytes arrive.

        ``to`` is a folder (the file is named after the task id) or a file name. Raises
        ``TaskNotReadyError``, ``TaskFailedError`` or ``TaskNotFoundError`` when there is
        nothing to save. ``timeout`` bounds the request and its body (default
        ``Timeouts.call``); past it, ``RequestTimeout`` and no file is left behind.
        """
        self._require_open()
        target = OutputTarget.at_path(to, task_id)
        self._folders.prepare(target.folder)
        download_slots = self._download_slots
        assert download_slots is not None

        async def read(response: aiohttp.ClientResponse) -> Answer:
            return await read_answer(
                response, task_id=task_id, target=target, download_slots=download_slots
            )

        answer = await self._about("download", "GET", self._tts_url, task_id, read, timeout)
        if answer.result.status is not TaskStatus.COMPLETED:
            _raise_for_unfinished(answer.result)
        await answer.settle(durable=self._durable)
        if (written := self._events.file) is not None:
            written(task_id, answer.files, answer.bytes_written)
        return SavedAudio(answer.result, answer.files, answer.bytes_written)

    async def wait(
        self,
        task_id: str,
        to: str | os.PathLike[str],
        *,
        timeout: float = 600.0,  # noqa: ASYNC109 -- the task's own deadline, kept by the scheduler
        poll: PollPolicy | None = None,
    ) -> SavedAudio:
        """Wait until the task ends (at most ``timeout`` seconds), then save its audio.

        Every wait goes through the client's one scheduler: concurrent waits for the same id
        share one poll loop and one download, and each gets its own file at ``to`` (a hard
        link to the download, or a copy where links cannot be made). Cancelling a wait
        leaves the others alone; when the last wait for an id leaves, its polling stops.

        Raises ``TaskTimeoutError`` at the deadline, ``TaskFailedError`` or
        ``TaskNotFoundError`` if it ends without audio.
        """
        self._require_open()
        if not timeout > 0:
            raise UsageError(f"timeout must be a positive number of seconds, got {timeout!r}")
        problem = id_problem(task_id)
        if problem is not None:
            raise UsageError(problem)
        target = OutputTarget.at_path(to, task_id)
        self._folders.prepare(target.folder)
        scheduler = self._the_scheduler()
        waiter = _Waiter(self._events)
        subscription = scheduler.subscribe(
            task_id,
            target,
            waiter,
            deadline=scheduler.clock() + timeout,
            poll=poll or self._view_poll,
        )
        try:
            outcome = await waiter.outcome
        finally:
            # Cancelled (a web request went away): the others waiting for the same task
            # keep theirs; the last one leaving stops its polling.
            if scheduler.unsubscribe(subscription):
                waiter.left(task_id)
        return _saved_or_raise(outcome)

    # -- many tasks ---------------------------------------------------------------------------

    def fetch_many(
        self,
        ids: TaskIds,
        out_dir: str | os.PathLike[str],
        *,
        task_timeout: float | None = DEFAULT_TASK_TIMEOUT,
        batch_timeout: float | None = None,
        manifest: str | os.PathLike[str] | None = None,
        resume: bool = False,
        retry_failed: bool = False,
        poll: PollPolicy | None = None,
        hooks: HooksArgument = None,
    ) -> Batch:
        """Fetch every task in ``ids`` into ``out_dir``; iterate for outcomes as tasks end.

        ``ids`` may be a list, any iterable, or an async iterable: ids are taken in only as
        capacity frees (an async generator is closed when the batch stops reading it,
        before the batch ends). Each distinct id yields exactly one ``Outcome``. With
        ``manifest``, each outcome is recorded there before it is yielded; with ``resume``,
        ids the record holds as done (whose files are still whole) are reported without a
        request, and failed ones are retried only with ``retry_failed``.

        The record's kind follows its suffix: ``.db``, ``.sqlite`` or ``.sqlite3`` is a
        SQLite store, asked per id on resume (memory flat and the first outcome at once,
        whatever its size; one run writes it at a time, ``aiotts report`` reads it any
        time); any other name is a JSONL manifest, one line per outcome, read whole on
        resume (fine for thousands of ids, slow for millions). Duplicate ids are detected
        on disk, not in memory, so memory does not grow with the number of ids.

        ``task_timeout`` (default an hour; ``None``: none) is how long each task may take
        from when it is taken in; a task past it ends ``expired``. ``batch_timeout``
        bounds the whole batch. ``hooks`` are this batch's own (``Hooks`` with ``on_state``
        and ``on_file`` only), called besides the client's.
        """
        folder = Path(out_dir)
        return self._batch(
            ids,
            lambda task_id: OutputTarget.in_folder(folder, task_id),
            folder=folder,
            poll=poll,
            task_timeout=task_timeout,
            batch_timeout=batch_timeout,
            manifest=manifest,
            resume=resume,
            retry_failed=retry_failed,
            hooks=hooks,
        )

    async def fetch_all(
        self, ids: TaskIds, out_dir: str | os.PathLike[str], **options: Any
    ) -> BatchReport:
        """Like ``fetch_many``, but return every outcome at once, the failures kept apart."""
        return await self.fetch_many(ids, out_dir, **options).collect()

    # -- from texts -----------------------------------------------------------------------------

    def submit_many(
        self,
        texts: Texts,
        *,
        ledger: str | os.PathLike[str] | None = None,
        resume: bool = False,
        resubmit_uncertain: bool = False,
        concurrency: int = DEFAULT_SUBMIT_CONCURRENCY,
    ) -> Submissions:
        """Submit every text of ``texts``; iterate for one ``Submitted`` per text, as each
        submit ends (``async for submitted in client.submit_many(texts): ...``).

        ``texts`` are strings (each known by its position: ``"0"``, ``"1"``, ...) or
        ``(key, text)`` pairs, from any iterable or async iterable, read as submits finish
        (at most ``concurrency`` in flight; an async generator is closed when the run
        stops). With ``ledger`` (a store: ``.db``, ``.sqlite`` or ``.sqlite3``), each
        text's key and digest are committed before its POST leaves and its task id as soon
        as the POST returns; with ``resume``, a text the ledger holds an id for is not sent
        again (it comes back ``resumed``), and one whose POST may have reached the server
        without an id is reported ``uncertain`` and sent again only with
        ``resubmit_uncertain``. A key whose text changed is an error for that text. A 429
        makes the text wait and go again; a 400 fails that text alone.
        """
        self._require_open()
        store = _ledger_store(ledger)
        try:
            return Submissions(
                self,
                texts,
                ledger=store,
                owns_ledger=True,
                resume=resume,
                resubmit_uncertain=resubmit_uncertain,
                concurrency=concurrency,
                retry=self._session._settings.retry,
            )
        except BaseException:
            if store is not None:
                store.close()
            raise

    def synthesize(
        self,
        texts: Texts,
        out_dir: str | os.PathLike[str],
        *,
        ledger: str | os.PathLike[str] | None = None,
        resume: bool = False,
        resubmit_uncertain: bool = False,
        resubmit_missing: bool = False,
        task_timeout: float | None = DEFAULT_TASK_TIMEOUT,
        poll: PollPolicy | None = None,
        concurrency: int = DEFAULT_SUBMIT_CONCURRENCY,
    ) -> Synthesis:
        """Turn every text into a WAV file in ``out_dir``, named after its key; iterate for
        one ``Outcome`` per text (with its ``key``) as each ends.

        Submit and fetch are pipelined: each task goes to the client's one scheduler as
        soon as its id exists. ``texts`` and the submit options are those of
        ``submit_many``; ``ledger`` (a store) records both the texts and the outcomes,
        so a resume sends no text twice and fetches no audio twice. A task the server no
        longer knows (an earlier run found it ``missing``, e.g. past the server's 24 h)
        is submitted again only with ``resubmit_missing``. ``task_timeout`` and ``poll``
        are ``fetch_many``'s.
        """
        self._require_open()
        if resume and ledger is None:
            raise UsageError("resume needs a ledger: pass ledger=PATH (a .db store)")
        if task_timeout is not None and not task_timeout > 0:
            raise UsageError(f"task_timeout must be a positive number, got {task_timeout!r}")
        folder = Path(out_dir)
        mark = folder_mark(folder)  # before the probe of ``_prepare_folder`` moves it
        _prepare_folder(folder)
        store = _ledger_store(ledger)
        try:
            targets = TextTargets(folder)

            def missing_before(task_id: str) -> bool:
                assert store is not None
                entry = store.get(task_id)
                return entry is not None and entry.state is OutcomeState.MISSING

            submissions = Submissions(
                self,
                texts,
                ledger=store,
                owns_ledger=False,  # the batch closes it, after the submissions stopped
                resume=resume,
                resubmit_uncertain=resubmit_uncertain,
                concurrency=concurrency,
                retry=self._session._settings.retry,
                resubmit=missing_before if resubmit_missing and store is not None else None,
            )
            cleanup, clean_end = _stale_part_sweep(folder, mark, store)
            options = BatchOptions(
                target_for=targets.target_for,
                capacity=self._limits.tasks_in_flight,
                task_timeout=math.inf if task_timeout is None else task_timeout,
                poll=poll or self._view_poll,
                cleanup=cleanup,
                clean_end=clean_end,
                resume=ResumeRules(store, targets.target_for, check_files=True)
                if resume and store is not None
                else None,
            )

            def make_batch(ids: TaskIds) -> Batch:
                batch = Batch(
                    self._the_scheduler(), self._session, ids, self._spawn, options, manifest=store
                )
                self._runs.add(batch)
                return batch

            synthesis = Synthesis(submissions, targets, make_batch, self._spawn, store)
            self._runs.add(synthesis)
            return synthesis
        except BaseException:
            if store is not None:
                store.close()
            raise

    def _batch(
        self,
        ids: TaskIds,
        target_for: Callable[[str], OutputTarget],
        *,
        folder: Path,
        poll: PollPolicy | None,
        task_timeout: float | None = None,
        batch_timeout: float | None = None,
        manifest: str | os.PathLike[str] | None = None,
        resume: bool = False,
        retry_failed: bool = False,
        hooks: HooksArgument = None,
    ) -> Batch:
        self._require_open()
        batch_hooks = Emitter.batch_hooks(hooks)
        if resume and manifest is None:
            raise UsageError("resume needs a manifest: pass manifest=PATH")
        for name, value in (("task_timeout", task_timeout), ("batch_timeout", batch_timeout)):
            if value is not None and not value > 0:
                raise UsageError(f"{name} must be a positive number of seconds, got {value!r}")
        mark = folder_mark(folder)  # before the probe of ``_prepare_folder`` moves it
        _prepare_folder(folder)
        record = open_record(manifest) if manifest is not None else None
        try:
            earlier: EarlierRecord = {}
            if resume and isinstance(record, OutcomeStore):
                earlier = record  # asked per id: nothing is read before the first request
            elif resume and manifest is not None:
                earlier = read_manifest(manifest)
        except BaseException:
            if record is not None:
                record.close()
            raise
        store = record if isinstance(record, OutcomeStore) else None
        cleanup, clean_end = _stale_part_sweep(folder, mark, store)
        options = BatchOptions(
            target_for=target_for,
            capacity=self._limits.tasks_in_flight,
            task_timeout=math.inf if task_timeout is None else task_timeout,
            batch_timeout=math.inf if batch_timeout is None else batch_timeout,
            poll=poll or self._view_poll,
            cleanup=cleanup,
            clean_end=clean_end,
            resume=ResumeRules(earlier, target_for, retry_failed, check_files=True, folder=folder)
            if resume
            else None,
        )
        batch = Batch(
            self._the_scheduler(),
            self._session,
            ids,
            self._spawn,
            options,
            manifest=record,
        )
        self._runs.add(batch)
        self._events.watch(batch, batch_hooks)
        return batch


class _Waiter:
    """The listener of one ``wait``: keeps the outcome for the waiting caller."""

    __slots__ = ("events", "outcome")

    def __init__(self, events: Emitter) -> None:
        self.events = events
        self.outcome: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()

    def moved(self, before: State | None, after: State) -> None:
        pass

    def ended(self, subscription: Subscription, outcome: Outcome) -> None:
        if (ended := self.events.ended) is not None:
            ended(outcome, None)
        if not self.outcome.done():
            self.outcome.set_result(outcome)

    def left(self, task_id: str) -> None:
        """The wait was cancelled before its task ended: that is its ending."""
        if (ended := self.events.ended) is not None:
            ended(Outcome(task_id, OutcomeState.CANCELLED, error="the wait was cancelled"), None)


def _prepare_folder(folder: Path) -> None:
    """Create the output folder and prove it is writable, before any request is sent."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".aiotts-probe-{os.getpid()}-{id(folder)}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise output_error(exc, folder, None) from exc


class _ProvenFolders:
    """The folders single-task calls (``download``, ``wait``) already proved writable: each
    is proved once per client, not at every call, so a web app's thousand waits into one
    folder create and remove one probe file. A folder that stops being writable later makes
    the file's own creation fail, with the same ``OutputError``."""

    MAX_KEPT = 1024
    """Distinct folders kept; past it the set starts again (each is proved once more)."""

    __slots__ = ("_proven",)

    def __init__(self) -> None:
        self._proven: set[Path] = set()

    def prepare(self, folder: Path) -> None:
        if folder in self._proven:
            return
        _prepare_folder(folder)
        if len(self._proven) >= self.MAX_KEPT:
            self._proven.clear()
        self._proven.add(folder)


def _stale_part_sweep(
    folder: Path, mark: str | None, store: OutcomeStore | None
) -> tuple[Callable[[], object] | None, Callable[[], str | None] | None]:
    """``BatchOptions``' ``cleanup`` and ``clean_end`` for a batch into ``folder`` (whose
    ``folder_mark`` was ``mark`` before the batch touched it), recording in ``store``.

    The folder is read for a crashed run's temporary files in a thread while the batch
    runs, unless the store's last batch into it ended cleanly and the folder is unchanged
    since: then no crashed run left one there, and there is nothing to look for."""
    unchanged = mark is not None and store is not None and store.clean_end == mark
    cleanup = None if unchanged else lambda: remove_stale_parts(folder)
    clean_end = None if store is None else lambda: folder_mark(folder)
    return cleanup, clean_end


def _ledger_store(ledger: str | os.PathLike[str] | None) -> OutcomeStore | None:
    """The store a ledger lives in, opened for writing (one run at a time)."""
    if ledger is None:
        return None
    if not is_store_path(ledger):
        raise UsageError(
            f"the ledger {os.fspath(ledger)!r} must be a store: a path ending in .db, "
            ".sqlite or .sqlite3"
        )
    return OutcomeStore(ledger)


def _saved_or_raise(outcome: Outcome) -> SavedAudio:
    task_id = outcome.task_id
    if outcome.state is OutcomeState.DONE:
        result = TaskResult(
            task_id=task_id,
            status=TaskStatus.COMPLETED,
            response_code=outcome.response_code,
            messages=outcome.messages,
            warnings=outcome.warnings,
        )
        return SavedAudio(result, outcome.files, outcome.bytes_written)
    if outcome.cause is not None:
        raise outcome.cause
    error = outcome.error or outcome.state.value
    if outcome.state is OutcomeState.FAILED:
        raise TaskFailedError(
            f"task {task_id}: {error}", task_id=task_id, messages=outcome.messages
        )
    if outcome.state is OutcomeState.MISSING:
        raise TaskNotFoundError(f"task {task_id}: {error}", task_id=task_id)
    if outcome.state is OutcomeState.EXPIRED:
        raise TaskTimeoutError(f"task {task_id}: not finished before the deadline", task_id=task_id)
    if outcome.state is OutcomeState.CANCELLED:
        raise ClientClosedError(f"task {task_id}: {error}")
    raise ResponseError(f"task {task_id}: {error}", task_id=task_id)
