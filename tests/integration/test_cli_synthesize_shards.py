"""``aiotts synthesize --shard``: N runs given one input file split its texts by key,
each with a ledger of its own, so every key's file is written once and no text is sent
twice in total (the emulator's own records are the witness)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import anyio
import orjson
import pytest

from aiotts import shard_of
from aiotts._store import OutcomeStore
from aiotts._texts import file_stem
from aiotts.cli import ExitCode, main
from aiotts.emulator import Emulator
from tests.helpers import cli_env

pytestmark = pytest.mark.anyio

AIOTTS = [sys.executable, "-m", "aiotts"]

TEXTS = {
    **{f"line-{n}": f"Sharded sentence number {n}." for n in range(18)},
    "Chapter 1/2": "A key that is not a file name.",
    "Émile": "Another one.",
}


async def run(
    args: Sequence[str], emu: Emulator | None, *, stdin: bytes | None = None, **env: str
) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process(
        [*AIOTTS, *args], input=stdin, env=cli_env(emu, **env), check=False
    )


def texts_sent(emulator: Emulator) -> Counter[str]:
    return Counter(emulator.record(task_id).text for task_id in emulator.task_ids())


def write_jsonl(path: Path, texts: dict[str, str]) -> Path:
    path.write_bytes(
        b"".join(orjson.dumps({"key": k, "text": t}) + b"\n" for k, t in texts.items())
    )
    return path


def ledger_keys(path: Path) -> set[str]:
    with OutcomeStore(path, read_only=True) as store:
        return {entry.key for entry in store.ledger()}


async def test_n_shards_write_every_file_once_and_send_every_text_once(
    emulator: Emulator, tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "texts.jsonl", TEXTS)
    out = tmp_path / "out"
    taken: dict[int, set[str]] = {}

    async def one(k: int) -> None:
        args = ["synthesize", str(source), "--out", str(out), "--shard", f"{k}/3", "--json"]
        result = await run(args, emulator)
        assert result.returncode == ExitCode.OK, result.stderr.decode()
        said = result.stderr.decode()
        assert f"shard {k}/3 (counted from 0), from --shard; ledger" in said
        assert f"aiotts.shard-{k}-of-3.db" in said
        lines = [orjson.loads(line) for line in result.stdout.splitlines()]
        assert {line["state"] for line in lines} == {"done"}
        taken[k] = {line["key"] for line in lines}

    async with anyio.create_task_group() as group:  # three runs at once, as an array would
        for k in range(3):
            group.start_soon(one, k)
    for k in range(3):
        assert taken[k] == {key for key in TEXTS if shard_of(key, 3) == k}
        assert ledger_keys(out / f"aiotts.shard-{k}-of-3.db") == taken[k]
    assert sorted(key for part in taken.values() for key in part) == sorted(TEXTS)
    assert sorted(p.name for p in out.glob("*.wav")) == sorted(
        f"{file_stem(key)}.wav" for key in TEXTS
    )
    assert not (out / "aiotts.db").exists()
    assert texts_sent(emulator) == Counter(TEXTS.values())  # every text once, in total

    # A shard run again resumes its own ledger: nothing sent, nothing fetched again.
    audio = emulator.stats().audio_finished
    args = ["synthesize", str(source), "--out", str(out), "--shard", "1/3", "--resume", "-q"]
    again = await run(args, emulator)
    assert again.returncode == ExitCode.OK, again.stderr.decode()
    assert f"{len(taken[1])} done ({len(taken[1])} from an earlier run)" in again.stdout.decode()
    assert texts_sent(emulator) == Counter(TEXTS.values())
    assert emulator.stats().audio_finished == audio


async def test_shard_auto_reads_the_job_array(emulator: Emulator, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "texts.jsonl", TEXTS)
    out = tmp_path / "out"
    args = ["synthesize", str(source), "--out", str(out), "--shard", "auto", "--shards", "2"]
    result = await run([*args, "-q"], emulator, JOB_COMPLETION_INDEX="1")
    assert result.returncode == ExitCode.OK, result.stderr.decode()
    assert "shard 1/2 (counted from 0), from Kubernetes (JOB_COMPLETION_INDEX=1, of 2)" in (
        result.stderr.decode()
    )
    mine = {key for key in TEXTS if shard_of(key, 2) == 1}
    assert {p.stem for p in out.glob("*.wav")} == {file_stem(key) for key in mine}
    assert ledger_keys(out / "aiotts.shard-1-of-2.db") == mine
    assert texts_sent(emulator) == Counter(TEXTS[key] for key in mine)


async def test_a_shard_without_texts_is_no_error_and_an_array_without_shard_is_warned(
    emulator: Emulator, tmp_path: Path
) -> None:
    key = "only"
    source = write_jsonl(tmp_path / "one.jsonl", {key: "The only text."})
    other = 1 - shard_of(key, 2)
    args = ["synthesize", str(source), "--out", str(tmp_path / "a"), "--shard", f"{other}/2"]
    result = await run([*args, "-q"], emulator)
    assert result.returncode == ExitCode.OK, result.stderr.decode()
    assert "0 tasks" in result.stdout.decode()
    assert emulator.task_ids() == ()
    result = await run(
        ["synthesize", str(source), "--out", str(tmp_path / "b"), "-q"],
        emulator,
        SLURM_ARRAY_TASK_ID="0",
    )
    assert result.returncode == ExitCode.OK, result.stderr.decode()
    assert "SLURM_ARRAY_TASK_ID is set, but --shard is not given: this process sends every " in (
        result.stderr.decode()
    )
    assert (tmp_path / "b" / "aiotts.db").exists()
    assert texts_sent(emulator) == Counter({"The only text.": 1})


@pytest.mark.parametrize(
    ("extra", "env", "content", "message"),
    [
        (["--shard", "auto"], {}, None, "--shard auto found no job array's variable"),
        (["--shard", "auto"], {"JOB_COMPLETION_INDEX": "0"}, None, "pass --shards N"),
        (["--shard", "3/3"], {}, None, "numbered from 0 to 2"),
        (["--shards", "2"], {}, None, "--shards goes with --shard auto"),
        (["--shard", "0/2", "--ledger", "x.jsonl"], {}, None, "must be a store"),
        # Each shard checks the whole input: a bad line in another shard's share too.
        (["--shard", "0/2"], {}, '{"key": "a", "text": "A."}\nnot json\n', "line 2"),
        (
            ["--shard", "0/2"],
            {},
            '{"key": "a", "text": "A."}\n{"key": "a", "text": "B."}\n',  # "a" is in 1/2
            "line 2: the key 'a' appears again",
        ),
        (["--shard", "0/2"], {}, "\n", "holds no texts"),
    ],
)
def test_shard_mistakes_are_refused_before_anything_is_sent(
    extra: list[str],
    env: dict[str, str],
    content: str | None,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In this process, against an address where nothing listens: refused before any
    request, and no folder made."""
    for name in ("AIOTTS_SHARD", "AIOTTS_SHARDS", "JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    for variable, value in {**cli_env(None), **env}.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("AIOTTS_BASE_URL", "http://127.0.0.1:9")
    source = tmp_path / "texts.jsonl"
    if content is None:
        write_jsonl(source, TEXTS)
    else:
        source.write_text(content)
    code = main(["synthesize", str(source), "--out", str(tmp_path / "out"), "--trial", *extra])
    assert code == ExitCode.USAGE
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


async def test_processes_split_the_texts_among_children(emulator: Emulator, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "texts.jsonl", TEXTS)
    out = tmp_path / "out"
    args = ["synthesize", str(source), "--out", str(out), "--processes", "2"]
    result = await run([*args, "--json"], emulator)
    assert result.returncode == ExitCode.OK, result.stderr.decode()
    assert "2 processes, shards 0/2 to 1/2" in result.stderr.decode()
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert sorted(line["key"] for line in lines) == sorted(TEXTS)
    assert {line["state"] for line in lines} == {"done"}
    for k in range(2):
        mine = {key for key in TEXTS if shard_of(key, 2) == k}
        assert ledger_keys(out / f"aiotts.shard-{k}-of-2.db") == mine
    assert {p.stem for p in out.glob("*.wav")} == {file_stem(key) for key in TEXTS}
    assert texts_sent(emulator) == Counter(TEXTS.values())

    # Standard input, copied once for both children; resumed, nothing is sent again.
    piped = (tmp_path / "texts.jsonl").read_bytes()
    args = ["synthesize", "-", "--format", "jsonl", "--out", str(out), "--processes", "2"]
    again = await run([*args, "--resume", "-q"], emulator, stdin=piped)
    assert again.returncode == ExitCode.OK, again.stderr.decode()
    assert f"{len(TEXTS)} done ({len(TEXTS)} from an earlier run)" in again.stdout.decode()
    assert texts_sent(emulator) == Counter(TEXTS.values())
