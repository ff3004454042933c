"""Instructions per task on compare.py (a)'s path, counted by valgrind: what load does not move.

On a shared machine, CPU time moves by tens of percent from one run to the next; the
instructions a process executes do not. This script counts them with valgrind's callgrind
for each client below, fetching N completed tasks of 100 KB from the emulator (which runs
in a process of its own, not counted), at two values of N, and reports the difference per
task: start-up and imports are the same in both runs and drop out.

* ``bare aiohttp``: compare.py (a)'s floor, each raw body streamed into a file, 64 in
  flight, no JSON, no Base64;
* ``decoding floor``: compare.py (a)'s row of that name, bare aiohttp that also decodes
  each answer's Base64 ``data`` from the stream into a temporary file renamed once whole:
  the least any client that saves WAV files does;
* ``bare aiohttp, aiotts's settings``: the same with the session aiotts makes (its
  timeouts, its ``User-Agent``, 32 connections, a 256 KiB read buffer, no redirects, the
  URL built once per task): what aiohttp itself costs aiotts;
* ``aiotts``: ``fetch_many`` with its defaults;
* ``aiotts, no HTTP``: the same batch with each request answered ``Completed`` at once,
  no body and no file: the batch and the scheduler alone (admission, the pacer, the
  state machine, the outcome and its hand-off to the caller);
* ``scanner``: ``EnvelopeScanner`` fed one emulator answer whole, per answer, and
  ``pybase64`` decoding its audio alone.

Valgrind counts each byte a ``memcpy`` moves as about one instruction, so copies weigh more
here than in CPU time; they are the same in every HTTP client above (the same bodies).

Run: ``python benchmarks/bench_instructions.py`` (needs ``valgrind``; about 8 minutes).
For information: no targets, exits 2 without valgrind.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import KB, Table, get_token, machine, scratch_folder

TTS_PATH = "/v5.0/ocr/ConvertTextToSpeech"
CHUNK = 256 * 1024
WORKERS: dict[str, Callable[[dict[str, Any], int], None]] = {}


def worker(name: str) -> Callable[[Callable[[dict[str, Any], int], None]], Any]:
    def register(function: Callable[[dict[str, Any], int], None]) -> Any:
        WORKERS[name] = function
        return function

    return register


# -- the clients, each run in a process of its own under valgrind ----------------------------


@worker("bare")
def bare(spec: dict[str, Any], n: int) -> None:
    from compare import bare_client

    bare_client({**spec, "ids": spec["ids"][:n], "loop": "uvloop"})


@worker("floor")
def decoding_floor(spec: dict[str, Any], n: int) -> None:
    from compare import floor_client

    floor_client({**spec, "ids": spec["ids"][:n], "loop": "uvloop"})


@worker("bare-settings")
def bare_with_aiotts_settings(spec: dict[str, Any], n: int) -> None:
    """compare.py's ``bare_client`` on the session aiotts makes, each URL built once."""
    import asyncio

    import aiohttp
    import uvloop
    import yarl

    from aiotts._config import Timeouts
    from aiotts._network import user_agent
    from aiotts._session import client_timeout

    out, base = Path(spec["out"]), yarl.URL(spec["url"] + TTS_PATH)
    token = get_token(spec["url"], spec["client_id"], spec["client_secret"])
    queue = iter(spec["ids"][:n])

    async def main() -> None:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=32, enable_cleanup_closed=True),
            timeout=client_timeout(Timeouts()),
            headers={"User-Agent": user_agent()},
            read_bufsize=CHUNK,
            raise_for_status=False,
            auto_decompress=True,
        ) as session:

            async def bare_worker() -> None:
                for task_id in queue:
                    async with session.request(
                        "GET",
                        base.with_query(id=task_id),
                        headers={"Authorization": "Bearer " + token},
                        allow_redirects=False,
                    ) as answer:
                        with open(out / f"{task_id}.body", "wb", buffering=0) as file:
                            async for piece in answer.content.iter_chunked(CHUNK):
                                file.write(piece)

            await asyncio.gather(*(bare_worker() for _ in range(32)))

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def _fetch_all(client: Any, ids: list[str], out: str, *, saved: bool) -> None:
    """``fetch_many`` with ``client`` over ``ids``; every id must end (and be saved)."""
    import asyncio

    import uvloop

    async def main() -> None:
        ended = done = 0
        async with client:
            async for outcome in client.fetch_many(ids, out):
                ended += 1
                done += outcome.ok
        if ended != len(ids) or (saved and done != len(ids)):
            raise SystemExit(f"{ended} of {len(ids)} ended, {done} saved")

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


@worker("aiotts")
def aiotts_fetch(spec: dict[str, Any], n: int) -> None:
    from aiotts import TTSClient

    client = TTSClient(spec["client_id"], spec["client_secret"], base_url=spec["url"])
    _fetch_all(client, spec["ids"][:n], spec["out"], saved=True)


