"""``client.synthesize``: texts in, files named after their keys out, submit and fetch
pipelined through the client's one scheduler, one store for ledger and outcomes."""

from __future__ import annotations

import inspect
from collections import Counter
from pathlib import Path

import anyio
import pytest

import aiotts
import aiotts.sync
from aiotts import CredentialsError, Outcome, OutcomeState, SubmitUncertainError, TTSClient
from aiotts._store import OutcomeStore
from aiotts._texts import file_stem
from aiotts.emulator import Emulator, EmulatorConfig
from tests.helpers import client_for, temp_files

pytestmark = pytest.mark.anyio


def texts_sent(emulator: Emulator) -> Counter[str]:
    return Counter(emulator.record(task_id).text for task_id in emulator.task_ids())


async def run(client: TTSClient, texts: object, out: Path, **options: object) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    async for outcome in client.synthesize(texts, out, **options):  # type: ignore[arg-type]
        assert outcome.key is not None and outcome.key not in outcomes
        outcomes[outcome.key] = outcome
    return outcomes


async def test_each_text_becomes_a_file_named_after_its_key(
    emulator: Emulator, tmp_path: Path
) -> None:
    texts = [("intro", "Welcome."), ("Chapter 1/2", "It was a dark night."), ("3", "Three.")]
    out = tmp_path / "audio"
    async with client_for(emulator) as client:
        outcomes = await run(client, texts, out)  # pairs in a list: as compare.py calls it
    assert set(outcomes) == {"intro", "Chapter 1/2", "3"}
    for key, text in texts:
        outcome = outcomes[key]
        assert outcome.state is OutcomeState.DONE, outcome.error
        assert outcome.files == (out / f"{file_stem(key)}.wav",)
        assert emulator.record(outcome.task_id).text == text
        assert outcome.files[0].read_bytes() == emulator.audio(outcome.task_id)
    assert (out / "intro.wav").exists() and (out / "3.wav").exists()
    assert temp_files(out) == []


async def test_each_task_is_fetched_while_later_texts_are_not_yet_read(
    emulator: Emulator, tmp_path: Path
) -> None:
    """The second text is given only once the first one's audio is saved: a pipeline that
    gathered ids before fetching would never get there."""
    first_saved = anyio.Event()

    async def texts():  # type: ignore[no-untyped-def]
        yield ("one", "The first text.")
        await first_saved.wait()
        yield ("two", "The second text.")

    seen: list[str] = []
    async with client_for(emulator) as client:
        with anyio.fail_after(20):  # a guard against a hang, not a measure
            async for outcome in client.synthesize(texts(), tmp_path):
                seen.append(outcome.key or "")
                first_saved.set()
    assert seen == ["one", "two"]


async def test_a_resume_submits_no_text_and_fetches_no_audio_twice(
    emulator: Emulator, tmp_path: Path
) -> None:
    texts = [(f"t{n}", f"Text to keep, number {n}.") for n in range(12)]
    ledger = tmp_path / "aiotts.db"
    async with client_for(emulator) as client:
        first = await run(client, texts[:8], tmp_path, ledger=ledger)
        fetched = {o.task_id: emulator.record(o.task_id).audio_finished for o in first.values()}
        again = await run(client, texts, tmp_path, ledger=ledger, resume=True)
    assert all(o.ok for o in again.values())
    assert all(again[key].resumed and again[key].task_id == first[key].task_id for key in first)
    assert texts_sent(emulator) == Counter(text for _, text in texts)
    for task_id, count in fetched.items():
        assert emulator.record(task_id).audio_finished == count == 1
    with OutcomeStore(ledger) as store:
        for key, outcome in again.items():
            assert store.task_id_for(key) == outcome.task_id
            entry = store.ledger_entry(key)
            assert entry is not None and entry.stem == file_stem(key)
            recorded = store.get(outcome.task_id)
            assert recorded is not None and recorded.state is OutcomeState.DONE


