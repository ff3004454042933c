"""``aiotts synthesize FILE --out DIR``: the three input formats, bad input refused before
anything is sent, and SIGKILL at random moments followed by ``--resume``, with the
emulator's own records as the witness that no text was sent twice and no saved audio
fetched twice."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import anyio
import orjson
import pytest

from aiotts._manifest import complete_size
from aiotts._store import OutcomeStore
from aiotts._texts import file_stem
from aiotts.cli import ExitCode, main
from aiotts.emulator import Emulator, EmulatorConfig
from tests.helpers import cli_env, temp_files

pytestmark = pytest.mark.anyio

AIOTTS = [sys.executable, "-m", "aiotts"]


async def run(
    args: Sequence[str], emu: Emulator | None, *, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process([*AIOTTS, *args], input=stdin, env=cli_env(emu), check=False)


def json_lines(output: bytes) -> dict[str, dict[str, object]]:
    lines = [orjson.loads(line) for line in output.splitlines()]
    return {str(line["key"]): line for line in lines}


def texts_sent(emulator: Emulator) -> Counter[str]:
    return Counter(emulator.record(task_id).text for task_id in emulator.task_ids())


@pytest.mark.parametrize(
    ("name", "content", "options", "keys"),
    [
        ("in.txt", "First line.\n\nThird line.\n", [], {"1": "First line.", "3": "Third line."}),
        (
            "in.jsonl",
            '{"key": "intro", "text": "Hello."}\n{"key": 2, "text": "Two."}\n',
            [],
            {"intro": "Hello.", "2": "Two."},
        ),
        (
            "in.csv",
            'id,sentence\nA/1,"One, with a comma."\nb,Two.\n',
            ["--key-column", "id", "--text-column", "sentence"],
            {"A/1": "One, with a comma.", "b": "Two."},
        ),
    ],
)
async def test_each_input_format_gives_one_file_per_key(
    emulator: Emulator,
    tmp_path: Path,
    name: str,
    content: str,
    options: list[str],
    keys: dict[str, str],
) -> None:
    source = tmp_path / name
    source.write_text(content)
    out = tmp_path / "out"
    result = await run(["synthesize", str(source), "--out", str(out), "--json", *options], emulator)
    assert result.returncode == ExitCode.OK, result.stderr.decode()
    lines = json_lines(result.stdout)
    assert set(lines) == set(keys)
    for key, text in keys.items():
        line = lines[key]
        assert line["state"] == "done" and line["uncertain"] is False
        assert line["files"] == [str(out / f"{file_stem(key)}.wav")]
        assert emulator.record(str(line["id"])).text == text
    assert texts_sent(emulator) == Counter(keys.values())


async def test_standard_input_and_a_second_run_that_needs_resume(
    emulator: Emulator, tmp_path: Path
) -> None:
    args = ["synthesize", "-", "--out", str(tmp_path)]
    piped = b"Piped one.\nPiped two.\n"
    result = await run(args, emulator, stdin=piped)
    assert result.returncode == ExitCode.OK, result.stderr.decode()
    assert (tmp_path / "1.wav").exists() and (tmp_path / "2.wav").exists()
    assert b"aiotts synthesize" in result.stdout and b"done" in result.stdout
    again = await run(args, emulator, stdin=piped)
    assert again.returncode == ExitCode.USAGE
    assert b"pass --resume" in again.stderr
    resumed = await run([*args, "--resume", "--quiet"], emulator, stdin=piped)
    assert resumed.returncode == ExitCode.OK
    assert b"2 done (2 from an earlier run)" in resumed.stdout
    assert texts_sent(emulator) == Counter({"Piped one.": 1, "Piped two.": 1})


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("dup.jsonl", '{"key": "a", "text": "A."}\n{"key": "a", "text": "B."}\n', "line 2"),
        ("bad.jsonl", '{"key": "a", "text": "A."}\nnot json\n', "line 2: not a JSON object"),
        ("empty.csv", "key,text\na,A.\nb,\n", "line 3: the text of key 'b' is empty"),
        ("nothing.txt", "\n\n", "holds no texts"),
    ],
)
def test_bad_input_is_refused_naming_the_line_before_anything_is_sent(
    tmp_path: Path,
    name: str,
    content: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In this process: the input is checked before any client exists, so an address
    where nothing listens proves that nothing was sent."""
    for variable, value in cli_env(None).items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("AIOTTS_BASE_URL", "http://127.0.0.1:9")
    source = tmp_path / name
    source.write_text(content)
    code = main(["synthesize", str(source), "--out", str(tmp_path / "out"), "--trial"])
    assert code == ExitCode.USAGE
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


