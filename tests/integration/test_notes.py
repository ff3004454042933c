"""What the server says alongside a Completed result (``error.messages`` and
``error.warnings``, and its ``responseStatusCode``) reaches the caller on every path."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from aiotts import OutcomeState, read_manifest
from aiotts.cli._commands import outcome_json
from aiotts.emulator import Emulator, EmulatorConfig, Faults
from tests.helpers import client_for

pytestmark = pytest.mark.anyio

NOTES = Faults(notes_share=1.0, note_messages=("said m",), note_warnings=("said w1", "said w2"))
MESSAGES = ("said m",)
WARNINGS = ("said w1", "said w2")


@pytest.mark.parametrize("audio_bytes", [2_000, 300_000])  # parsed whole, and streamed
async def test_notes_reach_fetch_wait_outcomes_the_manifest_and_the_json_line(
    tmp_path: Path, audio_bytes: int
) -> None:
    config = EmulatorConfig(pending_seconds=0, processing_seconds=0, audio_bytes=audio_bytes)
    async with Emulator(config, faults=NOTES) as emu:
        ids = emu.create_tasks(3)
        manifest = tmp_path / "out" / "manifest.jsonl"
        async with client_for(emu) as client:
            fetched = await client.fetch(ids[0])
            saved = await client.wait(ids[1], tmp_path / "wait")
            batch = client.fetch_many(ids, tmp_path / "out", manifest=manifest)
            outcomes = [o async for o in batch]
            resumed = [
                o
                async for o in client.fetch_many(
                    ids, tmp_path / "out", manifest=manifest, resume=True
                )
            ]
    assert (fetched.messages, fetched.warnings) == (MESSAGES, WARNINGS)
    assert (saved.result.messages, saved.result.warnings) == (MESSAGES, WARNINGS)
    assert saved.result.response_code == "Ok"
    for outcome in outcomes + resumed:
        assert outcome.state is OutcomeState.DONE
        assert (outcome.messages, outcome.warnings) == (MESSAGES, WARNINGS)
        assert outcome.response_code == "Ok"
    assert all(o.resumed for o in resumed)
    for entry in read_manifest(manifest).values():
        assert (entry.messages, entry.warnings, entry.response_code) == (MESSAGES, WARNINGS, "Ok")
    line = orjson.loads(outcome_json(outcomes[0]))
    assert (line["messages"], line["warnings"]) == (list(MESSAGES), list(WARNINGS))
