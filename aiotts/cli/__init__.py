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
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from enum import IntEnum
from typing import Any

from aiotts import __version__
from aiotts._config import DEFAULT_RETRY
from aiotts._context import log_task_id
from aiotts._errors import (
    AiottsError,
    ApiError,
    AuthenticationError,
    OutputError,
    SubmitUncertainError,
    TaskError,
    UsageError,
)
from aiotts._logs import configure_from_env
from aiotts.cli._text import shown, shown_id

__all__ = ["MEANINGS", "ExitCode", "build_parser", "exit_code_for", "main"]


class ExitCode(IntEnum):
    OK = 0
    TASKS_FAILED = 1
    USAGE = 2
    AUTHENTICATION = 3
    SERVICE = 4
    OUTPUT = 5
    SUBMIT_UNCERTAIN = 6
    INTERRUPTED = 130


MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "every task done",
    ExitCode.TASKS_FAILED: "some tasks did not end done (failed, missing, expired, aborted)",
    ExitCode.USAGE: "bad arguments or input: nothing was sent, or the server refused the input",
    ExitCode.AUTHENTICATION: "the credentials (or a fresh token) were refused",
    ExitCode.SERVICE: "the service could not be reached, kept failing, or answered nonsense",
    ExitCode.OUTPUT: "a file could not be written",
    ExitCode.SUBMIT_UNCERTAIN: "a submit may have reached the server; not retried (may be billed)",
    ExitCode.INTERRUPTED: "Ctrl-C or SIGTERM: what was in flight is recorded",
}


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


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Epilogs keep their lines (examples); each option's help ends with its default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            action.option_strings
            and default not in (None, False, argparse.SUPPRESS)
            and "default" not in text
        ):
            text += " (default: %(default)s)"
        return text


def _parser_options() -> dict[str, Any]:
    # No prefix matching anywhere: "--ids" must not silently become "--ids-file".
    return {"allow_abbrev": False, "formatter_class": _HelpFormatter}


def _add_verbose(parser: argparse.ArgumentParser, *, default: object) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default,
        help="write a debug log (one line per request, naming its task) to standard error",
    )


def _connection_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False, **_parser_options())
    group = options.add_argument_group("connection")
    group.add_argument(
        "--base-url",
        metavar="URL",
        default=None,
        help="the API's base URL (default: $AIOTTS_BASE_URL, else https://api.aspose.cloud)",
    )
    group.add_argument(
        "--token-url",
        metavar="URL",
        default=None,
        help="the token endpoint (default: BASE_URL/connect/token)",
    )
    group.add_argument(
        "--trial",
        action="store_true",
        help="use the trial endpoints, which need no credentials",
    )
    group.add_argument(
        "--credentials-file",
        metavar="FILE",
        help="read ASPOSE_CLIENT_ID and ASPOSE_CLIENT_SECRET from FILE (they are never "
        "taken as flags)",
    )
    group.add_argument("--ca-file", metavar="FILE", help="trust the CA bundle in FILE for TLS")
    group.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="allow credentials over plain http:// to a host that is not this machine",
    )
    group.add_argument(
        "--retries",
        type=_whole_number,
        default=DEFAULT_RETRY.max_attempts - 1,
        metavar="N",
        help="retry a request that failed in a way worth retrying at most N times "
        "(never a submit that may have reached the server)",
    )
    # Given after the verb; SUPPRESS keeps a -v given before the verb in force.
    _add_verbose(options, default=argparse.SUPPRESS)
    return options


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _whole_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _exit_codes() -> str:
    return "exit codes:\n" + "\n".join(f"  {code.value:<4} {MEANINGS[code]}" for code in ExitCode)


