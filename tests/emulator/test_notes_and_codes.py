"""Knobs for what a real answer may say besides the audio: notes on a Completed task, a
``responseStatusCode`` other than Ok, and a NotExist answer without its id."""

from __future__ import annotations

import argparse
import base64
import json

import aiohttp
import pytest

from aiotts.emulator import Emulator, Faults, synthesize
from aiotts.emulator._cli import add_arguments, faults_from_args

from .conftest import API, STATUS, bearer

pytestmark = pytest.mark.anyio


async def get(
    http: aiohttp.ClientSession, emu: Emulator, task_id: str, path: str = API
) -> dict[str, object]:
    headers = bearer(emu.issue_token())
    async with http.get(emu.url + path, params={"id": task_id}, headers=headers) as resp:
        assert resp.status == 200
        body: dict[str, object] = json.loads(await resp.read())
        return body


@pytest.mark.parametrize("audio_bytes", [2_000, 400_000])  # parsed whole, and streamed
async def test_notes_come_with_a_completed_answer_and_its_audio(
    http: aiohttp.ClientSession, audio_bytes: int
) -> None:
    faults = Faults(notes_share=1.0, note_messages=("m1", "m2"), note_warnings=("w1",))
    async with Emulator(faults=faults) as emu:
        [done] = emu.create_tasks(["noted"], ready_after=0, audio_bytes=audio_bytes)
        [later] = emu.create_tasks(["later"], ready_after=60)
        fetched = await get(http, emu, done)
        status = await get(http, emu, done, STATUS)
        pending = await get(http, emu, later)
    assert fetched["error"] == {"messages": ["m1", "m2"], "warnings": ["w1"]}
    assert fetched["taskStatus"] == "Completed" and fetched["responseStatusCode"] == "Ok"
    results = fetched["results"]
    assert isinstance(results, list)
    assert base64.b64decode(results[0]["data"]) == synthesize("noted", size=audio_bytes)
    assert status["error"] == fetched["error"]
    assert pending["error"] is None
    assert emu.stats().faults["notes"] == 2


async def test_result_data_lost_is_completed_without_results(http: aiohttp.ClientSession) -> None:
    async with Emulator(faults=Faults(result_data_lost_share=1.0)) as emu:
        [done] = emu.create_tasks(["lost"], ready_after=0)
        [later] = emu.create_tasks(["later"], ready_after=60)
        lost = await get(http, emu, done)
        pending = await get(http, emu, later)
        assert emu.record(done).audio_started == 0
    assert lost == {
        "id": done,
        "responseStatusCode": "ResultDataLost",
        "taskStatus": "Completed",
        "results": None,
        "error": None,
    }
    assert pending["taskStatus"] == "Pending" and pending["responseStatusCode"] == "NotReady"


async def test_not_exist_answers_may_lose_their_id(http: aiohttp.ClientSession) -> None:
    async with Emulator(faults=Faults(null_id_share=1.0)) as emu:
        [later] = emu.create_tasks(["later"], ready_after=60)
        shown = [(await get(http, emu, f"unknown-{n}"))["id"] for n in range(16)]
        pending = await get(http, emu, later)
    assert set(shown) == {None, ""}
    assert pending["id"] == later


def test_the_knobs_are_flags_and_admin_json() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--notes-share",
            "1",
            "--note-message",
            "a",
            "--note-message",
            "b",
            "--note-warning",
            "c",
            "--result-data-lost-share",
            "0.25",
            "--null-id-share",
            "0.5",
        ]
    )
    faults = faults_from_args(args)
    assert faults.note_messages == ("a", "b") and faults.note_warnings == ("c",)
    assert (faults.notes_share, faults.result_data_lost_share, faults.null_id_share) == (
        1.0,
        0.25,
        0.5,
    )
    assert Faults.from_json(json.loads(json.dumps(faults.to_json()))) == faults
    with pytest.raises(ValueError, match="note_warnings"):
        Faults(note_warnings=(1,))  # type: ignore[arg-type]
