"""Bad answers from the server: each a clear per-task outcome; none crashes a batch or
loops forever."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from aiotts import (
    AuthenticationError,
    DecodeError,
    OutcomeState,
    ResponseError,
    RetryPolicy,
    UnexpectedStatusError,
    read_manifest,
)
from aiotts.emulator import Emulator, EmulatorConfig
from tests.helpers import client_for, temp_files

pytestmark = pytest.mark.anyio

RETRY = RetryPolicy(first_delay=0.01, max_delay=0.02, max_attempts=3, max_time=30)
CONFIG = EmulatorConfig(pending_seconds=0, processing_seconds=0, audio_bytes=120_000)

# knob -> (the outcome when every answer is bad, words the error must contain)
ALWAYS_BAD = {
    "non_json_share": (OutcomeState.ABORTED, "not JSON"),
    "html_share": (OutcomeState.ABORTED, "text/html"),
    "truncated_json_share": (OutcomeState.ABORTED, "byte"),
    "bad_base64_share": (OutcomeState.ABORTED, "Base64"),
    "bad_wav_header_share": (OutcomeState.ABORTED, "WAV"),
    "missing_results_share": (OutcomeState.ABORTED, "no audio"),
    "unknown_status_share": (OutcomeState.FAILED, "taskStatus"),
}


@pytest.mark.parametrize("knob", list(ALWAYS_BAD))
async def test_an_always_bad_answer_ends_each_task_clearly(knob: str, tmp_path: Path) -> None:
    state, words = ALWAYS_BAD[knob]
    async with Emulator(CONFIG) as emu:
        ids = emu.create_tasks(6)
        emu.set_faults(**{knob: 1.0})
        async with client_for(emu, retry=RETRY) as client:
            with anyio.fail_after(30):
                report = await client.fetch_all(ids, tmp_path)
        assert not report.done
        assert len(report.failed) == 6
        for outcome in report.failed:
            assert outcome.state is state
            assert words in (outcome.error or ""), outcome.error
        polls = emu.stats().count("fetch")
    expected_attempts = 1 if state is OutcomeState.FAILED else RETRY.max_attempts
    assert polls == 6 * expected_attempts  # bounded: never a loop
    assert temp_files(tmp_path) == []
    assert list(tmp_path.glob("*.wav")) == []


@pytest.mark.parametrize(
    "knob", [k for k, v in ALWAYS_BAD.items() if v[0] is not OutcomeState.FAILED]
)
async def test_a_sometimes_bad_answer_is_retried_to_success(knob: str, tmp_path: Path) -> None:
    async with Emulator(CONFIG) as emu:
        ids = emu.create_tasks(20)
        emu.set_faults(**{knob: 0.3})
        async with client_for(emu, retry=RetryPolicy(first_delay=0.01, max_attempts=10)) as c:
            with anyio.fail_after(30):
                report = await c.fetch_all(ids, tmp_path)
        assert len(report.done) == 20
        for outcome in report.done:
            assert outcome.files[0].read_bytes() == emu.audio(outcome.task_id)


async def test_wrong_content_type_on_a_good_body_is_accepted(tmp_path: Path) -> None:
    async with Emulator(CONFIG) as emu:
        ids = emu.create_tasks(3)
        emu.set_faults(wrong_content_type_share=1.0)
        async with client_for(emu, retry=RETRY) as client:
            report = await client.fetch_all(ids, tmp_path)
    assert len(report.done) == 3


async def test_a_401_that_persists_after_a_fresh_token(tmp_path: Path) -> None:
    """No task can get past it: the batch stops, each id in flight recorded with the cause."""
    async with Emulator(CONFIG) as emu:
        ids = emu.create_tasks(5)
        emu.set_faults(always_401=True)
        async with client_for(emu, retry=RETRY) as client:
            with (
                anyio.fail_after(30),
                pytest.raises(AuthenticationError, match="freshly issued token"),
            ):
                await client.fetch_all(ids, tmp_path, manifest=tmp_path / "m.jsonl")
            with pytest.raises(AuthenticationError, match="freshly issued token"):
                await client.status(ids[0])
        stats = emu.stats()
    entries = read_manifest(tmp_path / "m.jsonl")
    assert entries and {e.state for e in entries.values()} == {OutcomeState.ABORTED}
    assert all("freshly issued token" in (e.error or "") for e in entries.values())
    assert stats.count("fetch", 401) <= 2 * 5  # each task at most: the request, one replay
    assert stats.tokens_issued <= 3  # the server refuses fresh tokens: aiotts stops asking


async def test_single_calls_raise_a_typed_error(tmp_path: Path) -> None:
    async with Emulator(CONFIG) as emu:
        task_id = emu.create_tasks(1)[0]
        async with client_for(emu, retry=RETRY) as client:
            emu.set_faults(bad_base64_share=1.0)
            with pytest.raises(DecodeError) as caught:
                await client.download(task_id, tmp_path)
            assert caught.value.offset >= 0
            emu.set_faults(html_share=1.0)
            with pytest.raises(ResponseError, match="not JSON"):
                await client.fetch(task_id)
            emu.set_faults(unknown_status_share=1.0)
            with pytest.raises(UnexpectedStatusError) as status:
                await client.status(task_id)
            assert status.value.raw not in ("Pending", "Completed")
    assert list(tmp_path.iterdir()) == []