@worker("no-http")
def aiotts_without_http(spec: dict[str, Any], n: int) -> None:
    from aiotts import TTSClient
    from aiotts._models import TaskResult, TaskStatus
    from aiotts._session import HttpSession
    from aiotts._transfer import Answer

    async def answered_at_once(
        self: HttpSession, kind: str, method: str, url: object, handle: Any, **_: object
    ) -> Answer:
        task_id = handle.keywords["task_id"]
        return Answer(TaskResult(task_id=task_id, status=TaskStatus.COMPLETED, response_code="Ok"))

    HttpSession.request = answered_at_once  # type: ignore[method-assign]
    ids = [f"TTS{number:08d}-0000-4000-8000-000000000000" for number in range(n)]
    client = TTSClient("id", "secret", base_url="http://127.0.0.1:9")
    _fetch_all(client, ids, spec["out"], saved=False)


@worker("scanner")
def scanner(spec: dict[str, Any], n: int) -> None:
    from aiotts._decode import EnvelopeScanner

    body = Path(spec["body"]).read_bytes()
    for _ in range(n):
        scan = EnvelopeScanner()
        scan.feed(body)
        scan.finish()


@worker("base64")
def base64_alone(spec: dict[str, Any], n: int) -> None:
    import orjson
    import pybase64

    data = orjson.loads(Path(spec["body"]).read_bytes())["results"][0]["data"].encode()
    for _ in range(n):
        pybase64.b64decode(data, validate=True)


# -- the parent ---------------------------------------------------------------------------------


def run(name: str, n: int, spec_file: Path, *, counted: bool) -> int:
    """Run the worker ``name`` over ``n`` tasks; under valgrind if ``counted``, and then
    the instructions it executed, start-up included (else 0)."""
    command = [sys.executable, __file__, "--worker", name, "--n", str(n), "--spec", str(spec_file)]
    if counted:
        command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or (counted and found is None):
        raise SystemExit(f"{name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return int(found.group(1)) if found is not None else 0


def fetch_one_body(url: str, task_id: str, client_id: str, client_secret: str) -> bytes:
    import urllib.request

    token = get_token(url, client_id, client_secret)
    request = urllib.request.Request(
        f"{url}{TTS_PATH}?id={task_id}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body: bytes = response.read()
    return body


ROWS = (
    ("bare", "bare aiohttp (compare.py (a)'s floor)"),
    ("floor", "decoding floor (bare aiohttp + WAV decoded, renamed)"),
    ("bare-settings", "bare aiohttp, aiotts's settings"),
    ("aiotts", "aiotts"),
    ("no-http", "aiotts, no HTTP (batch and scheduler)"),
    ("scanner", "scanner, one answer"),
    ("base64", "pybase64, the answer's audio alone"),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--small", type=int, default=100, help="tasks of the first run (100)")
    parser.add_argument("--large", type=int, default=400, help="tasks of the second run (400)")
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        WORKERS[args.worker](json.loads(args.spec.read_text()), args.n)
        return 0
    if args.large <= args.small:
        parser.error("--large must be more than --small")
    if not args.smoke and shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2

    from aiotts.emulator import (
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        EmulatorConfig,
        EmulatorProcess,
    )

    per_task: dict[str, float] = {}
    # --smoke: each worker once over 3 tasks, without valgrind; it says what it wrote.
    sizes = (3,) if args.smoke else (args.small, args.large)
    with (
        EmulatorProcess(EmulatorConfig(seed=1, audio_bytes=100 * KB)) as emulator,
        tempfile.TemporaryDirectory(prefix="bench-instructions-") as scratch,
    ):
        ids = emulator.create_tasks(max(sizes), ready_after=0)
        body_file = Path(scratch) / "answer.json"
        body_file.write_bytes(
            fetch_one_body(emulator.url, ids[0], DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
        )
        for key, label in ROWS:
            counts = []
            for n in sizes:
                with scratch_folder(f"instructions-{key}-") as out:
                    spec = {
                        "url": emulator.url,
                        "client_id": DEFAULT_CLIENT_ID,
                        "client_secret": DEFAULT_CLIENT_SECRET,
                        "ids": ids,
                        "out": str(out),
                        "body": str(body_file),
                    }
                    spec_file = Path(scratch) / "spec.json"
                    spec_file.write_text(json.dumps(spec))
                    counts.append(run(key, n, spec_file, counted=not args.smoke))
                    written = sorted(path.suffix for path in out.iterdir())
            if args.smoke:
                print(f"  {key}: wrote {' '.join(written) or 'nothing'}", flush=True)
                continue
            per_task[key] = (counts[1] - counts[0]) / (args.large - args.small)
            print(f"  {label}: {per_task[key] / 1e6:.3f} M a task", flush=True)
    if args.smoke:
        return 0

    floor = per_task["bare"]
    rows = [
        [label, f"{per_task[key] / 1e6:.3f}", f"{per_task[key] / floor:.2f}x"]
        for key, label in ROWS
    ]
    print()
    print(Table(["what (per task)", "M instructions", "vs bare aiohttp"], rows).text())
    own = per_task["aiotts"] - per_task["bare-settings"]
    room = 1.25 * floor - per_task["bare-settings"]
    print(
        f"\naiotts's own: {own / 1e6:.3f} M a task (aiotts minus bare aiohttp with its "
        f"settings); at 1.25x the floor it could spend {room / 1e6:.3f} M"
    )
    print(f"\n{machine()}; runs of {args.small} and {args.large} tasks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
