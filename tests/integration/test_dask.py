"""``aiotts.dask.fetch_bag`` on a ``distributed.LocalCluster`` of two worker processes,
against an emulator in a process of its own (the cluster's calls block this thread)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "distributed", reason="aiotts.dask needs the dask extra: pip install 'aiotts[dask]'"
)
pytest.importorskip("dask.dataframe", reason="aiotts.dask needs the dask extra (pandas, pyarrow)")

import dask.bag as db
import dask.dataframe as dd
import pandas as pd
from distributed import Client, LocalCluster

from aiotts import AuthenticationError
from aiotts.dask import OUTCOME_COLUMNS, fetch_bag
from aiotts.emulator import EmulatorConfig, EmulatorProcess
from tests.helpers import FAST_POLL, FAST_RETRY

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[Client]:
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None
        ) as local,
        Client(local) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(EmulatorConfig(pending_seconds=0, processing_seconds=0)) as process:
        yield process


def options(emu: EmulatorProcess, **more: Any) -> dict[str, Any]:
    assert emu.client_id is not None
    return {
        "client_id": emu.client_id,
        "client_secret": "emulator-secret",
        "base_url": emu.url,
        "retry": FAST_RETRY,
        "poll": FAST_POLL,
        **more,
    }


def test_a_bag_of_ids_becomes_a_dataframe_of_outcomes(
    cluster: Client, emu: EmulatorProcess, tmp_path: Path
) -> None:
    good = emu.create_tasks(40, ready_after=0, audio_bytes=20_000)
    bad = emu.create_tasks(2, ready_after=0, fail=True)
    ids = [*good, *bad]
    tokens_before = emu.stats().tokens_issued
    outcomes = fetch_bag(db.from_sequence(ids, npartitions=6), tmp_path, **options(emu))
    assert tuple(outcomes.columns) == OUTCOME_COLUMNS
    frame = outcomes.compute()
    assert sorted(frame["id"]) == sorted(ids)
    states = dict(zip(frame["id"], frame["state"], strict=True))
    assert {states[i] for i in good} == {"done"} and {states[i] for i in bad} == {"failed"}
    for row in frame.itertuples():
        if row.state == "done":
            assert [Path(p).read_bytes() for p in row.files] == [emu.audio(row.id)]
            assert row.bytes == len(emu.audio(row.id)) and pd.isna(row.error)
        else:
            assert list(row.files) == [] and row.error
    # One client per worker process, reused from partition to partition: one token each.
    assert 1 <= emu.stats().tokens_issued - tokens_before <= 2
    assert len(list((tmp_path / ".aiotts").glob("part-*.db"))) == 6

    # Dask runs the partitions again (a retry, or the same graph computed again): each
    # resumes from its own record, and no done file is fetched again.
    fetches = emu.stats().count("fetch")
    again = outcomes.compute()
    assert sorted(again["id"]) == sorted(ids)
    assert set(again["state"]) == {"done", "failed"}
    assert emu.stats().count("fetch") == fetches
    assert all(emu.record(i).audio_finished == 1 for i in good)


def test_a_series_of_ids_too(cluster: Client, emu: EmulatorProcess, tmp_path: Path) -> None:
    ids = emu.create_tasks(10, ready_after=0, audio_bytes=5_000)
    series = dd.from_pandas(pd.Series(ids, name="id"), npartitions=2)
    frame = fetch_bag(series, tmp_path, **options(emu)).compute()
    assert sorted(frame["id"]) == sorted(ids) and set(frame["state"]) == {"done"}


def test_a_partition_that_raises_fails_as_a_dask_task(
    cluster: Client, emu: EmulatorProcess, tmp_path: Path
) -> None:
    ids = emu.create_tasks(2, ready_after=0)
    fetches = emu.stats().count("fetch")
    bag = db.from_sequence(ids, npartitions=1)
    outcomes = fetch_bag(bag, tmp_path, retries=0, **options(emu, client_secret="wrong"))
    with pytest.raises(AuthenticationError):
        outcomes.compute()
    assert emu.stats().count("fetch") == fetches  # nothing was asked
    assert not list(tmp_path.glob("*.wav"))