_REPORT_EXAMPLES = """examples:
  aiotts report audio/aiotts.db
  aiotts report audio/aiotts.shard-*-of-8.db --summary | jq .states
  aiotts report audio/aiotts.shard-*-of-8.db --retry-ids | aiotts fetch --ids-file - --out audio/
  aiotts report audio/aiotts.db --json | jq -r 'select(.state != "done") | .id'
  aiotts report old/manifest.jsonl audio/aiotts.db      # the later record wins per id
"""
_FETCH_EXAMPLES = """\
examples:
  aiotts fetch TTS0a1b2-... TTS3c4d5-... --out audio/
  aiotts fetch --ids-file ids.txt --out audio/ --concurrency 64
  aiotts fetch --ids-file ids.txt --out audio/ --resume      # after Ctrl-C or failures
  cat ids.txt | aiotts fetch --ids-file - --out audio/ --json | jq .state
  aiotts report audio/aiotts.db --json | grep '"failed"'    # what the record holds
  aiotts fetch --ids-file ids.txt --out audio/ --processes 4  # every core of this machine
  aiotts fetch --ids-file ids.txt --out /shared/audio --shard auto --shards 16  # a job array
"""

_SUBMIT_EXAMPLES = """\
examples:
  aiotts submit "Read this text aloud"            # prints the task id
  aiotts submit --file story.txt --wait --out audio/
"""

_SAY_EXAMPLES = """\
examples:
  aiotts say "Hello there" -o hello.wav
  aiotts say "Hello there" -o hello.wav --trial
"""

_STATUS_EXAMPLES = """\
examples:
  aiotts status TTS0a1b2-...
  aiotts status TTS0a1b2-... --json
"""

_CANCEL_EXAMPLES = """\
example:
  aiotts cancel TTS0a1b2-...     # exit 1 if the server knows no such task
"""