async def test_ctrl_c_records_what_was_sent_and_resume_finishes(tmp_path: Path) -> None:
    config = EmulatorConfig(pending_seconds=(0, 0.5), processing_seconds=(0, 0.2), seed=5)
    source = tmp_path / "texts.txt"
    source.write_text("".join(f"Interrupted text number {n}.\n" for n in range(20)))
    args = ["synthesize", str(source), "--out", str(tmp_path / "out"), "--submits", "4"]
    async with Emulator(config) as emu:
        process = await anyio.open_process(
            [*AIOTTS, *args], env=cli_env(emu), stdout=subprocess.DEVNULL
        )
        with anyio.fail_after(60):
            while len(emu.task_ids()) < 8:
                await anyio.sleep(0.002)
            process.send_signal(signal.SIGINT)
            assert await process.wait() == ExitCode.INTERRUPTED
        assert process.stderr is not None
        assert b"--resume" in await process.stderr.receive()
        final = await run([*args, "--resume", "--json"], emu)
        assert final.returncode == ExitCode.OK, final.stderr.decode()  # nothing uncertain
        assert max(texts_sent(emu).values()) == 1 and len(texts_sent(emu)) == 20


# -- SIGKILL at random moments, then --resume ---------------------------------------------------


def saved_tasks(out: Path) -> dict[str, str]:
    """Task id -> key of every text whose file is whole now, as the ledger names them."""
    ledger = out / "aiotts.db"
    if not ledger.exists():
        return {}
    with OutcomeStore(ledger, read_only=True) as store:
        entries = list(store.ledger())
    return {
        entry.task_id: entry.key
        for entry in entries
        if entry.task_id is not None
        and complete_size(out / f"{file_stem(entry.key)}.wav") is not None
    }


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_sigkill_at_random_moments_then_resume_pays_and_fetches_once(
    seed: int, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    config = EmulatorConfig(
        pending_seconds=(0, 0.4), processing_seconds=(0, 0.2), audio_bytes=150_000, seed=seed
    )
    count = 30
    source = tmp_path / "texts.txt"
    source.write_text("".join(f"Killed run text number {n}.\n" for n in range(count)))
    out = tmp_path / "out"
    args = ["synthesize", str(source), "--out", str(out), "--submits", "4", "--json"]
    async with Emulator(config) as emu:
        kills = 0
        fetched_at_kill: dict[str, int] = {}
        for attempt in range(2):
            process = await anyio.open_process(
                [*AIOTTS, *args, *(["--resume"] if attempt else [])],
                env=cli_env(emu),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            # A random moment, by the emulator's progress (never by the clock): after some
            # submits, or after some audio was served.
            submits = len(emu.task_ids()) + rng.randint(1, 25)
            served = sum(emu.record(i).audio_finished for i in emu.task_ids()) + rng.randint(0, 10)
            by_audio = rng.random() < 0.5
            with anyio.fail_after(60):
                while process.returncode is None:
                    ids = emu.task_ids()
                    if by_audio:
                        if sum(emu.record(i).audio_finished for i in ids) >= served:
                            break
                    elif len(ids) >= submits:
                        break
                    await anyio.sleep(0.002)
            if process.returncode is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            await process.wait()
            for task_id in saved_tasks(out):
                fetched_at_kill.setdefault(task_id, emu.record(task_id).audio_finished)

        final = await run([*args, "--resume"], emu)
        assert final.returncode in (ExitCode.OK, ExitCode.SUBMIT_UNCERTAIN), final.stderr.decode()
        lines = json_lines(final.stdout)
        assert set(lines) == {str(n + 1) for n in range(count)}
        sent = texts_sent(emu)
        # No text was sent twice: the uncertain ones are reported, not sent again.
        assert max(sent.values()) == 1
        uncertain = [key for key, line in lines.items() if line["uncertain"]]
        assert len(uncertain) <= kills * 4
        for key, line in lines.items():
            assert line["state"] == "done" or line["uncertain"], line
            if line["state"] == "done":
                assert complete_size(out / f"{key}.wav") is not None
        # Audio whose file was whole at a kill was never fetched again; audio fetched twice
        # at all is only what a kill cut between the body's end and the file's rename.
        for task_id, served_then in fetched_at_kill.items():
            assert emu.record(task_id).audio_finished == served_then
        served = [emu.record(task_id).audio_finished for task_id in emu.task_ids()]
        assert sum(n - 1 for n in served if n > 1) <= kills * 16
        assert temp_files(out) == []
    assert kills >= 1