async def test_missing_tasks_are_submitted_again_only_when_asked(
    emulator: Emulator, tmp_path: Path
) -> None:
    texts = [("a", "Kept a day."), ("b", "Also kept.")]
    ledger = tmp_path / "aiotts.db"
    async with client_for(emulator) as client:
        first = await run(client, texts, tmp_path, ledger=ledger)
        # A day later: the server forgot the task of "a", and its file was lost.
        await client.cancel(first["a"].task_id)
        first["a"].files[0].unlink()
        second = await run(client, texts, tmp_path, ledger=ledger, resume=True)
        assert second["a"].state is OutcomeState.MISSING
        assert second["b"].resumed and second["b"].ok
        third = await run(
            client, texts, tmp_path, ledger=ledger, resume=True, resubmit_missing=True
        )
    assert third["a"].ok and third["a"].task_id != first["a"].task_id
    assert third["a"].files[0].exists()
    assert third["b"].resumed and third["b"].task_id == first["b"].task_id
    assert texts_sent(emulator) == Counter({"Kept a day.": 2, "Also kept.": 1})


async def test_texts_without_a_task_end_at_once_with_their_own_outcome(
    emulator: Emulator, tmp_path: Path
) -> None:
    texts = [("fine", "A fine text."), ("empty", "   "), ("fine", "Twice the key.")]
    async with client_for(emulator) as client:
        outcomes = [o async for o in client.synthesize(texts, tmp_path)]
    states = sorted((o.key, o.state.value, o.task_id == "") for o in outcomes)
    assert states == [
        ("empty", "aborted", True),
        ("fine", "aborted", True),
        ("fine", "done", False),
    ]


async def test_an_uncertain_submit_ends_aborted_with_its_cause(tmp_path: Path) -> None:
    config = EmulatorConfig(pending_seconds=0, processing_seconds=0)
    async with Emulator(config) as emulator, client_for(emulator) as client:
        await client.status("TTS-warm-up")  # the token first: the fault hits every endpoint
        emulator.set_faults(server_error_share=1.0, server_error_statuses=(502,))
        outcomes = await run(client, [("k", "Billable.")], tmp_path, ledger=tmp_path / "l.db")
    assert outcomes["k"].state is OutcomeState.ABORTED
    assert isinstance(outcomes["k"].cause, SubmitUncertainError)
    assert emulator.stats().count("submit") == 1


async def test_cancelling_records_what_was_in_flight(emulator: Emulator, tmp_path: Path) -> None:
    ledger = tmp_path / "aiotts.db"
    emulator.set_faults(latency=0.05)
    texts = [(f"k{n}", f"Cancelled run text {n}.") for n in range(20)]
    async with client_for(emulator) as client:
        synthesis = client.synthesize(texts, tmp_path, ledger=ledger)
        async with synthesis:
            async for _ in synthesis:
                break
    assert temp_files(tmp_path) == []  # every download in flight cleaned up by the close
    emulator.set_faults()
    async with client_for(emulator) as client:
        resumed = await run(client, texts, tmp_path, ledger=ledger, resume=True)
    sent = texts_sent(emulator)
    assert max(sent.values()) == 1
    for key, text in texts:
        assert resumed[key].ok or isinstance(resumed[key].cause, SubmitUncertainError)
        assert resumed[key].ok == (sent[text] == 1 and resumed[key].task_id != "")


def test_the_blocking_client_mirrors_both_calls(tmp_path: Path) -> None:
    for name in ("submit_many", "synthesize"):
        blocking = inspect.signature(getattr(aiotts.sync.TTSClient, name)).parameters
        asynchronous = inspect.signature(getattr(aiotts.TTSClient, name)).parameters
        assert [(p.name, p.kind, p.default) for p in blocking.values()] == [
            (p.name, p.kind, p.default) for p in asynchronous.values()
        ]


async def test_refused_credentials_stop_the_run_with_their_error(
    emulator: Emulator, tmp_path: Path
) -> None:
    ledger = tmp_path / "aiotts.db"
    client = TTSClient(emulator.client_id, "not-the-secret", base_url=emulator.url)
    async with client:
        with pytest.raises(CredentialsError):
            await run(client, [("a", "Never sent.")], tmp_path, ledger=ledger)
    assert emulator.task_ids() == ()
    with OutcomeStore(ledger) as store:
        entry = store.ledger_entry("a")
    assert entry is not None and entry.state == "unsent"  # a resume sends it