def build_parser() -> argparse.ArgumentParser:
    from aiotts.cli import _commands, _demo, _records, _sharding, _synthesize
    from aiotts.emulator import _cli as emulator_cli

    parser = argparse.ArgumentParser(
        prog="aiotts",
        description="Bulk client for the Aspose.OCR Cloud text-to-speech queue.",
        epilog=_exit_codes() + "\n\nRun 'aiotts VERB --help' for the options of each verb.",
        **_parser_options(),
    )
    parser.add_argument("--version", action="version", version=f"aiotts {__version__}")
    _add_verbose(parser, default=False)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    connection = _connection_options()

    def verb(name: str, help_text: str, epilog: str | None = None) -> argparse.ArgumentParser:
        return verbs.add_parser(
            name,
            parents=[connection],
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            epilog=epilog,
            **_parser_options(),
        )

    fetch = verb("fetch", "fetch many results into a folder, with a manifest", _FETCH_EXAMPLES)
    fetch.add_argument("ids", nargs="*", metavar="ID", help="task ids")
    fetch.add_argument(
        "--ids-file", metavar="FILE", help="read ids from FILE, one per line ('-': standard input)"
    )
    fetch.add_argument("--out", required=True, metavar="DIR", help="the folder for the WAV files")
    fetch.add_argument(
        "--concurrency",
        type=_positive_int,
        default=32,
        metavar="N",
        help="ask about at most N tasks at once",
    )
    fetch.add_argument(
        "--rate", type=_positive_float, metavar="N", help="send at most N requests a second"
    )
    fetch.add_argument(
        "--timeout",
        type=_positive_float,
        default=3600.0,
        metavar="SECONDS",
        help="give up on a task that has not ended after SECONDS",
    )
    fetch.add_argument(
        "--batch-timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="stop the whole batch after SECONDS; what has not ended is recorded as expired",
    )
    fetch.add_argument(
        "--manifest",
        metavar="FILE",
        help=(
            "the record of outcomes: a store if FILE ends in .db, .sqlite or .sqlite3, "
            "else a JSONL manifest (default: DIR/aiotts.db, importing DIR/manifest.jsonl "
            "once when it exists)"
        ),
    )
    fetch.add_argument(
        "--resume", action="store_true", help="skip the ids the manifest records as done"
    )
    fetch.add_argument(
        "--retry-failed",
        action="store_true",
        help="with --resume: ask again about ids that ended failed or missing",
    )
    output = fetch.add_mutually_exclusive_group()
    output.add_argument(
        "--json",
        action="store_true",
        help="print one JSON line per outcome on standard output, and nothing else",
    )
    output.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar and no table: only failures and a one-line summary",
    )
    fetch.add_argument(
        "--durable", action="store_true", help="fsync each file before it takes its name"
    )
    _sharding.add_shard_arguments(fetch)
    fetch.set_defaults(run=_commands.fetch)

    synthesize = verb(
        "synthesize", "turn many texts into WAV files named after their keys", _synthesize.EXAMPLES
    )
    _synthesize.add_arguments(
        synthesize, positive_int=_positive_int, positive_float=_positive_float
    )
    synthesize.set_defaults(run=_synthesize.synthesize)

    submit = verb("submit", "submit a text and print its task id", _SUBMIT_EXAMPLES)
    submit.add_argument("text", nargs="?", metavar="TEXT", help="the text to convert")
    submit.add_argument(
        "--file", metavar="FILE", help="read the text from FILE ('-': standard input)"
    )
    submit.add_argument(
        "--wait", action="store_true", help="wait for the result and save it as DIR/ID.wav"
    )
    submit.add_argument(
        "--out", metavar="DIR", help="with --wait: the folder to save into (default: .)"
    )
    submit.add_argument(
        "--timeout",
        type=_positive_float,
        default=600.0,
        metavar="SECONDS",
        help="with --wait: wait at most SECONDS for the result",
    )
    submit.set_defaults(run=_commands.submit)

    say = verb("say", "submit a text, wait for it and save the WAV file", _SAY_EXAMPLES)
    say.add_argument("text", metavar="TEXT", help="the text to convert")
    say.add_argument("-o", "--output", required=True, metavar="FILE", help="the WAV file to write")
    say.add_argument(
        "--timeout",
        type=_positive_float,
        default=600.0,
        metavar="SECONDS",
        help="wait at most SECONDS for the result",
    )
    say.set_defaults(run=_commands.say)

    status = verb("status", "show a task's status", _STATUS_EXAMPLES)
    status.add_argument("id", metavar="ID", help="the task id")
    status.add_argument("--json", action="store_true", help="print the status as one JSON line")
    status.add_argument(
        "--timeout",
        type=_positive_float,
        default=300.0,
        metavar="SECONDS",
        help="give up when the server has not answered after this many seconds (default 300)",
    )
    status.set_defaults(run=_commands.status)

    cancel = verb("cancel", "cancel a task and report what the server answered", _CANCEL_EXAMPLES)
    cancel.add_argument("id", metavar="ID", help="the task id")
    cancel.add_argument(
        "--timeout",
        type=_positive_float,
        default=300.0,
        metavar="SECONDS",
        help="give up when each of its requests has not been answered after this many seconds "
        "(default 300)",
    )
    cancel.set_defaults(run=_commands.cancel)

    report = verbs.add_parser(
        "report",
        help="print what records hold: ids and MB per state, the ids to retry",
        description=(
            "Print what one or more records of fetches hold (stores or JSONL manifests, of "
            "shards, processes or runs; later ones win per id, as a resume would read them): "
            "ids and MB per state, when the outcomes came, and the ids left to retry; or "
            "with --json the last line per id, --summary the summary as JSON, --retry-ids "
            "the ids to retry."
        ),
        epilog=_REPORT_EXAMPLES,
        **_parser_options(),
    )
    report.add_argument("records", nargs="+", metavar="RECORD", help="a store or JSONL manifest")
    shown_as = report.add_mutually_exclusive_group()
    shown_as.add_argument(
        "--json",
        action="store_true",
        help="print the last JSON line per id on standard output (the summary on standard error)",
    )
    shown_as.add_argument(
        "--summary",
        action="store_true",
        help="print the summary alone, as one JSON object on standard output",
    )
    shown_as.add_argument(
        "--retry-ids",
        action="store_true",
        help="print only the ids that fetch --resume would ask again, one a line",
    )
    report.add_argument(
        "--retry-failed",
        action="store_true",
        help="with --retry-ids: also the ids that ended failed or missing, as fetch --resume "
        "--retry-failed would ask again",
    )
    report.set_defaults(run=_records.report)

    emulator = verbs.add_parser(
        "emulator",
        help="run the API emulator on this machine",
        description="Run the API emulator on this machine (no account, no network).",
        epilog="example:\n  aiotts emulator --port 8080 --server-error-share 0.1",
        **_parser_options(),
    )
    emulator_cli.add_arguments(emulator)
    emulator.set_defaults(run=None, emulator_run=emulator_cli.run)

    demo = verbs.add_parser(
        "demo",
        help="run the whole job against an embedded emulator",
        description="Submit texts to an emulator in this process, fetch them all, save WAVs.",
        epilog="example:\n  aiotts demo --count 100 --out demo-audio/",
        **_parser_options(),
    )
    demo.add_argument(
        "--count", type=_positive_int, default=240, metavar="N", help="convert N texts"
    )
    demo.add_argument("--out", default="aiotts-demo", metavar="DIR", help="the folder for the WAVs")
    demo.add_argument(
        "--seed", type=int, default=7, metavar="N", help="the seed of the emulator's randomness"
    )
    _add_verbose(demo, default=argparse.SUPPRESS)
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


