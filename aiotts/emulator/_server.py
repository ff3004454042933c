"""``Emulator``: the server in the caller's event loop, as an async context manager."""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from aiotts.emulator._app import build_server
from aiotts.emulator._clock import Clock
from aiotts.emulator._config import Duration, EmulatorConfig, Faults
from aiotts.emulator._snapshots import Stats, TaskRecord
from aiotts.emulator._state import EmulatorState

__all__ = ["Emulator"]


def _url_host(host: str) -> str:
    """The host to put in a URL: a wildcard address becomes loopback, IPv6 gets brackets."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class Emulator:
    """The API emulator serving on ``host:port`` (port 0: a free one) for one ``async with``.

    ::

        async with Emulator(EmulatorConfig(pending_seconds=0)) as emu:
            client = TTSClient(base_url=emu.url, client_id=emu.client_id, ...)

    Everything but :meth:`start`/:meth:`aclose` is synchronous and may be called before the
    server starts (to create tasks or set faults) and after it stops (to read counters).
    The lifecycle is single-use: a closed emulator cannot be started again.
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        clock: Clock | None = None,
        shutdown_timeout: float = 2.0,
    ) -> None:
        self._state = EmulatorState(config, faults, clock=clock)
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._shutdown_timeout = shutdown_timeout
        self._runner: web.ServerRunner | None = None
        self._url: str | None = None
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start serving; ``url`` is valid afterwards."""
        if self._closed or self._runner is not None:
            raise RuntimeError("an Emulator is started once; make a new one")
        runner = web.ServerRunner(
            # aiohttp's access log is off: our own debug line replaces it, without headers.
            build_server(self._state, access_log=None),
            handle_signals=False,
            shutdown_timeout=self._shutdown_timeout,
        )
        await runner.setup()
        self._runner = runner
        try:
            site = web.TCPSite(runner, self._host, self._port, ssl_context=self._ssl, backlog=1024)
            await site.start()
        except BaseException:
            await self.aclose()
            raise
        port = runner.addresses[0][1]
        scheme = "https" if self._ssl is not None else "http"
        self._url = f"{scheme}://{_url_host(self._host)}:{port}"

    async def aclose(self) -> None:
        """Stop serving; idempotent. Open connections get ``shutdown_timeout`` to finish."""
        self._closed = True
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (no trailing slash)."""
        if self._url is None:
            raise RuntimeError("the emulator is not serving; use it in `async with`")
        return self._url

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self.url.rsplit(":", 1)[1])

    # -- config, credentials, faults -------------------------------------------------------

    @property
    def config(self) -> EmulatorConfig:
        return self._state.config

    @property
    def client_id(self) -> str:
        """The first configured client id (by default :data:`DEFAULT_CLIENT_ID`)."""
        return next(iter(self._state.config.credentials))

    @property
    def client_secret(self) -> str:
        """The secret of :attr:`client_id`."""
        return self._state.config.credentials[self.client_id]

    @property
    def faults(self) -> Faults:
        """The fault knobs in force now."""
        return self._state.faults

    def set_faults(self, faults: Faults | None = None, /, **knobs: Any) -> Faults:
        """Replace the fault knobs: with ``faults``, or with ``Faults(**knobs)``.

        Takes effect for the next request; a response being written keeps the knobs it
        was drawn with. Returns the knobs now in force.
        """
        if faults is not None and knobs:
            raise TypeError("give a Faults or knobs, not both")
        self._state.faults = faults if faults is not None else Faults(**knobs)
        return self._state.faults

    def update_faults(self, **knobs: Any) -> Faults:
        """Change some knobs, keeping the others; returns the knobs now in force."""
        self._state.faults = dataclasses.replace(self._state.faults, **knobs)
        return self._state.faults

    # -- observation -----------------------------------------------------------------------

    def stats(self) -> Stats:
        """A snapshot of the counters."""
        return self._state.stats()

    def reset_stats(self) -> None:
        """Zero the global counters (per-task counters are kept)."""
        self._state.reset_stats()

    def record(self, task_id: str) -> TaskRecord:
        """A snapshot of one task as of the clock now; ``KeyError`` for an unknown id."""
        return self._state.record(task_id)

    def task_ids(self) -> tuple[str, ...]:
        """Every task id in creation order (submitted or created)."""
        return self._state.store.ids()

    def audio(self, task_id: str) -> bytes:
        """The WAV a ``Completed`` fetch of ``task_id`` carries; ``KeyError`` if unknown."""
        return self.record(task_id).wav()

    # -- control ---------------------------------------------------------------------------

    def create_tasks(
        self,
        texts: Iterable[str] | int,
        *,
        ready_after: Duration | None = None,
        pending: Duration | None = None,
        processing: Duration | None = None,
        fail: bool | float | None = None,
        trial: bool = False,
        audio_bytes: int | None = None,
    ) -> list[str]:
        """Create tasks as if submitted now (no request, not counted); return their ids.

        ``texts``: the texts, or a count (each task then gets a distinct generated text).
        ``ready_after``: Pending for that many seconds (or a ``(low, high)`` range drawn per
        task), then the outcome; ``0`` makes them final at once. Otherwise ``pending`` and
        ``processing`` (default: the config's; with the queue model on, a task given none
        of the three joins the queue like a submitted one). ``fail``: share ending in ``Error``
        (``True`` all, ``False`` none, ``None`` the config's). ``audio_bytes``: WAV size.
        """
        return self._state.create_tasks(
            texts,
            ready_after=ready_after,
            pending=pending,
            processing=processing,
            fail=fail,
            trial=trial,
            audio_bytes=audio_bytes,
        )

    def advance_clock(self, seconds: float) -> None:
        """Skip the emulator's time ahead (task states, retention, token expiry, lockout)."""
        self._state.clock.advance(seconds)

    def now(self) -> float:
        """The emulator's clock now."""
        return self._state.clock()

    def issue_token(self) -> str:
        """A valid token for :attr:`client_id`, made without a request (not counted)."""
        return self._state.authority.issue(self.client_id)

    def expire_tokens(self) -> None:
        """Invalidate every token issued so far."""
        self._state.authority.expire_all()

    def __repr__(self) -> str:
        where = self._url or ("closed" if self._closed else "not started")
        return f"<Emulator {where} {self._state!r}>"