def test_the_blocking_client_synthesizes_and_submits(tmp_path: Path) -> None:
    from tests.integration.test_sync_client import ThreadedEmulator, blocking_client

    server = ThreadedEmulator(EmulatorConfig(pending_seconds=0, processing_seconds=0))
    try:
        with blocking_client(server) as client:
            outcomes = list(client.synthesize([("a", "Blocking one."), ("b", "Two.")], tmp_path))
            submitted = list(client.submit_many(["Three."], ledger=tmp_path / "l.db"))
    finally:
        server.close()
    assert sorted((o.key, o.state.value) for o in outcomes) == [("a", "done"), ("b", "done")]
    assert (tmp_path / "a.wav").exists()
    assert [(s.key, s.ok) for s in submitted] == [("0", True)]


async def test_a_stop_while_the_batch_waits_for_room_records_every_submit_in_flight(
    tmp_path: Path,
) -> None:
    """The batch holds two tasks (``tasks_in_flight``) that stay Pending, and nobody reads
    outcomes: the third id waits for room inside the batch while the fourth text's POST is
    still out. A stop then must give that POST its grace and record the id it brings back
    before the store closes."""
    ledger = tmp_path / "aiotts.db"
    gates = {"k2": anyio.Event(), "k3": anyio.Event()}

    async def texts():  # type: ignore[no-untyped-def]
        yield ("k0", "Held first.")
        yield ("k1", "Held second.")
        for key in gates:
            await gates[key].wait()
            yield (key, f"Text {key}.")

    async def until_sending(key: str) -> None:
        while True:
            with OutcomeStore(ledger, read_only=True) as store:
                entry = store.ledger_entry(key)
            if entry is not None and entry.state == "sending":
                return
            await anyio.sleep(0.01)

    async with Emulator(EmulatorConfig(pending_seconds=60)) as emu:
        async with client_for(emu, limits=aiotts.Limits(tasks_in_flight=2)) as client:
            synthesis = client.synthesize(texts(), tmp_path, ledger=ledger)
            async with synthesis:
                with anyio.fail_after(20):
                    while synthesis.submitted < 2:
                        await anyio.sleep(0.01)
                    emu.update_faults(latency=2.0)  # each POST from now on takes 2 s
                    gates["k2"].set()
                    await until_sending("k2")
                    await anyio.sleep(1.0)
                    gates["k3"].set()  # k3 leaves a second after k2: it is out when...
                    await until_sending("k3")
                    while synthesis.submitted < 3:  # ...k2 comes back and waits for room
                        await anyio.sleep(0.01)
                assert len(emu.task_ids()) == 3  # k3's POST is still out: stop now
        created = set(emu.task_ids())
    assert len(created) == 4  # k3's POST got its grace
    with OutcomeStore(ledger) as store:
        entries = {key: store.ledger_entry(key) for key in ("k0", "k1", "k2", "k3")}
    reached = {key: e and (e.state, e.task_id in created) for key, e in entries.items()}
    assert reached == dict.fromkeys(entries, ("submitted", True))


async def test_closing_the_client_ends_a_synthesis_that_nobody_reads(
    emulator: Emulator, tmp_path: Path
) -> None:
    """One outcome is read, then nobody reads: more outcomes end than the synthesis queues
    for its reader. Closing the client still ends it, and the record is whole."""
    ledger = tmp_path / "aiotts.db"
    texts = [(f"k{n}", f"Sentence number {n}.") for n in range(600)]
    closed = anyio.Event()

    async def close(client: TTSClient) -> None:
        await client.aclose()
        closed.set()

    async with client_for(emulator) as client:
        synthesis = client.synthesize(texts, tmp_path, ledger=ledger)
        await synthesis.__anext__()
        with anyio.fail_after(20):
            while synthesis.statistics().finished < 300:
                await anyio.sleep(0.01)
        async with anyio.create_task_group() as group:
            group.start_soon(close, client)
            with anyio.move_on_after(20):
                await closed.wait()
            hung = not closed.is_set()
            synthesis.cancel()  # what the close should have done: lets a hung one end
    assert not hung, "closing the client waited for a synthesis nobody reads"
    created = set(emulator.task_ids())
    with OutcomeStore(ledger) as store:
        entries = [store.ledger_entry(key) for key, _ in texts]
        submitted = {e.task_id for e in entries if e is not None and e.state == "submitted"}
        assert submitted == created
        assert all(e is None or e.state in ("submitted", "unsent") for e in entries)
        recorded = {i: store.get(i) for i in created}
    states = Counter(o.state for o in recorded.values() if o is not None)
    assert set(states) <= {OutcomeState.DONE, OutcomeState.CANCELLED}
    assert states[OutcomeState.DONE] >= 300