class _TaskIdFilter(logging.Filter):
    """Names the task each log line is about (``-`` for none), as it is safe to show."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.task_id = shown_id(getattr(record, "task_id", None) or log_task_id.get())
        return True


def _configure_logging(verbose: bool) -> None:
    """``AIOTTS_LOG`` first, then ``-v``: each logger gets one handler, so no line is
    written twice. With both, aiotts's records go out as ``AIOTTS_LOG`` says and ``-v``
    adds aiohttp's."""
    from_env = configure_from_env()
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.addFilter(_TaskIdFilter())
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(name)s %(levelname)s [%(task_id)s] %(message)s")
        )
        for name in ("aiohttp",) if from_env else ("aiotts", "aiohttp"):
            logger = logging.getLogger(name)
            logger.setLevel(logging.DEBUG)
            logger.addHandler(handler)


def _the_error(error: BaseException) -> BaseException:
    """The error to report for one that ended a command: ours, if a group holds one."""
    if not isinstance(error, BaseExceptionGroup):
        return error
    leaves = error.exceptions
    for leaf in leaves:
        if isinstance(_the_error(leaf), AiottsError):
            return _the_error(leaf)
    return _the_error(leaves[0]) if leaves else error


def _report(error: BaseException, *, verbose: bool) -> int:
    """One line on standard error for the error that ended a command; its exit code."""
    if isinstance(error, AiottsError):
        print(f"aiotts: {shown(str(error))}", file=sys.stderr)
        return exit_code_for(error)
    # Not one of ours: a bug, or a failure nothing mapped. Still one line, and a code.
    print(
        f"aiotts: unexpected error: {type(error).__name__}: {shown(str(error))}"
        + ("" if verbose else " (run with -v for the traceback)"),
        file=sys.stderr,
    )
    if verbose:
        traceback.print_exception(error, file=sys.stderr)
    return ExitCode.SERVICE


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.run is None:  # the emulator keeps its own loop and logging
        code: int = args.emulator_run(args)
        return code
    verbose = bool(getattr(args, "verbose", False))
    # A verb sets ``args.interrupted`` to what Ctrl-C should say once it has something
    # worth saying (single-task verbs: the id already submitted).
    args.interrupted = (
        "interrupted: work in flight was recorded; run the same command with --resume to continue"
        if args.verb == "fetch"
        else "interrupted"
    )
    try:
        _configure_logging(verbose)
        return run_async(args.run(args))
    except KeyboardInterrupt:
        print(args.interrupted, file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception as error:  # every error becomes one line and an exit code
        return _report(_the_error(error), verbose=verbose)
