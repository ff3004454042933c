"""``aiotts emulator`` / ``python -m aiotts.emulator``: serve until SIGINT or SIGTERM.

Every :class:`EmulatorConfig` and :class:`Faults` field is a flag of the same name in
kebab case (``--pending-seconds 0.5:3``, ``--server-error-share 0.1``), generated from the
dataclasses so the two cannot drift apart. The first line on stdout is exactly
``aiotts emulator listening on URL`` (flushed), so a parent that passed ``--port 0`` can
read where to connect; the next lines give the credentials and a ready-to-paste
``export`` line for the library and the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import shlex
import signal
import ssl
import sys
from collections.abc import Callable, Sequence
from dataclasses import MISSING, fields
from typing import Any

from aiotts.emulator._config import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    Duration,
    EmulatorConfig,
    Faults,
)
from aiotts.emulator._server import Emulator

__all__ = ["add_arguments", "config_from_args", "faults_from_args", "main", "run", "startup_lines"]

LISTENING = "aiotts emulator listening on"


def _duration(text: str) -> Duration:
    low, sep, high = text.partition(":")
    try:
        return (float(low), float(high)) if sep else float(low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SECONDS or LOW:HIGH, got {text!r}") from None


def _credential(text: str) -> tuple[str, str]:
    client_id, sep, secret = text.partition(":")
    if not (sep and client_id and secret):
        raise argparse.ArgumentTypeError(f"expected CLIENT_ID:SECRET, got {text!r}")
    return client_id, secret


def _statuses(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected codes like 500,503, got {text!r}") from None


# Fields whose flag is not a plain scalar: (flag, converter, action, metavar).
_SPECIAL: dict[str, tuple[str, Callable[[str], Any], str, str]] = {
    "credentials": ("--client", _credential, "append", "ID:SECRET"),
    "error_messages": ("--error-message", str, "append", "TEXT"),
    "note_messages": ("--note-message", str, "append", "TEXT"),
    "note_warnings": ("--note-warning", str, "append", "TEXT"),
    "pending_seconds": ("--pending-seconds", _duration, "store", "S|LOW:HIGH"),
    "processing_seconds": ("--processing-seconds", _duration, "store", "S|LOW:HIGH"),
    "server_error_statuses": ("--server-error-statuses", _statuses, "store", "CODES"),
    "audio_bytes": ("--audio-bytes", int, "store", "BYTES"),
}


def _show(default: object) -> str:
    if isinstance(default, tuple):
        return ",".join(str(item) for item in default)
    return str(default)


def _metavar(name: str, default: object) -> str:
    if name.endswith("_share"):
        return "SHARE"
    if name == "cut_at":
        return "FRACTION"
    if name == "service_noise":
        return "SIGMA"
    return "N" if isinstance(default, int) else "SECONDS"


def _add_fields(group: argparse._ArgumentGroup, cls: type[EmulatorConfig] | type[Faults]) -> None:
    for f in fields(cls):
        default = f.default if f.default is not MISSING else None
        help_text = str(f.metadata.get("help", ""))
        if default is not None:
            help_text += f" (default {_show(default)})"
        # Every default is None here: an absent flag leaves the dataclass default in force.
        if f.name in _SPECIAL:
            flag, convert, action, metavar = _SPECIAL[f.name]
            group.add_argument(
                flag, dest=f.name, type=convert, action=action, metavar=metavar, help=help_text
            )
        elif isinstance(default, bool):
            group.add_argument(
                "--" + f.name.replace("_", "-"),
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            group.add_argument(
                "--" + f.name.replace("_", "-"),
                dest=f.name,
                type=type(default) if isinstance(default, int | float) else str,
                metavar=_metavar(f.name, default),
                help=help_text,
            )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the emulator's flags to ``parser`` (used by ``aiotts emulator`` and ``__main__``)."""
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    server.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one")
    server.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate")
    server.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    server.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="debug logs one line per request (default warning)",
    )
    server.add_argument(
        "--uvloop",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run on uvloop (default: when installed)",
    )
    _add_fields(
        parser.add_argument_group(
            "service",
            f"how the emulated service behaves; credentials default to "
            f"{DEFAULT_CLIENT_ID}:{DEFAULT_CLIENT_SECRET}",
        ),
        EmulatorConfig,
    )
    _add_fields(
        parser.add_argument_group("faults", "what goes wrong, and how often (shares 0..1)"),
        Faults,
    )


