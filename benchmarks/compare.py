"""aiotts, the vendor's SDK and a hand-written asyncio script, side by side in one run.

The emulator runs in its own process, and each client in a process of its own (this
script re-run as ``--worker NAME``), so the CPU time (user + system, every thread, of the
work alone: imports and interpreter start-up excluded) and the peak RSS (``ru_maxrss`` of
the whole process) of each are its own. Every client gets a fresh emulator started with
the same seed, so all three see the same task ids with the same schedule relative to their
own start, and the emulator's request counts are that client's alone.

The clients, each written the way its users write it:

* ``aiotts``: ``async with TTSClient(...)`` and ``async for outcome in
  client.fetch_many(ids, folder)``, every setting at its default;
* ``vendor SDK``: ``aspose-ocr-cloud==24.11.0``, a token from a plain POST (the SDK cannot
  get one), then a ``ThreadPoolExecutor(16)`` over the ids, each: loop
  ``get_convert_text_to_speech``; when ``Completed``, ``base64.b64decode`` and a file
  write; when ``Pending``/``Processing``, ``time.sleep(2)``;
* ``script``: aiohttp, ``asyncio.gather`` over the ids with a semaphore of 64 around each
  GET: ``orjson.loads`` of the whole body; when ``Completed``, ``base64.b64decode`` and a
  file write; otherwise ``await asyncio.sleep(1)``.

The two asyncio clients run on the same event loop: uvloop (aiotts's command line uses it
when installed) unless ``--loop asyncio``. The files go to tmpfs (``/dev/shm``) unless
``--out-dir`` says otherwise: every client creates one file per task, and on a virtual
machine's disk that alone can cost from tens of microseconds to most of a millisecond of
CPU per file, varying from minute to minute, a cost that says nothing about the client
(the run measures it in both places and prints it). On tmpfs an fsync costs next to
nothing, so aiotts's durability (one fsync per file, its default) is priced here only by
its hand-off to a thread.

Scenarios (``--quick``: 200 tasks for a and b, 10 for c, 1,000 and a 5 s window for d,
500 texts for e):

a. bulk retrieval: 2,000 tasks completed before the client starts, 100 KB of WAV each;
b. a fresh batch: 2,000 tasks of 100 KB, each Pending until 0.5-3 s (uniform) after the
   client is handed its ids; the delay is the moment its file landed minus the moment it
   became ready, both on the machine's monotonic clock (the emulator's clock);
c. large results: 100 tasks of 20 MB of WAV, completed;
d. a long queue: 10,000 tasks of 100 KB, of which 10 % become ready at uniform times in
   the first two thirds of a fixed window (24 s) and the rest stay Pending for a day.
   Every client stops at the end of the window (aiotts: ``batch_timeout``; the script:
   ``asyncio.timeout``; the SDK: each worker checks the deadline before each request and
   sleeps no longer than it), and CPU per task is its CPU seconds / 10,000.
e. submit and fetch: each client submits 2,000 texts of 20-500 characters itself into the
   emulator's queue model (24 workers, 0.1 s + 1 ms a character each, lognormal noise;
   2 KB of WAV each, so that no speech is synthesised) and saves every result: aiotts's
   ``client.synthesize`` with its defaults (16 submits at a time, each task polled as soon
   as its id comes back), the vendor SDK's ``ThreadPoolExecutor(16)`` submitting every
   text, then the same sleep-and-poll as above, and the script submitting every text
   (``asyncio.gather``, semaphore 64), then the same 1 s poll. GETs per task are the
   emulator's count, the delay is from the moment the emulator completed a task (its
   ``ready_at`` in ``/_emulator/records``) to the file, and the wall time is end to end.

The targets are judged on aiotts with default settings. In (a), one target is a ratio to a
reference that runs in every run of (a), ``--quick`` and ``--no-extra`` included: bare
aiohttp streaming each raw body into a file with no JSON and no Base64, the floor for any
client (aiotts's CPU per task at most 1.25x its own). On a shared machine one pair of runs
moves by tens of percent, so (a) runs aiotts and bare aiohttp in rounds (``--rounds``:
5, ``--quick`` 3), back to back, each round starting with the other one, and judges the
median of the rounds' ratios; the table shows the round at that median, and the rounds'
spread is printed. Rows for information (a full run only; ``--no-extra`` skips them): in
(a), the decoding floor (bare aiohttp that also does what every client that saves WAV files
must: the ``data`` string decoded from the stream into a temporary file, renamed once whole;
nothing checked besides) and aiotts with ``durable=True`` (fsync per file); in (b), aiotts
polling every 0.4 s with no poll budget; in (d), aiotts with its default policy but no poll
budget; in (e), aiotts with ``PollPolicy(predict=False)``.

Run: ``python benchmarks/compare.py`` (about 5 minutes on 2 cores; ``--quick``: under a
minute). The table is printed, and a full run of every scenario also writes it as
Markdown into ``benchmarks/RESULTS.md``. Exits 1 if a target fails.
"""

from __future__ import annotations

import argparse
import datetime
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    KB,
    MB,
    Check,
    Result,
    Spec,
    Table,
    checks_table,
    count_files,
    default_out_dir,
    file_cost,
    fmt,
    machine,
    process_cpu,
    ratio,
    run_loop,
    run_worker,
    scratch_folder,
    worker_main,
)

SCRIPT = Path(__file__).resolve()
RESULTS = SCRIPT.with_name("RESULTS.md")
TTS_PATH = "/v5.0/ocr/ConvertTextToSpeech"
DAY = 86_400.0
SDK_THREADS = 16
SDK_SLEEP = 2.0
SCRIPT_CONCURRENCY = 64
SCRIPT_SLEEP = 1.0

# Targets, each a ratio in the same run.
A_CPU_VS_SDK = 1 / 4
A_CPU_VS_SCRIPT = 1 / 2
A_CPU_VS_BARE = 1.25
A_ROUNDS = {"full": 5, "quick": 3, "smoke": 2}
"""Rounds of aiotts against bare aiohttp in (a), by size, unless ``--rounds`` says."""
B_FINISH_LAG = 0.5
C_RSS_VS_PEERS = 1 / 10
D_CPU_VS_SCRIPT = 1 / 2
E_GETS_VS_SCRIPT = 1 / 2


# -- the clients (each runs in its own process) -------------------------------------------------


def aiotts_client(spec: Spec) -> Result:
    from aiotts import PollPolicy, TTSClient

    ids: list[str] = spec["ids"]
    poll = PollPolicy(**spec["poll"]) if spec.get("poll") else None

    async def main() -> Result:
        landed: dict[str, float] = {}
        ended: dict[str, int] = {}
        async with TTSClient(
            spec["client_id"], spec["client_secret"], base_url=spec["url"], durable=spec["durable"]
        ) as client:
            batch = client.fetch_many(ids, spec["out"], batch_timeout=spec["window"], poll=poll)
            async for outcome in batch:
                if outcome.ok:
                    landed[outcome.task_id] = time.monotonic()
                ended[outcome.state.value] = ended.get(outcome.state.value, 0) + 1
            requests = dict(batch.statistics().requests)
        return {"landed": landed, "ended": ended, "own_count": requests}

    return run_loop(main(), spec["loop"])


