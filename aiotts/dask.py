"""Fetch with Dask: a bag or series of task ids, partition by partition, on a cluster.

::

    import dask.bag as db
    from aiotts.dask import fetch_bag

    ids = db.read_text("ids-*.txt").map(str.strip).filter(bool)
    outcomes = fetch_bag(ids, "/shared/audio")   # a Dask DataFrame, lazy
    print(outcomes.groupby("state").size().compute())

Needs the ``dask`` extra (``pip install 'aiotts[dask]'``). Each partition is fetched by
one ``fetch_all`` into ``out_dir`` (a folder every worker can write: a shared file
system), with a record of its own, ``out_dir/.aiotts/part-<token>.db``, where the token
names the partition by its position and its ids. A partition that Dask runs again (a
retry after an error, a worker lost, the same graph computed twice) resumes from that
record: the files already whole are not fetched again.

Invariants:

* One client per worker process, made on first use and kept for every later partition
  (one token, one connection pool, one scheduler), in a thread of its own
  (``aiotts.sync.TTSClient``, which any number of the worker's threads may share); a
  client is never carried from one process to another (a forked child makes its own).
* A partition that raises (credentials refused, service unreachable, a record that cannot
  be written) fails as a Dask task, so Dask's ``retries`` apply; each id that ended in
  another way is a row of the result, ``failed`` and ``aborted`` included.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiotts._config import DEFAULT_TASK_TIMEOUT
from aiotts.sync import TTSClient

try:
    import dask.dataframe as dd
    import pandas as pd  # type: ignore[import-untyped]
    import pyarrow as pa  # type: ignore[import-untyped]
    from dask.base import annotate
    from dask.delayed import delayed
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError(
        "aiotts.dask needs Dask: pip install 'aiotts[dask]' (dask, distributed, pandas)"
    ) from exc

__all__ = ["OUTCOME_COLUMNS", "fetch_bag", "fetch_partition", "partition_record"]

OUTCOME_COLUMNS = ("id", "state", "files", "bytes", "error")
"""The columns of ``fetch_bag``'s DataFrame: the id, its ``OutcomeState`` value, its
files (a list of paths as strings), the bytes written, and the error (missing if done).
Strings and lists are Arrow types (``pd.ArrowDtype``)."""

RECORD_FOLDER = ".aiotts"

_clients: dict[tuple[int, str], TTSClient] = {}
_clients_lock = threading.Lock()


def _options_key(options: Mapping[str, Any]) -> str:
    # Frozen config objects and plain values: their repr names them (secrets stay in
    # this process's memory, as in the client itself).
    return repr(sorted(options.items()))


def _client(options: Mapping[str, Any]) -> TTSClient:
    """This process's client for ``options``, made on first use. Keyed by the process id
    too, so a child forked after it was made makes its own."""
    key = (os.getpid(), _options_key(options))
    with _clients_lock:
        client = _clients.get(key)
        if client is None or client.closed:
            client = TTSClient(**options)
            _clients[key] = client
        return client


@atexit.register
def _close_clients() -> None:
    with _clients_lock:
        mine = [c for (pid, _), c in _clients.items() if pid == os.getpid()]
        _clients.clear()
    for client in mine:
        client.close()


def partition_record(out_dir: str | os.PathLike[str], index: int, ids: list[str]) -> Path:
    """The record of partition ``index`` holding ``ids``: the same path whenever the same
    partition runs again, another one for other ids."""
    digest = hashlib.blake2b(digest_size=8)
    for task_id in ids:
        digest.update(task_id.encode("utf-8", "surrogatepass") + b"\n")
    return Path(out_dir) / RECORD_FOLDER / f"part-{index:05d}-{digest.hexdigest()}.db"


def _frame(
    ids: list[str],
    states: list[str],
    files: list[list[str]],
    sizes: list[int],
    errors: list[str | None],
) -> pd.DataFrame:
    """The outcomes as a pandas DataFrame. Arrow types throughout: Dask would turn plain
    object columns into strings, lists of files included."""
    text = pd.ArrowDtype(pa.string())
    return pd.DataFrame(
        {
            "id": pd.Series(ids, dtype=text),
            "state": pd.Series(states, dtype=text),
            "files": pd.Series(files, dtype=pd.ArrowDtype(pa.list_(pa.string()))),
            "bytes": pd.Series(sizes, dtype="int64"),
            "error": pd.Series(errors, dtype=text),
        }
    )


def _meta() -> pd.DataFrame:
    return _frame([], [], [], [], [])


def fetch_partition(
    ids: Any,
    out_dir: str,
    index: int,
    options: Mapping[str, Any],
    task_timeout: float | None = DEFAULT_TASK_TIMEOUT,
    retry_failed: bool = False,
) -> pd.DataFrame:
    """Fetch one partition's ids (a list, or a pandas Series) into ``out_dir``, resuming
    from the partition's own record; one row per distinct id, in the order they ended."""
    task_ids = [str(task_id) for task_id in (ids.tolist() if hasattr(ids, "tolist") else ids)]
    record = partition_record(out_dir, index, task_ids)
    report = _client(options).fetch_all(
        task_ids,
        out_dir,
        manifest=record,
        resume=True,
        retry_failed=retry_failed,
        task_timeout=task_timeout,
    )
    outcomes = [*report.done, *report.failed]
    return _frame(
        [o.task_id for o in outcomes],
        [o.state.value for o in outcomes],
        [[str(p) for p in o.files] for o in outcomes],
        [o.bytes_written for o in outcomes],
        [o.error for o in outcomes],
    )


def fetch_bag(
    ids: Any,
    out_dir: str | os.PathLike[str],
    *,
    task_timeout: float | None = DEFAULT_TASK_TIMEOUT,
    retry_failed: bool = False,
    retries: int = 2,
    **client_options: Any,
) -> Any:
    """Fetch every id of ``ids`` (a ``dask.bag.Bag`` or a ``dask.dataframe.Series`` of
    task ids) into ``out_dir``, one Dask task per partition; a lazy Dask DataFrame of one
    row per id (``OUTCOME_COLUMNS``).

    ``client_options`` go to each worker's ``aiotts.sync.TTSClient`` (``client_id``,
    ``client_secret``, ``base_url``, ``limits``...; by default the worker's environment,
    as for any client), so they must pickle. ``retries``: how many times Dask runs a
    partition that raised again (set as a task annotation; ``compute(retries=N)`` of a
    distributed client does the same). ``retry_failed``: ask again about ids a record
    holds as ``failed`` or ``missing``."""
    folder = os.fspath(out_dir)
    parts = ids.to_delayed()
    if hasattr(parts, "flatten"):  # a series gives an array of its partitions
        parts = list(parts.flatten())
    fetch = delayed(fetch_partition, pure=False)
    with annotate(retries=retries):
        frames = [
            fetch(part, folder, index, dict(client_options), task_timeout, retry_failed)
            for index, part in enumerate(parts)
        ]
    return dd.from_delayed(frames, meta=_meta(), verify_meta=False)