def _given(args: argparse.Namespace, cls: type[EmulatorConfig] | type[Faults]) -> dict[str, Any]:
    return {
        f.name: getattr(args, f.name)
        for f in fields(cls)
        if getattr(args, f.name, None) is not None
    }


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The :class:`EmulatorConfig` the flags describe (``ValueError`` if invalid)."""
    kwargs = _given(args, EmulatorConfig)
    if "credentials" in kwargs:
        kwargs["credentials"] = dict(kwargs["credentials"])
    if "error_messages" in kwargs:
        kwargs["error_messages"] = tuple(kwargs["error_messages"])
    return EmulatorConfig(**kwargs)


def faults_from_args(args: argparse.Namespace) -> Faults:
    """The :class:`Faults` the flags describe (``ValueError`` if invalid)."""
    return Faults(**_given(args, Faults))


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.tls_cert and not args.tls_key:
        return None
    if not (args.tls_cert and args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.tls_cert, args.tls_key)
    return context


async def _serve(
    config: EmulatorConfig,
    faults: Faults,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
) -> None:
    async with Emulator(
        config, faults=faults, host=host, port=port, ssl_context=ssl_context
    ) as emu:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # Not available on every platform; Ctrl-C still ends asyncio.run there.
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        # Printed only now, so that a parent that read these lines may stop us cleanly.
        print("\n".join(startup_lines(emu.url, emu.client_id, emu.client_secret)), flush=True)
        await stop.wait()


def startup_lines(url: str, client_id: str, client_secret: str) -> list[str]:
    """What the emulator prints when it starts: where it is and how to use it.

    The first line is exactly ``aiotts emulator listening on URL`` (parents read it), the
    second ``client id: ID``; the ``export`` line pastes into a POSIX shell as it is.
    """
    exports = " ".join(
        f"{name}={shlex.quote(value)}"
        for name, value in (
            ("ASPOSE_CLIENT_ID", client_id),
            ("ASPOSE_CLIENT_SECRET", client_secret),
            ("AIOTTS_BASE_URL", url),
        )
    )
    return [
        f"{LISTENING} {url}",
        f"client id: {client_id}",
        f"client secret: {client_secret}",
        "These are the emulator's own throwaway credentials, not an Aspose account's.",
        "Point aiotts (the library and the command line) at it with:",
        f"  export {exports}",
        f"Admin API: {url}/_emulator/stats, /tasks, /faults ... (see the README). Ctrl-C stops.",
    ]


def _loop_factory(want: bool | None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if want is False:
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if want:
            raise ValueError("--uvloop: uvloop is not installed") from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(args: argparse.Namespace) -> int:
    """Serve as ``args`` say until SIGINT or SIGTERM; 0 on a clean stop, 2 on bad flags."""
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        config = config_from_args(args)
        faults = faults_from_args(args)
        ssl_context = _ssl_context(args)
        factory = _loop_factory(args.uvloop)
    except (ValueError, OSError, ssl.SSLError) as exc:
        print(f"aiotts emulator: {exc}", file=sys.stderr)
        return 2
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(_serve(config, faults, args.host, args.port, ssl_context))
    except OSError as exc:
        print(f"aiotts emulator: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m aiotts.emulator [flags]``."""
    parser = argparse.ArgumentParser(
        prog="python -m aiotts.emulator", description="Run the aiotts API emulator."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