def sdk_client(spec: Spec) -> Result:
    import base64
    from concurrent.futures import ThreadPoolExecutor

    from aspose_ocr_cloud import (
        ApiClient,
        Configuration,
        ConvertTextToSpeechApi,
        TTSTaskStatus,
    )

    from _common import get_token

    url, out = spec["url"], Path(spec["out"])
    deadline = time.monotonic() + spec["window"] if spec["window"] else math.inf
    token = get_token(url, spec["client_id"], spec["client_secret"])
    api = ConvertTextToSpeechApi(ApiClient(Configuration(host=url, access_token=token)))
    landed: dict[str, float] = {}
    waiting = (TTSTaskStatus.PENDING, TTSTaskStatus.PROCESSING)

    def fetch(task_id: str) -> str:
        while time.monotonic() < deadline:
            response = api.get_convert_text_to_speech(id=task_id)
            if response.task_status == TTSTaskStatus.COMPLETED:
                audio = base64.b64decode(response.results[0].data)
                with open(out / f"{task_id}.wav", "wb") as file:
                    file.write(audio)
                landed[task_id] = time.monotonic()
                return "done"
            if response.task_status not in waiting:
                return "failed"
            time.sleep(max(0.0, min(SDK_SLEEP, deadline - time.monotonic())))
        return "expired"

    with ThreadPoolExecutor(SDK_THREADS) as pool:
        states = list(pool.map(fetch, spec["ids"]))
    ended = {state: states.count(state) for state in set(states)}
    return {"landed": landed, "ended": ended}


