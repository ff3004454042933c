"""The ``aiotts`` command line: the only code in the package that prints or exits.

Every error class maps to one exit code (``ExitCode``), listed in the README.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from enum import IntEnum
from typing import Any

from aiotts._errors import (
    AiottsError,
    ApiError,
    AuthenticationError,
    OutputError,
    SubmitUncertainError,
    TaskError,
    UsageError,
)

__all__ = ["ExitCode", "build_parser", "main"]


class ExitCode(IntEnum):
    OK = 0
    """Every task done."""
    TASKS_FAILED = 1
    """Some tasks did not end done (failed, missing, expired, aborted)."""
    USAGE = 2
    """Bad arguments or input: nothing was sent, or the server refused the input."""
    AUTHENTICATION = 3
    """The credentials were refused."""
    SERVICE = 4
    """The service could not be reached, or kept failing, or answered nonsense."""
    OUTPUT = 5
    """A file could not be written."""
    SUBMIT_UNCERTAIN = 6
    """A submit may have reached the server; it was not retried (it may be billed)."""
    INTERRUPTED = 130
    """Ctrl-C or SIGTERM: everything in flight was recorded; ``--resume`` continues."""


def exit_code_for(error: BaseException) -> ExitCode:
    """The exit code of an error that ended a command."""
    if isinstance(error, UsageError | ApiError):
        return ExitCode.USAGE
    if isinstance(error, AuthenticationError):
        return ExitCode.AUTHENTICATION
    if isinstance(error, OutputError):
        return ExitCode.OUTPUT
    if isinstance(error, SubmitUncertainError):
        return ExitCode.SUBMIT_UNCERTAIN
    if isinstance(error, TaskError):
        return ExitCode.TASKS_FAILED
    return ExitCode.SERVICE


def _connection_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("connection")
    group.add_argument(
        "--base-url",
        default=None,
        help="API base URL (default https://api.aspose.cloud, or $AIOTTS_BASE_URL)",
    )
    group.add_argument(
        "--token-url", default=None, help="token endpoint (default BASE_URL/connect/token)"
    )
    group.add_argument(
        "--trial", action="store_true", help="use the trial endpoints: no credentials needed"
    )
    group.add_argument(
        "--credentials-file",
        metavar="FILE",
        help="read ASPOSE_CLIENT_ID / ASPOSE_CLIENT_SECRET from FILE (never pass them as flags)",
    )
    group.add_argument("--ca-file", metavar="FILE", help="trust this CA bundle for TLS")
    group.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="allow credentials over plain http:// to a host that is not this machine",
    )
    group.add_argument("-v", "--verbose", action="store_true", help="debug log on stderr")
    return options


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from aiotts.cli import _commands, _demo
    from aiotts.emulator import _cli as emulator_cli

    parser = argparse.ArgumentParser(
        prog="aiotts",
        description="Bulk client for the Aspose.OCR Cloud text-to-speech queue.",
        epilog="Exit codes: "
        + ", ".join(f"{code.value} {code.name.lower().replace('_', ' ')}" for code in ExitCode),
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    connection = _connection_options()

    fetch = verbs.add_parser("fetch", parents=[connection], help="fetch many results into a folder")
    fetch.add_argument("ids", nargs="*", metavar="ID", help="task ids")
    fetch.add_argument(
        "--ids-file", metavar="FILE", help="read ids from FILE, one per line ('-' for stdin)"
    )
    fetch.add_argument("--out", required=True, metavar="DIR", help="folder for the WAV files")
    fetch.add_argument(
        "--concurrency", type=_positive_int, default=32, help="requests in flight (default 32)"
    )
    fetch.add_argument("--rate", type=_positive_float, help="at most this many requests/s")
    fetch.add_argument(
        "--timeout",
        type=_positive_float,
        default=3600.0,
        help="give up on a task after this many seconds (default 3600)",
    )
    fetch.add_argument("--batch-timeout", type=_positive_float, help="stop the whole batch after")
    fetch.add_argument(
        "--manifest", metavar="FILE", help="JSONL record of outcomes (default OUT/manifest.jsonl)"
    )
    fetch.add_argument("--resume", action="store_true", help="skip ids the manifest says are done")
    fetch.add_argument(
        "--retry-failed", action="store_true", help="with --resume: retry failed and missing ids"
    )
    fetch.add_argument(
        "--json", action="store_true", help="one JSON line per outcome on stdout, nothing else"
    )
    fetch.add_argument(
        "--durable", action="store_true", help="fsync each file before it takes its name"
    )
    fetch.set_defaults(run=_commands.fetch)

    submit = verbs.add_parser("submit", parents=[connection], help="submit a text; print its id")
    submit.add_argument("text", nargs="?", help="the text to convert")
    submit.add_argument("--file", metavar="FILE", help="read the text from FILE ('-' for stdin)")
    submit.add_argument("--wait", action="store_true", help="wait for the result and save it")
    submit.add_argument("--out", metavar="DIR", help="with --wait: where to save (default .)")
    submit.add_argument("--timeout", type=_positive_float, default=600.0, help="wait at most")
    submit.set_defaults(run=_commands.submit)

    say = verbs.add_parser("say", parents=[connection], help="submit, wait and save in one step")
    say.add_argument("text", help="the text to convert")
    say.add_argument("-o", "--output", required=True, metavar="FILE", help="WAV file to write")
    say.add_argument("--timeout", type=_positive_float, default=600.0, help="wait at most")
    say.set_defaults(run=_commands.say)

    status = verbs.add_parser("status", parents=[connection], help="show a task's status")
    status.add_argument("id", help="task id")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(run=_commands.status)

    cancel = verbs.add_parser("cancel", parents=[connection], help="cancel a task")
    cancel.add_argument("id", help="task id")
    cancel.set_defaults(run=_commands.cancel)

    emulator = verbs.add_parser("emulator", help="run the API emulator")
    emulator_cli.add_arguments(emulator)
    emulator.set_defaults(run=None, emulator_run=emulator_cli.run)

    demo = verbs.add_parser("demo", help="the whole job against an embedded emulator")
    demo.add_argument("--count", type=_positive_int, default=240, help="texts to convert")
    demo.add_argument("--out", default="aiotts-demo", metavar="DIR", help="where the WAVs go")
    demo.add_argument("--seed", type=int, default=7, help="seed of the emulator's randomness")
    demo.add_argument("-v", "--verbose", action="store_true", help="debug log on stderr")
    demo.set_defaults(run=_demo.demo)
    return parser


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_async(coroutine: Coroutine[Any, Any, int]) -> int:
    """Run a command: SIGINT (Ctrl-C) and SIGTERM cancel it, so its clean-up runs."""
    with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
        loop = runner.get_loop()
        task = loop.create_task(coroutine)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return runner.run(_await(task))
        except asyncio.CancelledError:
            raise KeyboardInterrupt from None


async def _await(task: Awaitable[int]) -> int:
    return await task


def _configure_logging(verbose: bool) -> None:
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        for name in ("aiotts", "aiohttp"):
            logger = logging.getLogger(name)
            logger.setLevel(logging.DEBUG)
            logger.addHandler(handler)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.run is None:  # the emulator keeps its own loop and logging
        code: int = args.emulator_run(args)
        return code
    _configure_logging(getattr(args, "verbose", False))
    try:
        return run_async(args.run(args))
    except KeyboardInterrupt:
        print(
            "interrupted: work in flight was recorded; run the same command with --resume "
            "to continue",
            file=sys.stderr,
        )
        return ExitCode.INTERRUPTED
    except AiottsError as error:
        print(f"aiotts: {error}", file=sys.stderr)
        return exit_code_for(error)
