"""Helpers shared by the integration and reliability tests."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

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
