"""Helpers shared by the integration and reliability tests."""

from __future__ import annotations

import os
import pty
import re
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import trustme

from aiotts import PollPolicy, RetryPolicy, TTSClient
from aiotts.emulator import Emulator

FAST_RETRY = RetryPolicy(first_delay=0.01, max_delay=0.05, max_attempts=8, max_time=30)
FAST_POLL = PollPolicy(
    first_delay=0.05, growth=1.5, max_delay=0.3, processing_delay=0.05, min_delay=0.01
)


def client_for(emu: Emulator, **options: Any) -> TTSClient:
    """A client of ``emu`` with fast retries and polls (unless overridden)."""
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("poll", FAST_POLL)
    if options.get("trial"):
        return TTSClient(base_url=emu.url, **options)
    return TTSClient(emu.client_id, emu.client_secret, base_url=emu.url, **options)


def temp_files(folder: Path) -> list[Path]:
    """Temporary files left anywhere below ``folder``."""
    return [p for p in folder.rglob("*") if p.name.endswith(".part")]


def cli_env(emu: Emulator | None, **extra: str) -> dict[str, str]:
    """The environment of an ``aiotts`` subprocess: this one without credentials or base
    URL, then those of ``emu`` (if given), then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASPOSE_", "AIOTTS_"))}
    env["COLUMNS"] = "120"
    if emu is not None:
        env["ASPOSE_CLIENT_ID"] = emu.client_id
        env["ASPOSE_CLIENT_SECRET"] = emu.client_secret
        env["AIOTTS_BASE_URL"] = emu.url
    env.update(extra)
    return env


def tls_server_context(ca: trustme.CA) -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1 signed by ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def without_escapes(text: str) -> str:
    """What a terminal shows of ``text``: its escape sequences (colours, cursor moves) out."""
    return _ESCAPES.sub("", text)


async def requests_settled(client: TTSClient, seconds: float = 10) -> None:
    """Return once no request of ``client`` is out (every request slot free again)."""
    with anyio.fail_after(seconds):
        while client._session._slots.free < client._limits.polls:
            await anyio.sleep(0.01)


async def run_on_terminal(
    command: Sequence[str],
    env: dict[str, str],
    react: Callable[[str], bool],
    *,
    seconds: float = 30,
) -> tuple[str, int]:
    """Run ``command`` with a pseudo-terminal for its standard streams; after each read,
    call ``react`` with the whole screen so far (``without_escapes``) until it returns
    True. Returns the screen and the exit code. Fails when ``react`` never said True
    within ``seconds``, or the process did not end within ``seconds`` more; the process
    is killed then."""
    controller, terminal = pty.openpty()
    process = await anyio.open_process(
        command, stdin=terminal, stdout=terminal, stderr=terminal, env=env
    )
    os.close(terminal)
    screen = b""
    satisfied = False
    try:
        with anyio.move_on_after(seconds):
            while True:
                try:
                    chunk = await anyio.to_thread.run_sync(os.read, controller, 65536)
                except OSError:  # the terminal closed: the process is gone
                    break
                if not chunk:
                    break
                screen += chunk
                if not satisfied:
                    satisfied = react(without_escapes(screen.decode("utf-8", "replace")))
        text = without_escapes(screen.decode("utf-8", "replace"))
        assert satisfied, f"the screen never showed what was awaited: {text!r}"
        with anyio.fail_after(seconds):
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
        os.close(controller)
    return without_escapes(screen.decode("utf-8", "replace")), code