def script_client(spec: Spec) -> Result:
    import asyncio
    import base64

    import aiohttp
    import orjson

    url, out, window = spec["url"], Path(spec["out"]), spec["window"]

    async def main() -> Result:
        landed: dict[str, float] = {}
        ended: dict[str, int] = {}
        async with aiohttp.ClientSession() as session:
            form = {
                "grant_type": "client_credentials",
                "client_id": spec["client_id"],
                "client_secret": spec["client_secret"],
            }
            async with session.post(url + "/connect/token", data=form) as response:
                token = orjson.loads(await response.read())["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            semaphore = asyncio.Semaphore(SCRIPT_CONCURRENCY)

            async def fetch(task_id: str) -> None:
                while True:
                    async with (
                        semaphore,
                        session.get(url + TTS_PATH, params={"id": task_id}, headers=headers) as r,
                    ):
                        body = orjson.loads(await r.read())
                    status = body["taskStatus"]
                    if status == "Completed":
                        audio = base64.b64decode(body["results"][0]["data"])
                        with open(out / f"{task_id}.wav", "wb") as file:
                            file.write(audio)
                        landed[task_id] = time.monotonic()
                        ended["done"] = ended.get("done", 0) + 1
                        return
                    if status not in ("Pending", "Processing"):
                        ended["failed"] = ended.get("failed", 0) + 1
                        return
                    await asyncio.sleep(SCRIPT_SLEEP)

            try:
                async with asyncio.timeout(window):
                    await asyncio.gather(*(fetch(task_id) for task_id in spec["ids"]))
            except TimeoutError:
                ended["expired"] = len(spec["ids"]) - sum(ended.values())
        return {"landed": landed, "ended": ended}

    return run_loop(main(), spec["loop"])


def bare_client(spec: Spec) -> Result:
    """The floor, for reference: bare aiohttp streams each raw body into a file (no JSON,
    no Base64), 64 in flight; tasks must be completed already."""
    return _bare(spec, decode=False)


def _bare(spec: Spec, *, decode: bool) -> Result:
    """Bare aiohttp, 64 in flight: each raw body into a file, or (``decode``) the WAV it
    holds into a temporary file renamed once whole."""
    import asyncio
    import os

    import aiohttp
    import orjson

    url, out = spec["url"], Path(spec["out"])
    chunk = 256 * 1024

    async def main() -> Result:
        landed: dict[str, float] = {}
        async with aiohttp.ClientSession(read_bufsize=chunk) as session:
            form = {
                "grant_type": "client_credentials",
                "client_id": spec["client_id"],
                "client_secret": spec["client_secret"],
            }
            async with session.post(url + "/connect/token", data=form) as response:
                token = orjson.loads(await response.read())["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            queue = iter(spec["ids"])

            async def worker() -> None:
                for task_id in queue:
                    params = {"id": task_id}
                    async with session.get(url + TTS_PATH, params=params, headers=headers) as r:
                        if not decode:
                            with open(out / f"{task_id}.body", "wb", buffering=0) as file:
                                async for piece in r.content.iter_chunked(chunk):
                                    file.write(piece)
                        else:
                            final = f"{out}{os.sep}{task_id}.wav"
                            with open(final + ".part", "wb", buffering=0) as file:
                                audio = StreamedAudio(file)
                                async for piece in r.content.iter_chunked(chunk):
                                    audio.feed(piece)
                                audio.finish()
                            os.replace(final + ".part", final)
                    landed[task_id] = time.monotonic()

            await asyncio.gather(*(worker() for _ in range(SCRIPT_CONCURRENCY)))
        return {"landed": landed, "ended": {"done": len(landed)}}

    return run_loop(main(), spec["loop"])


DATA_KEY = b'"data":"'
COMPLETED = b'"taskStatus":"Completed"'


class StreamedAudio:
    """The least a client that saves WAV files must do with a body, fed piece by piece:
    find the Base64 ``data`` string, decode it (strictly) into ``file`` where it lies, in
    multiples of 4 characters, and stop at its closing quote. No other check: it trusts
    the envelope's shape (``taskStatus`` before ``results``, one result, no escapes)."""

    __slots__ = ("_carry", "_decode", "_done", "_file", "_head", "_in_data")

    def __init__(self, file: Any) -> None:
        import pybase64

        self._decode = pybase64.b64decode  # imported once a body, not once a read
        self._file = file
        self._head = b""  # the body before the data string, if a read ended within it
        self._carry = b""  # Base64 characters not yet a multiple of 4
        self._in_data = False
        self._done = False

    def feed(self, piece: bytes) -> None:
        if self._done:
            return
        start = 0
        if not self._in_data:
            if self._head:
                piece = self._head + piece  # a read ended within the head: rare, and small
            at = piece.find(DATA_KEY)
            if at < 0:
                self._head = piece
                return
            if piece.find(COMPLETED, 0, at) < 0:
                raise ValueError("not a Completed answer")
            self._in_data, self._head, start = True, b"", at + len(DATA_KEY)
        end = piece.find(b'"', start)
        stop = len(piece) if end < 0 else end
        self._done = end >= 0
        if self._carry:  # complete the quad a read cut
            take = min(4 - len(self._carry), stop - start)
            self._carry += piece[start : start + take]
            start += take
            if len(self._carry) == 4:
                self._file.write(self._decode(self._carry, validate=True))
                self._carry = b""
        whole = (stop - start) & ~3
        if whole:
            run = memoryview(piece)[start : start + whole]
            self._file.write(self._decode(run, validate=True))
        if start + whole < stop:
            self._carry = piece[start + whole : stop]

    def finish(self) -> None:
        if not self._done or self._carry:
            raise ValueError("the data string ended early or is not a multiple of 4")


def floor_client(spec: Spec) -> Result:
    """The decoding floor, for information: ``bare_client`` that writes each task's WAV
    file as every client must, decoded from the stream (``StreamedAudio``) into a temporary
    file renamed once whole; tasks must be completed already."""
    return _bare(spec, decode=True)


# -- scenario (e): the client submits the texts itself, then fetches ----------------------------


def _aiotts_synthesize(client: Any, texts: list[tuple[str, str]], out_dir: str) -> Any:
    """aiotts's side of (e): ``client.synthesize`` with its defaults (submits and fetches
    pipelined: each task is polled as soon as its id exists); the async iterable of
    outcomes."""
    return client.synthesize(texts, out_dir)


def aiotts_submit_client(spec: Spec) -> Result:
    from aiotts import PollPolicy, TTSClient

    texts = [tuple(pair) for pair in spec["texts"]]
    poll = PollPolicy(**spec["poll"]) if spec.get("poll") else PollPolicy()

    async def main() -> Result:
        landed: dict[str, float] = {}
        ended: dict[str, int] = {}
        async with TTSClient(
            spec["client_id"], spec["client_secret"], base_url=spec["url"], poll=poll
        ) as client:
            async for outcome in _aiotts_synthesize(client, texts, spec["out"]):
                if outcome.ok:
                    landed[outcome.task_id] = time.monotonic()
                ended[outcome.state.value] = ended.get(outcome.state.value, 0) + 1
        return {"landed": landed, "ended": ended}

    return run_loop(main(), spec["loop"])


def sdk_submit_client(spec: Spec) -> Result:
    import base64
    from concurrent.futures import ThreadPoolExecutor

    from aspose_ocr_cloud import (
        ApiClient,
        Configuration,
        ConvertTextToSpeechApi,
        LanguageTTS,
        ResultTypeTTS,
        TTSBody,
        TTSSettings,
        TTSTaskStatus,
    )

    from _common import get_token

    url, out = spec["url"], Path(spec["out"])
    token = get_token(url, spec["client_id"], spec["client_secret"])
    api = ConvertTextToSpeechApi(ApiClient(Configuration(host=url, access_token=token)))
    landed: dict[str, float] = {}
    waiting = (TTSTaskStatus.PENDING, TTSTaskStatus.PROCESSING)
    settings = TTSSettings(language=LanguageTTS.ENGLISH, result_type=ResultTypeTTS.WAV)

    def submit(pair: list[str]) -> tuple[str, str]:
        key, text = pair
        return key, api.post_convert_text_to_speech(TTSBody(text=text, settings=settings))

    def fetch(submitted: tuple[str, str]) -> str:
        key, task_id = submitted
        while True:
            response = api.get_convert_text_to_speech(id=task_id)
            if response.task_status == TTSTaskStatus.COMPLETED:
                audio = base64.b64decode(response.results[0].data)
                with open(out / f"{key}.wav", "wb") as file:
                    file.write(audio)
                landed[task_id] = time.monotonic()
                return "done"
            if response.task_status not in waiting:
                return "failed"
            time.sleep(SDK_SLEEP)

    with ThreadPoolExecutor(SDK_THREADS) as pool:
        submitted = list(pool.map(submit, spec["texts"]))
        states = list(pool.map(fetch, submitted))
    ended = {state: states.count(state) for state in set(states)}
    return {"landed": landed, "ended": ended}


def script_submit_client(spec: Spec) -> Result:
    import asyncio
    import base64

    import aiohttp
    import orjson

    url, out = spec["url"], Path(spec["out"])

    async def main() -> Result:
        landed: dict[str, float] = {}
        ended: dict[str, int] = {}
        async with aiohttp.ClientSession() as session:
            form = {
                "grant_type": "client_credentials",
                "client_id": spec["client_id"],
                "client_secret": spec["client_secret"],
            }
            async with session.post(url + "/connect/token", data=form) as response:
                token = orjson.loads(await response.read())["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            semaphore = asyncio.Semaphore(SCRIPT_CONCURRENCY)

            async def submit(text: str) -> str:
                body = {"text": text, "settings": {"language": "English", "resultType": "Wav"}}
                async with (
                    semaphore,
                    session.post(url + TTS_PATH, json=body, headers=headers) as r,
                ):
                    return (await r.text()).strip()

            async def fetch(key: str, task_id: str) -> None:
                while True:
                    async with (
                        semaphore,
                        session.get(url + TTS_PATH, params={"id": task_id}, headers=headers) as r,
                    ):
                        body = orjson.loads(await r.read())
                    status = body["taskStatus"]
                    if status == "Completed":
                        audio = base64.b64decode(body["results"][0]["data"])
                        with open(out / f"{key}.wav", "wb") as file:
                            file.write(audio)
                        landed[task_id] = time.monotonic()
                        ended["done"] = ended.get("done", 0) + 1
                        return
                    if status not in ("Pending", "Processing"):
                        ended["failed"] = ended.get("failed", 0) + 1
                        return
                    await asyncio.sleep(SCRIPT_SLEEP)

            texts = spec["texts"]
            ids = await asyncio.gather(*(submit(text) for _, text in texts))
            await asyncio.gather(*(fetch(key, i) for (key, _), i in zip(texts, ids, strict=True)))
        return {"landed": landed, "ended": ended}

    return run_loop(main(), spec["loop"])


WORKERS: dict[str, Callable[[Spec], Result]] = {
    "aiotts": aiotts_client,
    "sdk": sdk_client,
    "script": script_client,
    "bare": bare_client,
    "floor": floor_client,
    "aiotts-submit": aiotts_submit_client,
    "sdk-submit": sdk_submit_client,
    "script-submit": script_submit_client,
}
IMPORTS = {
    "aiotts": ["aiotts", "uvloop"],
    "sdk": ["aspose_ocr_cloud", "concurrent.futures"],
    "script": ["aiohttp", "orjson", "uvloop"],
    "bare": ["aiohttp", "orjson", "uvloop"],
    "floor": ["aiohttp", "orjson", "pybase64", "uvloop"],
    "aiotts-submit": ["aiotts", "anyio", "uvloop"],
    "sdk-submit": ["aspose_ocr_cloud", "concurrent.futures"],
    "script-submit": ["aiohttp", "orjson", "uvloop"],
}


# -- scenarios ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One row: a client, with the settings it runs with."""

    key: str
    worker: str
    label: str
    poll: dict[str, Any] | None = None
    durable: bool = False


CLIENTS = (
    Variant("aiotts", "aiotts", "aiotts"),
    Variant("sdk", "sdk", "vendor SDK"),
    Variant("script", "script", "script"),
)
BARE = Variant("bare", "bare", "bare aiohttp (reference: raw bodies to files)")
FLOOR = Variant("floor", "floor", "decoding floor (bare aiohttp + WAV to a temp file, renamed)")
DURABLE = Variant("durable", "aiotts", "aiotts, durable=True (fsync per file)", durable=True)
FIXED_POLL = 0.4
TUNED_B = Variant(
    "aiotts-fixed",
    "aiotts",
    f"aiotts, tuned: fixed {FIXED_POLL:g} s poll, no budget",
    {
        "first_delay": FIXED_POLL,
        "growth": 1.0,
        "max_delay": FIXED_POLL,
        "jitter": "none",
        "budget": None,
    },
)
TUNED_D = Variant("aiotts-unpaced", "aiotts", "aiotts, no poll budget", {"budget": None})
SUBMITTING = (
    Variant("aiotts", "aiotts-submit", "aiotts"),
    Variant("sdk", "sdk-submit", "vendor SDK"),
    Variant("script", "script-submit", "script"),
)
BLIND_E = Variant(
    "aiotts-blind", "aiotts-submit", "aiotts, predict=False (the policy alone)", {"predict": False}
)


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    tasks: int
    audio_bytes: int
    ready: tuple[float, float] | None = None
    """None: completed before the client starts; else each task is ready at a uniform
    time in this range (seconds after the client is handed its ids)."""
    ready_share: float = 1.0
    """The share of tasks that ever become ready in the run; the rest stay Pending."""
    window: float | None = None
    """Every client stops after this many seconds."""
    reference: tuple[Variant, ...] = ()
    """Rows a target is judged against besides the peers: run in every run."""
    extra: tuple[Variant, ...] = ()
    """Rows for information: aiotts with other settings, or another floor (a full run only)."""
    seed: int = 1
    clients: tuple[Variant, ...] = CLIENTS
    queue: tuple[int, float, float] | None = None
    """The clients submit ``tasks`` texts themselves, into the emulator's queue model:
    (workers, seconds a task, seconds a character)."""
    text_chars: tuple[int, int] = (20, 500)
    """With ``queue``: the texts' lengths, uniform in this range."""


def texts_for(scenario: Scenario) -> list[tuple[str, str]]:
    """The (key, text) pairs a client of ``scenario`` submits: seeded, distinct, of lengths
    uniform in ``scenario.text_chars``."""
    rng = random.Random(scenario.seed)
    words = ("queue", "speech", "voice", "batch", "audio", "result", "task", "text", "wave")
    pairs = []
    for n in range(scenario.tasks):
        length = rng.randint(*scenario.text_chars)
        text = f"Text {n}:"
        while len(text) < length:
            text += " " + rng.choice(words)
        pairs.append((f"text-{n:05d}", text[:length]))
    return pairs


def scenarios(size: str) -> list[Scenario]:
    """The four scenarios at ``size``: ``full``, ``quick`` or ``smoke`` (tiny, for the test
    that checks this script runs; its figures mean nothing)."""
    n, big, queue, window = {
        "full": (2_000, 100, 10_000, 24.0),
        "quick": (200, 10, 1_000, 5.0),
        "smoke": (20, 2, 100, 1.5),
    }[size]
    texts, workers, per_task, per_char = {
        "full": (2_000, 24, 0.1, 0.001),
        "quick": (500, 24, 0.1, 0.001),
        "smoke": (40, 8, 0.02, 0.0002),
    }[size]
    big_bytes = MB if size == "smoke" else 20 * MB
    return [
        Scenario(
            "a",
            f"bulk retrieval: {n:,} completed tasks, 100 KB each",
            n,
            100 * KB,
            reference=(BARE,),
            extra=(FLOOR, DURABLE),
        ),
        Scenario(
            "b",
            f"a fresh batch: {n:,} tasks of 100 KB, each ready 0.5-3 s after the start",
            n,
            100 * KB,
            ready=(0.5, 3.0) if size != "smoke" else (0.1, 0.5),
            extra=(TUNED_B,),
        ),
        Scenario(
            "c",
            f"large results: {big:,} completed tasks of {big_bytes // MB} MB",
            big,
            big_bytes,
        ),
        Scenario(
            "d",
            f"a long queue: {queue:,} tasks of 100 KB for a {window:g} s window, 10 % ready "
            f"within its first {window * 2 / 3:g} s, the rest Pending",
            queue,
            100 * KB,
            ready=(1.0, window * 2 / 3),
            ready_share=0.1,
            window=window,
            extra=(TUNED_D,),
        ),
        Scenario(
            "e",
            f"submit and fetch: {texts:,} texts of 20-500 characters through a queue of "
            f"{workers} workers ({per_task:g} s + {per_char * 1000:g} ms a character each), "
            "2 KB of WAV",
            texts,
            2 * KB,
            clients=SUBMITTING,
            queue=(workers, per_task, per_char),
            extra=(BLIND_E,),
        ),
    ]


@dataclass
class Run:
    variant: Variant
    result: Result
    requests: int
    server_cpu: float
    files: int
    whole: int
    ready_at: dict[str, float] = field(default_factory=dict)
    gets: int = 0
    """Result GETs the emulator counted."""
    last_created: float = math.nan
    """When the emulator created the last of the client's tasks (its last submit)."""

    @property
    def done(self) -> int:
        return len(self.result["landed"])

    @property
    def cpu(self) -> float:
        return float(self.result["cpu"])

    @property
    def wall(self) -> float:
        return float(self.result["wall"])

    @property
    def rss_mb(self) -> float:
        return float(self.result["peak_rss_kib"]) * 1024 / MB

    def delays(self) -> list[float]:
        landed = self.result["landed"]
        return [landed[i] - self.ready_at[i] for i in landed if i in self.ready_at]

    def mean_delay(self) -> float:
        delays = self.delays()
        return statistics.fmean(delays) if delays else math.nan

    def last_lag(self) -> float:
        """The last file landed minus the last task became ready (of those that did)."""
        if not self.ready_at or not self.result["landed"]:
            return math.nan
        return max(self.result["landed"].values()) - max(self.ready_at.values())


def run_client(scenario: Scenario, variant: Variant, args: argparse.Namespace) -> Run:
    from aiotts.emulator import (
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        EmulatorConfig,
        EmulatorProcess,
    )

    queue: dict[str, Any] = {}
    if scenario.queue is not None:
        workers, per_task, per_char = scenario.queue
        queue = {
            "queue_workers": workers,
            "service_base_seconds": per_task,
            "service_seconds_per_char": per_char,
        }
    config = EmulatorConfig(seed=scenario.seed, audio_bytes=scenario.audio_bytes, **queue)
    texts = texts_for(scenario) if scenario.queue is not None else []
    with (
        EmulatorProcess(config) as emulator,
        scratch_folder(f"compare-{variant.key}-", args.out_dir) as out,
    ):

        def create() -> list[str]:
            if scenario.ready is None:
                return emulator.create_tasks(scenario.tasks, ready_after=0)
            ready = round(scenario.tasks * scenario.ready_share)
            ids = emulator.create_tasks(ready, ready_after=scenario.ready)
            ids += emulator.create_tasks(scenario.tasks - ready, ready_after=DAY)
            random.Random(scenario.seed).shuffle(ids)
            return ids

        ids = create() if scenario.ready is None else []
        before: dict[str, float] = {}

        def prepare() -> Spec:
            # fresh tasks: their clocks start now (none when the client submits them)
            spec_ids = [] if texts else ids or create()
            before["cpu"] = process_cpu(emulator.pid)
            return {
                "url": emulator.url,
                "client_id": DEFAULT_CLIENT_ID,
                "client_secret": DEFAULT_CLIENT_SECRET,
                "ids": spec_ids,
                "out": str(out),
                "window": scenario.window,
                "loop": args.loop,
                "poll": variant.poll,
                "durable": variant.durable,
                "texts": texts,
            }

        result = run_worker(SCRIPT, variant.worker, prepare)
        server_cpu = process_cpu(emulator.pid) - before["cpu"]
        stats = emulator.stats()
        requests, gets = stats.count(), stats.count("fetch")
        wav_length = None
        ready_at: dict[str, float] = {}
        last_created = math.nan
        if scenario.ready is not None or texts:
            for record, _ in emulator.records():
                last_created = record.created_at
                wav_length = record.wav_length
                if record.ready_at < record.created_at + DAY:
                    ready_at[record.id] = record.ready_at
        else:
            wav_length = emulator.record(ids[0]).wav_length
        if variant.worker == "bare":
            files, whole = count_files(out, None, ".body")
        else:
            files, whole = count_files(out, wav_length)
    return Run(variant, result, requests, server_cpu, files, whole, ready_at, gets, last_created)


def cpu_rounds(scenario: Scenario, args: argparse.Namespace, rounds: int) -> list[tuple[Run, Run]]:
    """(a)'s judge: aiotts and bare aiohttp, back to back, ``rounds`` times, each round
    starting with the other one, so what the shared machine does weighs on both alike."""
    ours = CLIENTS[0]
    pairs = []
    for number in range(rounds):
        order = (ours, BARE) if number % 2 == 0 else (BARE, ours)
        done = {variant.key: run_client(scenario, variant, args) for variant in order}
        pairs.append((done[ours.key], done[BARE.key]))
        ratio_now = done[ours.key].cpu / done[BARE.key].cpu
        print(f"  round {number + 1}: aiotts / bare aiohttp CPU {ratio_now:.2f}", flush=True)
    return pairs


def run_a(
    scenario: Scenario, variants: tuple[Variant, ...], args: argparse.Namespace, rounds: int
) -> tuple[dict[str, Run], list[float]]:
    """Every row of (a), and the rounds' ratios of aiotts's CPU to bare aiohttp's. The rows
    of aiotts and bare aiohttp are the round at the median ratio."""
    pairs = cpu_rounds(scenario, args, rounds)
    ratios = [ours.cpu / bare.cpu for ours, bare in pairs]
    middle = sorted(range(len(pairs)), key=lambda i: ratios[i])[(len(pairs) - 1) // 2]
    chosen = {CLIENTS[0].key: pairs[middle][0], BARE.key: pairs[middle][1]}
    runs = {
        v.key: chosen[v.key] if v.key in chosen else run_client(scenario, v, args) for v in variants
    }
    return runs, ratios


def rounds_text(ratios: list[float]) -> str:
    if len(ratios) < 2:
        return ""
    return f", median of {len(ratios)} rounds ({min(ratios):.2f}-{max(ratios):.2f})"


# -- the report --------------------------------------------------------------------------------


def scenario_table(scenario: Scenario, runs: dict[str, Run]) -> Table:
    ours = runs["aiotts"]
    timed = scenario.ready is not None or scenario.queue is not None
    headers = ["client", "wall s", "done", "tasks/s", "CPU s", "CPU ms/task", "peak RSS MB"]
    headers += ["requests"] + (["GETs/task"] if scenario.queue is not None else [])
    if timed:
        headers += ["delay mean s", "delay max s"]
        if scenario.window is None:
            headers += ["last ready -> done s"]
    headers += ["CPU/task vs aiotts", "wall vs aiotts", "RSS vs aiotts", "requests vs aiotts"]
    headers += ["emulator CPU s"]
    rows = []
    for run in runs.values():
        cpu_per_task = run.cpu / scenario.tasks
        row = [
            run.variant.label,
            fmt(run.wall, 1),
            f"{run.done:,}" + ("" if run.whole == run.done else f" ({run.whole:,} whole)"),
            fmt(run.done / run.wall, 0),
            fmt(run.cpu, 2),
            fmt(cpu_per_task * 1000, 2),
            fmt(run.rss_mb, 0),
            f"{run.requests:,}",
        ]
        if scenario.queue is not None:
            row.append(fmt(run.gets / scenario.tasks, 2))
        if timed:
            delays = run.delays()
            row += [fmt(run.mean_delay(), 2), fmt(max(delays), 2) if delays else "-"]
            if scenario.window is None:
                row += [fmt(run.last_lag(), 2)]
        row += [
            ratio(cpu_per_task, ours.cpu / scenario.tasks),
            ratio(run.wall, ours.wall),
            ratio(run.rss_mb, ours.rss_mb),
            ratio(run.requests, ours.requests),
            fmt(run.server_cpu, 2),
        ]
        rows.append(row)
    return Table(headers, rows)


def targets(
    key: str, runs: dict[str, Run], tasks: int, a_ratios: list[float] | None = None
) -> list[Check]:
    """The targets of scenario ``key``; in (a), the ratio to bare aiohttp is the median of
    ``a_ratios`` (the rounds') when given."""
    ours, sdk, script = runs["aiotts"], runs["sdk"], runs["script"]

    def per_task(run: Run) -> float:
        return run.cpu / tasks

    checks = []
    if key == "a":
        vs_sdk = per_task(ours) / per_task(sdk)
        vs_script = per_task(ours) / per_task(script)
        ratios = a_ratios or [per_task(ours) / per_task(runs["bare"])]
        vs_bare = statistics.median(ratios)
        checks += [
            Check(
                "(a) aiotts CPU per task / bare aiohttp's",
                f"{vs_bare:.2f}{rounds_text(ratios)} (target <= {A_CPU_VS_BARE:.2f})",
                vs_bare <= A_CPU_VS_BARE,
            ),
            Check(
                "(a) aiotts CPU per task / vendor SDK's",
                f"{vs_sdk:.2f} (target <= {A_CPU_VS_SDK:.2f})",
                vs_sdk <= A_CPU_VS_SDK,
            ),
            Check(
                "(a) aiotts CPU per task / script's",
                f"{vs_script:.2f} (target <= {A_CPU_VS_SCRIPT:.2f})",
                vs_script <= A_CPU_VS_SCRIPT,
            ),
            Check(
                "(a) aiotts wall time below both peers'",
                f"{ours.wall:.1f} s vs {sdk.wall:.1f} s and {script.wall:.1f} s",
                ours.wall < min(sdk.wall, script.wall),
            ),
        ]
    elif key == "b":
        lag = ours.last_lag()
        checks.append(
            Check(
                "(b) aiotts last file after the last task became ready",
                f"{lag:.2f} s (target <= {B_FINISH_LAG} s)",
                lag <= B_FINISH_LAG,
            )
        )
    elif key == "c":
        vs_sdk = ours.rss_mb / sdk.rss_mb
        vs_script = ours.rss_mb / script.rss_mb
        checks += [
            Check(
                "(c) aiotts peak RSS / vendor SDK's",
                f"{vs_sdk:.3f} (target <= {C_RSS_VS_PEERS:.2f})",
                vs_sdk <= C_RSS_VS_PEERS,
            ),
            Check(
                "(c) aiotts peak RSS / script's",
                f"{vs_script:.3f} (target <= {C_RSS_VS_PEERS:.2f})",
                vs_script <= C_RSS_VS_PEERS,
            ),
        ]
    elif key == "d":
        vs_script = per_task(ours) / per_task(script)
        checks.append(
            Check(
                "(d) aiotts CPU per task / script's",
                f"{vs_script:.2f} (target <= {D_CPU_VS_SCRIPT:.2f})",
                vs_script <= D_CPU_VS_SCRIPT,
            )
        )
    elif key == "e":
        gets = (ours.gets / tasks) / max(script.gets / tasks, 1e-9)
        checks += [
            Check(
                "(e) aiotts GETs per task / script's",
                f"{gets:.2f} (target <= {E_GETS_VS_SCRIPT:.2f})",
                gets <= E_GETS_VS_SCRIPT,
            ),
            Check(
                "(e) aiotts mean delay ready -> file, no more than the script's",
                f"{ours.mean_delay():.2f} s vs {script.mean_delay():.2f} s",
                ours.mean_delay() <= script.mean_delay(),
            ),
            Check(
                "(e) aiotts wall time below both peers'",
                f"{ours.wall:.1f} s vs {sdk.wall:.1f} s and {script.wall:.1f} s",
                ours.wall < min(sdk.wall, script.wall),
            ),
        ]
    if any(run.whole != run.done for run in runs.values()):
        checks.append(Check(f"({key}) every file landed whole", "a file is not whole", False))
    return checks


def describe_policy() -> tuple[str, Any]:
    """aiotts's default poll policy in words, and the policy."""
    from aiotts import DEFAULT_POLL as policy

    jitter = (
        f"each delay drawn uniformly between {policy.min_delay:g} s and the step (full "
        "jitter) so that thousands of tasks do not poll in lockstep"
        if policy.jitter == "full"
        else "without jitter"
    )
    text = (
        f"asks after {policy.first_delay:g} s, then backs off by {policy.growth:g}x up to "
        f"{policy.max_delay:g} s, {jitter}"
    )
    budget = getattr(policy, "budget", None)
    if budget:
        text += f", and asks again about at most {budget:,.0f} tasks a second in all"
    return text, policy


def mean_step(policy: Any, step: float) -> float:
    """The mean delay the policy draws for a back-off step of ``step`` seconds."""
    return (policy.min_delay + step) / 2 if policy.jitter == "full" else step


def steps_around(policy: Any, age: float) -> tuple[float, float]:
    """The back-off steps in force around ``age`` seconds after the first poll, on mean
    draws: the step at that age and the next one."""
    step, elapsed = policy.first_delay, 0.0
    while elapsed + mean_step(policy, step) < age and step < policy.max_delay:
        elapsed += mean_step(policy, step)
        step = min(policy.max_delay, step * policy.growth)
    return step, min(policy.max_delay, step * policy.growth)


def observations(
    results: dict[str, tuple[Scenario, dict[str, Run]]],
    checks: list[Check],
    file_floor: float,
    disk_floor: float,
    a_ratios: list[float] | None = None,
) -> list[str]:
    """What the figures of this run say, in sentences made from them; for each scenario
    whose target failed, what holds aiotts back."""
    failed = {c.what[1] for c in checks if not c.ok}
    policy_text, policy = describe_policy()
    out = []
    if "a" in results:
        scenario, runs = results["a"]
        per = {k: r.cpu / scenario.tasks * 1000 for k, r in runs.items()}
        text = (
            f"- **(a)** Every client creates, writes and renames one file per task: creating "
            f"and renaming an empty file cost {file_floor * 1000:.3f} ms of CPU in the output "
            f"folder and {disk_floor * 1000:.3f} ms in the system's temporary folder on disk "
            f"(measured at the start of this run). aiotts spent {per['aiotts']:.2f} ms a "
            f"task, the vendor SDK {per['sdk']:.2f} ms and the script {per['script']:.2f} ms."
        )
        if "bare" in per:
            ratios = a_ratios or [per["aiotts"] / per["bare"]]
            text += (
                f" Bare aiohttp streaming the same bodies into files, with no JSON and no "
                f"Base64, spent {per['bare']:.2f} ms: the floor for any client here, and "
                f"aiotts spent {statistics.median(ratios):.2f}x that{rounds_text(ratios)} "
                f"(target: at most {A_CPU_VS_BARE:g}x)."
            )
        if "floor" in per and "bare" in per:
            text += (
                f" The decoding floor (the same bare aiohttp, writing each WAV file as every "
                f"client must: the Base64 decoded from the stream into a temporary file, "
                f"renamed once whole, and nothing else) spent {per['floor']:.2f} ms, "
                f"{per['floor'] / per['bare']:.2f}x bare aiohttp; aiotts spent "
                f"{per['aiotts'] / per['floor']:.2f}x the decoding floor."
            )
        if "durable" in per:
            text += (
                f" With an fsync per file (`durable=True`) aiotts spent {per['durable']:.2f} ms."
            )
        if "a" in failed:
            text += (
                f" Meeting every target would take at most "
                f"{min(per['sdk'] / 4, per['script'] / 2, A_CPU_VS_BARE * per['bare']):.2f} ms "
                "a task. What aiotts does above the floor is Python per task: the envelope "
                "scanner with its Base64 decode (`benchmarks/bench_decode.py` measures "
                "it), the request's way through the client (a slot "
                "in front of the pool, the shared rate limiter, the token, a timer for "
                "the task's deadline), the scheduler's hand-off of each due task to a worker, "
                "the state machine, the batch's admission and outcome, and the temporary file "
                "renamed once its WAV header is checked: what makes it safe and observable."
            )
        out.append(text)
    if "b" in results:
        scenario, runs = results["b"]
        parts = []
        for run in runs.values():
            parts.append(
                f"{run.variant.label} {run.requests / scenario.tasks:.1f} requests a task, "
                f"{run.mean_delay():.2f} s mean delay, last file {run.last_lag():.2f} s after "
                f"the last task was ready"
            )
        text = (
            "- **(b) Requests against delay.** A client that knows nothing about when a task "
            "will end can only trade requests for delay: polling at a fixed interval *T* "
            "costs about one request per task per *T* and delays each result by *T*/2 on "
            "average (*T* at worst), and for a given number of requests no schedule does "
            "better on average, which is why a fixed interval is on that frontier. aiotts's "
            f"default poll policy {policy_text}. With a few hundred tasks pending, each is "
            "asked about every few tenths of a second, so a fresh batch ends soon after its "
            "last task does; with thousands pending, the poll budget spreads the polls out "
            "(what a long queue needs). It asks more often than the script's fixed 1 s poll "
            "while the batch is young, and finds results sooner. Beating a fixed interval on "
            "both counts needs information about the tasks, such as the moment aiotts "
            "submitted them itself. In this run: " + "; ".join(parts) + "."
        )
        if "b" in failed:
            last = scenario.ready[1] if scenario.ready else 0.0
            low, high = steps_around(policy, last)
            text += (
                f" What holds aiotts back is its default poll policy: near {last:g} s a "
                f"task's back-off step is {low:.1f}-{high:.1f} s, so the last tasks are found "
                f"up to that long after they become ready. Finishing within "
                f"{B_FINISH_LAG:g} s needs a step of at most {B_FINISH_LAG:g} s at that age, "
                f"which costs more requests than the script's {SCRIPT_SLEEP:g} s poll"
                + (" (the tuned row shows both sides)." if TUNED_B.key in runs else ".")
            )
            budget = getattr(policy, "budget", None)
            if budget:
                text += (
                    f" Its poll budget ({budget:,.0f} polls a second beyond each task's first) "
                    f"also spaces the polls of {scenario.tasks:,} waiting tasks to one every "
                    f"{scenario.tasks / budget:.1f} s each at best."
                )
            if "a" in results and scenario.ready is not None:
                a_runs = results["a"][1]
                best = max(r.done / r.wall for r in a_runs.values())
                if scenario.tasks / best > scenario.ready[1]:
                    text += (
                        f" Throughput too: the {scenario.tasks:,} tasks become ready within "
                        f"{scenario.ready[1] - scenario.ready[0]:g} s, while the fastest "
                        f"client in (a) saved {best:,.0f} a second here, so the last file "
                        f"cannot land before about {scenario.tasks / best:.1f} s after the "
                        f"start whatever the policy."
                    )
        out.append(text)
    if "c" in results:
        scenario, runs = results["c"]
        ours = runs["aiotts"]
        out.append(
            f"- **(c)** aiotts streams each body through its scanner into the file, so its "
            f"peak RSS ({ours.rss_mb:.0f} MB) does not grow with the size of a result; the "
            f"vendor SDK ({runs['sdk'].rss_mb:,.0f} MB) and the script "
            f"({runs['script'].rss_mb:,.0f} MB) hold each whole body, its parsed text and "
            f"its decoded audio at once, for every request in flight."
        )
        if "c" in failed:
            out[-1] += (
                " What is left of aiotts's peak above its start-up size is mostly body bytes "
                "waiting to be read: up to 64 requests are in flight (`Limits.polls`) but only "
                "16 bodies are decoded at once (`Limits.downloads`), and aiohttp keeps reading "
                "each waiting response into memory until its buffer holds twice the read size "
                "(2 x 256 KiB)."
            )
    if "d" in results:
        scenario, runs = results["d"]
        parts = []
        for run in runs.values():
            parts.append(
                f"{run.variant.label} {run.requests / run.wall:,.0f} requests/s, "
                f"{run.cpu / run.wall:.0%} of a core, {run.done:,} of "
                f"{len(run.ready_at):,} ready tasks saved"
                + (
                    f", on average {run.mean_delay():.1f} s after they became ready"
                    if run.done
                    else ""
                )
            )
        text = (
            "- **(d)** Every client runs for the whole window, so CPU per task is CPU over "
            "the window divided by every task, done or not, and a client that polls as fast "
            "as it can is bounded by one core. In this run: " + "; ".join(parts) + ". The "
            "vendor SDK's 16 threads spend the window sleeping on the first 16 ids, so it "
            "sends few requests, spends little CPU and saves almost nothing: read its CPU per "
            "task together with its `done` column."
        )
        if "d" in failed:
            ours, script = runs["aiotts"], runs["script"]
            ours_each = ours.cpu / max(1, ours.requests) * 1e6
            script_each = script.cpu / max(1, script.requests) * 1e6
            text += (
                f" aiotts sent {ours.requests / ours.wall:,.0f} requests a second at "
                f"{ours_each:.0f} us of CPU each (admitting and expiring every id, and the "
                f"downloads, included), the script {script.requests / script.wall:,.0f} at "
                f"{script_each:.0f} us"
                + (
                    "; both ran flat out, so their CPU is the window's length"
                    if min(ours.cpu, script.cpu) > 0.85 * (scenario.window or math.inf)
                    else ""
                )
                + "."
            )
            budget = getattr(policy, "budget", None)
            pending = scenario.tasks - len(ours.ready_at)
            repolls = max(1.0, (ours.requests - scenario.tasks) / ours.wall)
            if budget:
                text += (
                    f" Its poll budget allows {budget:,.0f} polls a second beyond each task's "
                    f"first; it sent about {repolls:,.0f}, so each of the {pending:,} pending "
                    f"tasks was asked about again only every {pending / repolls:.0f} s or so, "
                    f"which is where its delays come from. What holds its CPU above half the "
                    f"script's is the cost of each paced request: requests spread over time "
                    f"cost more CPU each than back to back, for any client "
                    f"(`benchmarks/bench_poll.py` measures both). A smaller budget would "
                    f"meet this target, but then a fresh batch like (b) would finish more "
                    f"than half a second after its last task: the default keeps (b)."
                )
            else:
                settled = mean_step(policy, policy.max_delay)
                text += (
                    f" What holds aiotts back is how often its default policy asks about a "
                    f"task that stays Pending: steps capped at {policy.max_delay:g} s average "
                    f"{settled:.2g} s, so {pending:,} pending tasks ask for about "
                    f"{pending / settled:,.0f} requests a second once backed off, and more "
                    f"before. Half the script's CPU needs both fewer polls of long-pending "
                    f"tasks and a cheaper poll."
                )
        out.append(text)
    if "e" in results:
        scenario, runs = results["e"]
        parts = [
            f"{run.variant.label} {run.gets / scenario.tasks:.2f} GETs a task, "
            f"{run.mean_delay():.2f} s mean delay (worst {max(run.delays(), default=math.nan):.2f}"
            f" s), {run.wall:.1f} s end to end"
            for run in runs.values()
        ]
        text = (
            "- **(e) Polls aimed at forecasts.** Every client submits the texts itself, so "
            "aiotts knows each task's place in the queue and the length of its text; from "
            "the tasks that ended before it, it forecasts when each will be ready and asks "
            "then (a little before, then in short steps), and at least every `max_delay` "
            "however far off the forecast. The peers poll blindly: the script every second "
            "once it has submitted everything, the vendor SDK's 16 threads every 2 s, one "
            "task after the other in submission order, which on a FIFO queue finds most "
            "tasks ready at the first GET, late. In this run: " + "; ".join(parts) + "."
        )
        failed_e = {c.what for c in checks if not c.ok and c.what.startswith("(e)")}
        ours, sdk, script = runs["aiotts"], runs["sdk"], runs["script"]
        if any("GETs" in what for what in failed_e):
            text += (
                f" A blind poller's GETs per task grow with how long each task waits after "
                f"the poller starts asking: the script spent "
                f"{script_submit_share(script, scenario):.0%} of its run submitting before "
                f"its first poll, so many tasks were ready or nearly so by then. aiotts asks "
                f"about a task from the moment it is submitted, at least every "
                f"{policy.max_delay:g} s."
            )
        if any("wall" in what for what in failed_e):
            text += (
                f" End to end, the queue sets every client's pace: {scenario.tasks:,} texts "
                f"take its workers about as long as each run lasted, so the wall times differ "
                f"by how soon each client's first submit went out and how soon its last file "
                f"landed after the last task was ready (aiotts {ours.last_lag():.2f} s, the "
                f"vendor SDK {sdk.last_lag():.2f} s, the script {script.last_lag():.2f} s)."
            )
        out.append(text)
    return out


def script_submit_share(run: Run, scenario: Scenario) -> float:
    """The share of ``run``'s wall time before its last task was created (its submits;
    records come in creation order)."""
    submitting = run.last_created - float(run.result["started"])
    return min(1.0, max(0.0, submitting / run.wall)) if run.wall else math.nan


def markdown(
    args: argparse.Namespace,
    sections: list[tuple[Scenario, Table]],
    checks: list[Check],
    notes: list[str],
    seconds: float,
) -> str:
    today = datetime.date.today().isoformat()
    command = "python benchmarks/compare.py" + (" --quick" if args.quick else "")
    if args.only != "abcd":
        command += f" --only {args.only}"
    if args.rounds:
        command += f" --rounds {args.rounds}"
    if args.loop != "uvloop":
        command += f" --loop {args.loop}"
    out = [
        "# aiotts, the vendor SDK and a hand-written script, side by side",
        "",
        f"Measured {today} with `{command}` ({seconds:.0f} s in all), on {machine()}.",
        "",
        "Each client runs in a process of its own against a fresh emulator, itself in a "
        "process of its own and started with the same seed (so every client sees the same "
        "task ids and the same schedule). CPU is the client process's "
        "user + system time for the work alone (start-up and imports excluded), every "
        "thread included; peak RSS is the whole process's `ru_maxrss`. Requests are what "
        "the emulator counted (token requests included). The two asyncio clients run on "
        f"{args.loop}. Files go to `{args.out_dir}`. Ratios are the peer's figure divided "
        "by aiotts's with default settings (above 1: aiotts does better, and for requests, "
        "aiotts sent fewer); rows other than the three clients at their defaults are for "
        "information, the targets are judged on the defaults. Delay is the moment a task's "
        "file landed minus the moment "
        "the emulator began to answer `Completed` for it, both on the machine's monotonic "
        "clock (which is the emulator's task clock), so it is exact. How each client is "
        "written is in the docstring of `benchmarks/compare.py`.",
        "",
    ]
    for scenario, table in sections:
        out += [f"## ({scenario.key}) {scenario.title}", "", table.markdown(), ""]
    out += ["## Targets", "", checks_table(checks).markdown(), ""]
    out += ["## What the figures say", "", *notes, ""]
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="every scenario shrunk: < 1 minute")
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--only", default="abcde", help="the scenarios to run, e.g. 'ab'")
    parser.add_argument(
        "--rounds",
        type=int,
        help="rounds of aiotts against bare aiohttp in (a) (default: 5; --quick: 3)",
    )
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument(
        "--no-extra",
        action="store_true",
        help="skip the rows for information (aiotts with other settings); the reference "
        "that a target is judged against still runs",
    )
    parser.add_argument(
        "--out-dir",
        default=default_out_dir(),
        help="where the clients' folders go (default: %(default)s)",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        help=f"where to write the Markdown (default: {RESULTS.name} for a full run of every "
        "scenario, nowhere otherwise)",
    )
    args = parser.parse_args()
    if args.rounds is not None and args.rounds < 1:
        parser.error(f"--rounds must be at least 1, not {args.rounds}")
    if args.worker:
        return worker_main(WORKERS, args.worker, IMPORTS[args.worker])

    started = time.monotonic()
    file_floor = file_cost(args.out_dir)
    disk_floor = file_cost(None)
    print(
        f"files in {args.out_dir} (create + rename of an empty file: {file_floor * 1e6:.0f} us "
        f"of CPU; {disk_floor * 1e6:.0f} us in {tempfile.gettempdir()}); asyncio clients on "
        f"{args.loop}\n",
        flush=True,
    )
    sections: list[tuple[Scenario, Table]] = []
    results: dict[str, tuple[Scenario, dict[str, Run]]] = {}
    checks: list[Check] = []
    a_ratios: list[float] | None = None
    size = "smoke" if args.smoke else "quick" if args.quick else "full"
    for scenario in scenarios(size):
        if scenario.key not in args.only:
            continue
        print(f"({scenario.key}) {scenario.title}", flush=True)
        variants = scenario.clients + scenario.reference
        variants += () if size != "full" or args.no_extra else scenario.extra
        if scenario.key == "a":
            runs, a_ratios = run_a(scenario, variants, args, args.rounds or A_ROUNDS[size])
        else:
            runs = {v.key: run_client(scenario, v, args) for v in variants}
        table = scenario_table(scenario, runs)
        print(table.text(), end="\n\n", flush=True)
        if scenario.key == "a" and a_ratios:
            shown = " ".join(f"{r:.2f}" for r in a_ratios)
            print(
                f"(a) aiotts / bare aiohttp CPU per task, by round: {shown}; median "
                f"{statistics.median(a_ratios):.2f} (the table shows that round)\n",
                flush=True,
            )
        sections.append((scenario, table))
        results[scenario.key] = (scenario, runs)
        checks += targets(
            scenario.key, runs, scenario.tasks, a_ratios if scenario.key == "a" else None
        )
    seconds = time.monotonic() - started
    print(checks_table(checks).text())
    print(f"\n{machine()}; {seconds:.0f} s in all")
    whole = size == "full" and args.only == "abcde"
    destination = args.markdown or (RESULTS if whole else None)
    if destination is not None:
        notes = observations(results, checks, file_floor, disk_floor, a_ratios)
        destination.write_text(markdown(args, sections, checks, notes, seconds))
        print(f"written to {destination}")
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
