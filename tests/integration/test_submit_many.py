"""``client.submit_many``: many texts over real HTTP, a ledger around each POST, resume.

The emulator's own records are the witness of what was sent: one task per text it got.
A hostile server on 127.0.0.1 plays the answers the emulator never gives (a POST accepted,
then the connection dropped; a 400 for one text).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from aiotts import Limits, Submitted, SubmitUncertainError, TTSClient, UsageError
from aiotts._store import OutcomeStore
from aiotts._submit import THROTTLE_PATIENCE
from aiotts.emulator import Emulator
from tests.helpers import FAST_RETRY, client_for
from tests.hostile.servers import CLIENT_ID, CLIENT_SECRET, HostileServer

pytestmark = pytest.mark.anyio

TTS_PATH = "/v5.0/ocr/ConvertTextToSpeech"


def texts_sent(emulator: Emulator) -> Counter[str]:
    """How many tasks the emulator made of each text."""
    return Counter(emulator.record(task_id).text for task_id in emulator.task_ids())


async def collect(client: TTSClient, texts: object, **options: object) -> dict[str, Submitted]:
    results: dict[str, Submitted] = {}
    async for submitted in client.submit_many(texts, **options):  # type: ignore[arg-type]
        assert submitted.key not in results
        results[submitted.key] = submitted
    return results


async def test_every_text_gets_its_id_once_and_the_ledger_keeps_it(
    emulator: Emulator, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.db"
    texts = [(f"k{n}", f"Text number {n}.") for n in range(40)]
    async with client_for(emulator) as client:
        results = await collect(client, iter(texts), ledger=ledger, concurrency=8)
    assert set(results) == {key for key, _ in texts}
    assert all(s.ok and not s.resumed and not s.uncertain for s in results.values())
    assert texts_sent(emulator) == Counter(text for _, text in texts)
    with OutcomeStore(ledger) as store:
        for key, submitted in results.items():
            assert store.task_id_for(key) == submitted.task_id
            entry = store.ledger_entry(key)
            assert entry is not None and entry.state == "submitted"
            assert emulator.record(submitted.task_id or "").text == dict(texts)[key]


async def test_plain_strings_are_keyed_by_position_from_an_async_iterable(
    client: TTSClient,
) -> None:
    async def texts():  # type: ignore[no-untyped-def]
        for n in range(3):
            yield f"Async text {n}."

    results = await collect(client, texts())
    assert sorted(results) == ["0", "1", "2"]
    assert all(s.ok for s in results.values())


async def test_an_async_generator_of_texts_is_closed_when_the_run_stops(
    client: TTSClient,
) -> None:
    closed: list[str] = []

    async def texts():  # type: ignore[no-untyped-def]
        try:
            for n in range(1000):
                yield f"Async text {n}."
        finally:
            closed.append("closed")

    async with client.submit_many(texts(), concurrency=2) as submissions:
        async for _ in submissions:
            break
    assert closed == ["closed"]  # its clean-up ran when the run stopped


async def test_a_resume_sends_no_text_that_has_an_id(emulator: Emulator, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    texts = [(f"k{n}", f"Resumed text {n}.") for n in range(10)]
    async with client_for(emulator) as client:
        first = await collect(client, texts[:6], ledger=ledger)
        again = await collect(client, texts, ledger=ledger, resume=True)
    assert all(again[key].resumed and again[key].task_id == first[key].task_id for key in first)
    assert all(not again[key].resumed and again[key].ok for key, _ in texts[6:])
    assert max(texts_sent(emulator).values()) == 1
    assert len(texts_sent(emulator)) == 10


async def test_without_resume_a_key_the_ledger_holds_is_refused(
    emulator: Emulator, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.db"
    async with client_for(emulator) as client:
        await collect(client, [("a", "Once.")], ledger=ledger)
        again = await collect(client, [("a", "Once.")], ledger=ledger)
        with pytest.raises(UsageError, match="resume needs a ledger"):
            client.submit_many(["x"], resume=True)
        with pytest.raises(UsageError, match="must be a store"):
            client.submit_many(["x"], ledger=tmp_path / "ledger.jsonl")
    assert not again["a"].ok and "pass resume=True" in (again["a"].error or "")
    assert texts_sent(emulator) == Counter({"Once.": 1})


async def test_a_changed_text_under_a_known_key_is_refused_naming_the_key(
    emulator: Emulator, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.db"
    async with client_for(emulator) as client:
        await collect(client, [("greeting", "Hello.")], ledger=ledger)
        again = await collect(client, [("greeting", "Goodbye.")], ledger=ledger, resume=True)
    error = again["greeting"].error or ""
    assert "key 'greeting'" in error and "differs" in error
    assert texts_sent(emulator) == Counter({"Hello.": 1})


async def test_bad_items_and_duplicate_keys_fail_alone(emulator: Emulator) -> None:
    items = [("a", "Fine."), ("a", "Again."), ("b", ""), 42, (7, "x"), ("c", "Also fine.")]
    async with client_for(emulator) as client:
        results = [s async for s in client.submit_many(items)]  # type: ignore[arg-type]
    assert len(results) == 6
    assert sorted(s.key for s in results if s.ok) == ["a", "c"]
    errors = [s.error or "" for s in results if not s.ok]
    assert any("the key 'a' appears twice in the input" in e for e in errors)
    assert any("the text of key 'b' is empty" in e for e in errors)
    assert any("item 3: expected a text or a (key, text) pair, got int" in e for e in errors)
    assert any("item 4: keys are strings" in e for e in errors)
    assert texts_sent(emulator) == Counter({"Fine.": 1, "Also fine.": 1})


async def test_a_429_slows_the_submits_down_instead_of_failing_them(
    emulator: Emulator, tmp_path: Path
) -> None:
    texts = [(f"k{n}", f"Throttled text {n}.") for n in range(30)]
    async with client_for(emulator) as client:
        await client.status("TTS-warm-up")  # the token first: the fault hits every endpoint
        emulator.set_faults(rate_limit_share=0.5, retry_after=0.01)
        results = await collect(client, texts, ledger=tmp_path / "l.db", concurrency=4)
        throttled = client.counters
    assert all(s.ok for s in results.values()), [s.error for s in results.values()]
    assert texts_sent(emulator) == Counter(text for _, text in texts)
    assert emulator.stats().count("submit") > len(texts)  # some were refused, then sent again
    assert throttled["submit"] > len(texts)


# -- a hostile server: answers the emulator never gives ----------------------------------------


class Fickle:
    """A submit endpoint that gives ids, refuses texts with "refuse" (400, with the
    validation body), and drops the connection after reading texts with "drop"."""

    def __init__(self) -> None:
        self.numbers = itertools.count()
        self.texts: list[str] = []

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        text = orjson.loads(await request.read())["text"]
        self.texts.append(text)
        if "refuse" in text:
            body = {"title": "validation", "status": 400, "errors": {"Text": ["Too odd."]}}
            return web.json_response(body, status=400)
        if "drop" in text:
            assert request.transport is not None
            request.transport.close()
            await asyncio.sleep(0.05)
        return web.Response(text=f"TTS-{next(self.numbers)}")


def hostile_client(server: HostileServer) -> TTSClient:
    return TTSClient(
        CLIENT_ID, CLIENT_SECRET, base_url=server.url, retry=FAST_RETRY, limits=Limits(polls=4)
    )


async def test_uncertain_submits_are_reported_and_never_resent_unless_asked(
    tmp_path: Path,
) -> None:
    ledger = tmp_path / "ledger.db"
    fickle = Fickle()
    texts = [("ok", "A fine text."), ("lost", "Please drop this one."), ("bad", "refuse me")]
    async with HostileServer() as server:
        server.route("POST", TTS_PATH, fickle)
        async with hostile_client(server) as client:
            first = await collect(client, texts, ledger=ledger)
            assert first["ok"].ok
            assert first["lost"].uncertain and first["lost"].task_id is None
            assert isinstance(first["lost"].cause, SubmitUncertainError)
            assert not first["bad"].ok and not first["bad"].uncertain
            assert first["bad"].messages == ("Text: Too odd.",)
            assert "HTTP 400" in (first["bad"].error or "")
            assert fickle.texts.count("Please drop this one.") == 1

            again = await collect(client, texts, ledger=ledger, resume=True)
            assert again["ok"].resumed and again["ok"].task_id == first["ok"].task_id
            assert again["lost"].uncertain and again["lost"].resumed
            assert isinstance(again["lost"].cause, SubmitUncertainError)
            # Nothing was sent for "ok" nor "lost"; "bad" created nothing, so it goes again.
            assert Counter(fickle.texts) == Counter(
                {"A fine text.": 1, "Please drop this one.": 1, "refuse me": 2}
            )

            third = await collect(
                client, texts, ledger=ledger, resume=True, resubmit_uncertain=True
            )
            assert third["lost"].uncertain  # dropped again, reported again
            assert fickle.texts.count("Please drop this one.") == 2
    with OutcomeStore(ledger) as store:
        states = {entry.key: entry.state for entry in store.ledger()}
    assert states == {"ok": "submitted", "lost": "uncertain", "bad": "unsent"}


async def test_a_crash_between_the_commit_and_the_answer_leaves_the_text_uncertain(
    tmp_path: Path,
) -> None:
    """The row is committed before the POST leaves: a ``sending`` row left behind (the
    process died while the POST was out) is reported uncertain, not sent again."""
    ledger = tmp_path / "ledger.db"
    with OutcomeStore(ledger) as store:
        from aiotts._texts import file_stem, text_digest

        store.record_sending("k", text_digest("Was in flight."), file_stem("k"))
    fickle = Fickle()
    async with HostileServer() as server:
        server.route("POST", TTS_PATH, fickle)
        async with hostile_client(server) as client:
            results = await collect(client, [("k", "Was in flight.")], ledger=ledger, resume=True)
    assert results["k"].uncertain and "earlier run was sending" in (results["k"].error or "")
    assert fickle.texts == []


async def test_the_row_is_committed_before_the_post_leaves(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    seen_in_ledger: list[str | None] = []

    async def look(request: web.Request) -> web.StreamResponse:
        with OutcomeStore(ledger, read_only=True) as reader:
            entry = reader.ledger_entry("k")
        seen_in_ledger.append(None if entry is None else entry.state)
        return web.Response(text="TTS-1")

    async with HostileServer() as server:
        server.route("POST", TTS_PATH, look)
        async with hostile_client(server) as client:
            results = await collect(client, [("k", "Watched.")], ledger=ledger)
    assert results["k"].task_id == "TTS-1"
    assert seen_in_ledger == ["sending"]


async def test_stopping_early_lets_the_posts_out_bring_their_ids_back(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    arrived: list[str] = []
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        text = orjson.loads(await request.read())["text"]
        arrived.append(text)
        if text != "fast":
            await release.wait()
        return web.Response(text=f"TTS-{text.replace(' ', '-')}")

    async def release_when_both_arrived() -> None:
        while len(arrived) < 3:
            await asyncio.sleep(0.001)
        release.set()

    async with HostileServer() as server:
        server.route("POST", TTS_PATH, slow)
        async with hostile_client(server) as client:
            submissions = client.submit_many(
                [("f", "fast"), ("s1", "slow 1"), ("s2", "slow 2"), ("later", "never")],
                ledger=ledger,
                concurrency=3,
            )
            releaser = asyncio.create_task(release_when_both_arrived())
            async with submissions:
                async for submitted in submissions:
                    assert submitted.key == "f"
                    break
            await releaser
    with OutcomeStore(ledger) as store:
        entries = {entry.key: (entry.state, entry.task_id) for entry in store.ledger()}
    assert entries == {
        "f": ("submitted", "TTS-fast"),
        "s1": ("submitted", "TTS-slow-1"),
        "s2": ("submitted", "TTS-slow-2"),
    }
    assert "never" not in arrived


async def test_a_post_that_outlasts_the_stop_grace_stays_in_the_uncertain_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("aiotts._submit.STOP_GRACE", 0.05)
    ledger = tmp_path / "ledger.db"
    never = asyncio.Event()

    async def stuck(request: web.Request) -> web.StreamResponse:
        text = orjson.loads(await request.read())["text"]
        if text != "fast":
            await never.wait()
        return web.Response(text="TTS-fast")

    async with HostileServer() as server:
        server.route("POST", TTS_PATH, stuck)
        async with hostile_client(server) as client:
            submissions = client.submit_many([("f", "fast"), ("s", "stuck")], ledger=ledger)
            async with submissions:
                async for _ in submissions:
                    break
            never.set()
            again = await collect(
                client, [("f", "fast"), ("s", "stuck")], ledger=ledger, resume=True
            )
    assert again["f"].resumed and again["f"].task_id == "TTS-fast"
    assert again["s"].uncertain and len(server.requests_to(TTS_PATH)) == 2


class Throttling:
    """A submit endpoint that answers each text's first POST with 429 and a Retry-After,
    and gives an id to the next; it notes when each POST came."""

    def __init__(self, retry_after: str) -> None:
        self.retry_after = retry_after
        self.posts: dict[str, list[float]] = {}

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        text = orjson.loads(await request.read())["text"]
        times = self.posts.setdefault(text, [])
        times.append(time.monotonic())
        if len(times) == 1:
            return web.Response(status=429, headers={"Retry-After": self.retry_after})
        return web.Response(text=f"TTS-{text}")


async def test_a_429_s_retry_after_is_waited_out_before_the_text_goes_again(
    tmp_path: Path,
) -> None:
    throttling = Throttling(retry_after="0.4")
    async with HostileServer() as server:
        server.route("POST", TTS_PATH, throttling)
        async with hostile_client(server) as client:
            results = await collect(client, [("a", "one"), ("b", "two")], ledger=tmp_path / "l.db")
    assert all(s.ok for s in results.values())
    for first, second in throttling.posts.values():
        assert second - first >= 0.4  # not the retry policy's 10 ms


async def test_a_retry_after_past_the_patience_fails_the_text_at_once(tmp_path: Path) -> None:
    throttling = Throttling(retry_after=str(int(THROTTLE_PATIENCE) + 1))
    async with HostileServer() as server:
        server.route("POST", TTS_PATH, throttling)
        async with hostile_client(server) as client:
            results = await collect(client, [("a", "one")], ledger=tmp_path / "l.db")
    assert results["a"].task_id is None and not results["a"].uncertain
    assert "HTTP 429" in (results["a"].error or "")
    assert [len(times) for times in throttling.posts.values()] == [1]
