"""``EmulatorProcess``: the emulator in its own process, driven synchronously over the admin API.

Benchmarks use it so the emulator's CPU is not the client's CPU; tests use it to check the
command line. Only the standard library talks to it (``subprocess``, ``urllib``), so it
works from any thread and outside any event loop.
"""

from __future__ import annotations

import json
import queue
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from types import TracebackType
from typing import Any, Self

from aiotts.emulator._config import Duration, EmulatorConfig, Faults
from aiotts.emulator._snapshots import Stats, TaskRecord

__all__ = ["EmulatorProcess", "to_args"]

_LISTENING = "aiotts emulator listening on "


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _render(name: str, value: Any) -> list[str]:
    if name == "credentials":
        return [arg for cid, secret in value.items() for arg in ("--client", f"{cid}:{secret}")]
    if name == "error_messages":
        return [arg for message in value for arg in ("--error-message", message)]
    if name == "server_error_statuses":
        return [_flag(name), ",".join(str(s) for s in value)]
    if isinstance(value, bool):
        return [_flag(name) if value else "--no-" + name.replace("_", "-")]
    if isinstance(value, tuple):  # a (low, high) duration
        return [_flag(name), f"{value[0]!r}:{value[1]!r}"]
    return [_flag(name), repr(value) if isinstance(value, float) else str(value)]


def to_args(config: EmulatorConfig | None = None, faults: Faults | None = None) -> list[str]:
    """Command-line flags that reproduce ``config`` and ``faults`` (non-defaults only)."""
    args: list[str] = []
    for obj in (config, faults):
        if obj is None:
            continue
        default = type(obj)()
        for f in fields(obj):
            value = getattr(obj, f.name)
            if value != getattr(default, f.name):
                args += _render(f.name, value)
    return args


class EmulatorProcess:
    """``python -m aiotts.emulator --port 0 ...`` as a child process, with a sync admin client.

    ::

        with EmulatorProcess(EmulatorConfig(pending_seconds=0)) as emu:
            ids = emu.create_tasks(2000, ready_after=0, audio_bytes=1_000_000)
            ...  # point the client under test at emu.url
            print(emu.stats().count("fetch", 200))

    ``extra_args`` are passed to the command line after the flags made from ``config`` and
    ``faults``. ``admin_ssl`` is the context the admin client uses against an HTTPS
    emulator. Leaving the ``with`` block sends SIGTERM and waits for a clean exit.
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        faults: Faults | None = None,
        extra_args: Sequence[str] = (),
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 30.0,
        admin_ssl: ssl.SSLContext | None = None,
    ) -> None:
        self.command = [
            python,
            "-m",
            "aiotts.emulator",
            "--port",
            "0",
            *to_args(config, faults),
            *extra_args,
        ]
        self._env = dict(env) if env is not None else None
        self._startup_timeout = startup_timeout
        self._admin_ssl = admin_ssl
        self._proc: subprocess.Popen[str] | None = None
        self._url: str | None = None
        self.client_id: str | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the process and wait for its URL line; ``RuntimeError`` if it never comes."""
        if self._proc is not None:
            raise RuntimeError("an EmulatorProcess is started once")
        proc = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, text=True, env=self._env, bufsize=1
        )
        self._proc = proc
        lines: queue.Queue[str] = queue.Queue()

        def pump() -> None:
            # Reads the two start-up lines, then keeps draining so the child never blocks.
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)
            lines.put("")

        threading.Thread(target=pump, name="aiotts-emulator-stdout", daemon=True).start()
        try:
            first = lines.get(timeout=self._startup_timeout)
        except queue.Empty:
            self.stop()
            raise RuntimeError("the emulator did not report its URL in time") from None
        if not first.startswith(_LISTENING):
            self.stop()
            raise RuntimeError(f"the emulator did not start: {first!r}")
        self._url = first[len(_LISTENING) :].strip()
        try:
            second = lines.get(timeout=self._startup_timeout)
            self.client_id = second.partition(":")[2].strip() or None
        except queue.Empty:
            pass
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then wait (kill after ``timeout``); returns the exit code. Idempotent."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        return proc.returncode

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the emulator process is not running")
        return self._url

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("the emulator process is not running")
        return self._proc.pid

    # -- admin client ----------------------------------------------------------------------

    def _call(self, method: str, path: str, body: object = None) -> bytes:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/_emulator/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with urllib.request.urlopen(request, timeout=60, context=self._admin_ssl) as resp:
                payload: bytes = resp.read()
                return payload
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            if exc.code == 404:
                raise KeyError(detail) from None
            raise ValueError(f"admin {method} {path}: {exc.code} {detail}") from None

    def _json(self, method: str, path: str, body: object = None) -> Any:
        return json.loads(self._call(method, path, body))

    def stats(self) -> Stats:
        return Stats.from_json(self._json("GET", "stats"))

    def reset_stats(self) -> None:
        self._call("DELETE", "stats")

    def faults(self) -> Faults:
        return Faults.from_json(self._json("GET", "faults"))

    def set_faults(self, faults: Faults | None = None, /, **knobs: Any) -> Faults:
        """Replace the knobs with ``faults`` or ``Faults(**knobs)``; returns them."""
        chosen = faults if faults is not None else Faults(**knobs)
        return Faults.from_json(self._json("PUT", "faults", chosen.to_json()))

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
        """As :meth:`Emulator.create_tasks`, over the admin API."""
        body: dict[str, Any] = {"trial": trial}
        if isinstance(texts, int):
            body["count"] = texts
        else:
            body["texts"] = list(texts)
        for key, value in (
            ("ready_after", ready_after),
            ("pending", pending),
            ("processing", processing),
            ("fail", fail),
            ("audio_bytes", audio_bytes),
        ):
            if value is not None:
                body[key] = list(value) if isinstance(value, tuple) else value
        ids: list[str] = self._json("POST", "tasks", body)["ids"]
        return ids

    def task_ids(self) -> tuple[str, ...]:
        return tuple(self._json("GET", "tasks")["ids"])

    def record(self, task_id: str) -> TaskRecord:
        """The task's record; its ``wav()`` fetches the audio over the admin API."""
        data = self._json("GET", f"tasks/{task_id}")
        return TaskRecord.from_json(data, wav_source=lambda: self.audio(task_id))

    def records(self) -> list[tuple[TaskRecord, str]]:
        """Every task's record with the sha256 of its WAV, in one request."""
        return [
            (TaskRecord.from_json(data), str(data["wav_sha256"]))
            for data in self._json("GET", "records")
        ]

    def audio(self, task_id: str) -> bytes:
        return self._call("GET", f"audio/{task_id}")

    def advance_clock(self, seconds: float) -> None:
        self._call("POST", "clock", {"advance": seconds})

    def expire_tokens(self) -> None:
        self._call("POST", "tokens", {"expire": True})

    def __repr__(self) -> str:
        return f"<EmulatorProcess {self._url or 'not running'}>"
