"""``aiotts.dask.synthesize_bag`` on the LocalCluster of ``test_dask.py``: texts by key
become files, and a graph computed again (as a retry would run a partition again) sends
no text and fetches no audio a second time (the emulator's own counters). And ``retries``
of ``aiotts.dask``: Dask's DataFrames drop task annotations, so a partition runs itself
again after an error that may pass, each time with a fresh client."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip(
    "distributed", reason="aiotts.dask needs the dask extra: pip install 'aiotts[dask]'"
)
pytest.importorskip("dask.dataframe", reason="aiotts.dask needs the dask extra (pandas, pyarrow)")

import dask.bag as db
import dask.dataframe as dd
import pandas as pd

from aiotts import AuthenticationError, ConnectError, UsageError
from aiotts._texts import file_stem
from aiotts.dask import TEXT_OUTCOME_COLUMNS, fetch_bag, synthesize_bag
from aiotts.emulator import EmulatorProcess
from tests.integration.test_dask import cluster, emu, options  # noqa: F401 -- fixtures

pytestmark = pytest.mark.slow


def texts_sent(emulator: EmulatorProcess) -> Counter[str]:
    return Counter(record.text for record, _ in emulator.records())


def test_a_bag_of_texts_becomes_files_and_a_second_compute_sends_nothing(
    cluster: object,  # noqa: F811
    emu: EmulatorProcess,  # noqa: F811
    tmp_path: Path,
) -> None:
    before = texts_sent(emu)
    texts = {f"bag-{n}": f"Dask text number {n}." for n in range(16)}
    texts["Chapter 1/2"] = "A key that is not a file name."
    bag = db.from_sequence(list(texts.items()), npartitions=4)
    outcomes = synthesize_bag(bag, tmp_path, **options(emu))
    assert tuple(outcomes.columns) == TEXT_OUTCOME_COLUMNS
    frame = outcomes.compute()
    assert sorted(frame["key"]) == sorted(texts)
    assert set(frame["state"]) == {"done"} and frame["error"].isna().all()
    for row in frame.itertuples():
        assert list(row.files) == [str(tmp_path / f"{file_stem(row.key)}.wav")]
        assert emu.record(row.id).text == texts[row.key]
        assert row.bytes == len(emu.audio(row.id))
    assert texts_sent(emu) - before == Counter(texts.values())  # each text once
    assert len(list((tmp_path / ".aiotts").glob("texts-*.db"))) == 4

    # Computed again, every partition resumes from its ledger: no submit, no download.
    stats = emu.stats()
    again = outcomes.compute()
    assert sorted(again["key"]) == sorted(texts) and set(again["state"]) == {"done"}
    assert dict(zip(again["key"], again["id"], strict=True)) == dict(
        zip(frame["key"], frame["id"], strict=True)
    )
    after = emu.stats()
    assert after.tasks_created == stats.tasks_created
    assert after.count("submit") == stats.count("submit")
    assert after.audio_started == stats.audio_started
    assert texts_sent(emu) - before == Counter(texts.values())


def test_a_dataframe_of_texts_and_a_text_that_gets_no_task(
    cluster: object,  # noqa: F811
    emu: EmulatorProcess,  # noqa: F811
    tmp_path: Path,
) -> None:
    table = pd.DataFrame(
        {
            "name": ["frame-a", "frame-b", "frame-c", "blank"],
            "sentence": ["Frame text A.", "Frame text B.", "Frame text C.", "   "],
        }
    )
    texts = dd.from_pandas(table, npartitions=2)
    outcomes = synthesize_bag(
        texts, tmp_path, key_column="name", text_column="sentence", **options(emu)
    )
    frame = outcomes.compute().set_index("key")
    assert sorted(frame.index) == sorted(table["name"])
    assert set(frame.loc[["frame-a", "frame-b", "frame-c"], "state"]) == {"done"}
    blank = frame.loc["blank"]  # a row of its own: no id, the error naming its key
    assert blank["state"] == "aborted" and pd.isna(blank["id"]) and "'blank'" in blank["error"]
    assert list(blank["files"]) == [] and blank["bytes"] == 0
    assert not (tmp_path / "blank.wav").exists()


def test_items_that_are_not_pairs_fail_the_partition_clearly(
    cluster: object,  # noqa: F811
    emu: EmulatorProcess,  # noqa: F811
    tmp_path: Path,
) -> None:
    before = emu.stats().count("submit")
    bag = db.from_sequence(["a lone text"], npartitions=1)
    with pytest.raises(UsageError, match=r"not a \(key, text\) pair"):
        synthesize_bag(bag, tmp_path, retries=0, **options(emu)).compute()
    assert emu.stats().count("submit") == before


# -- retries ----------------------------------------------------------------------------------


def test_a_partition_that_cannot_reach_the_service_runs_again(
    cluster: object,  # noqa: F811
    emu: EmulatorProcess,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The token from the emulator, the API at a closed port: each run of the partition
    is one token request (a fresh client's), then a connection refused, which stops it."""
    bag = db.from_sequence(emu.create_tasks(1, ready_after=0), npartitions=1)
    unreachable = {"base_url": "http://127.0.0.1:9", "token_url": f"{emu.url}/connect/token"}
    asked: list[int] = []
    for retries in (0, 2):
        before = emu.stats().token_requests
        outcomes = fetch_bag(
            bag, tmp_path / str(retries), retries=retries, **options(emu, **unreachable)
        )
        with pytest.raises(ConnectError):
            outcomes.compute()
        asked.append(emu.stats().token_requests - before)
    assert asked == [1, 3]  # one run, then three


def test_refused_credentials_are_not_retried(
    cluster: object,  # noqa: F811
    emu: EmulatorProcess,  # noqa: F811
    tmp_path: Path,
) -> None:
    bag = db.from_sequence(emu.create_tasks(1, ready_after=0), npartitions=1)
    before = emu.stats().token_requests
    outcomes = fetch_bag(bag, tmp_path, retries=3, **options(emu, client_secret="wrong-again"))
    with pytest.raises(AuthenticationError):
        outcomes.compute()
    assert emu.stats().token_requests - before == 1
