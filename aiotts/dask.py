"""Fetch and synthesize with Dask: task ids, or texts by key, partition by partition, on
a cluster.

::

    import dask.bag as db
    from aiotts.dask import fetch_bag, synthesize_bag

    ids = db.read_text("ids-*.txt").map(str.strip).filter(bool)
    outcomes = fetch_bag(ids, "/shared/audio")   # a Dask DataFrame, lazy
    print(outcomes.groupby("state").size().compute())

    texts = db.from_sequence([("intro", "Welcome."), ("room-1", "The hall.")])
    print(synthesize_bag(texts, "/shared/tour").compute())

Needs the ``dask`` extra (``pip install 'aiotts[dask]'``). Each partition is fetched by
one ``fetch_all`` into ``out_dir`` (a folder every worker can write: a shared file
system), with a record of its own, ``out_dir/.aiotts/part-<token>.db``, where the token
names the partition by its position and its ids. A partition that Dask runs again (a
retry after an error, a worker lost, the same graph computed twice) resumes from that
record: the files already whole are not fetched again.

``synthesize_bag`` does the same for texts: each partition of ``(key, text)`` pairs (or of
a DataFrame's key and text columns) goes through one ``synthesize`` with a ledger of its
own, ``out_dir/.aiotts/texts-<token>.db`` (the token names the partition by its position
and its keys), so a partition run again sends no text twice and fetches no audio twice.

Invariants:

* One client per worker process, made on first use and kept for every later partition
  (one token, one connection pool, one scheduler), in a thread of its own
  (``aiotts.sync.TTSClient``, which any number of the worker's threads may share); a
  client is never carried from one process to another (a forked child makes its own).
* A partition that raises (credentials refused, service unreachable, a record that cannot
  be written) fails as a Dask task; each id (or text) that ended in another way is a row
  of the result, ``failed`` and ``aborted`` included.
* ``retries`` are run by the partition itself, in its worker: Dask's DataFrame query
  planning drops task annotations, so ``annotate(retries=...)`` would be silently lost
  (``compute(retries=N)`` of a distributed client still adds Dask's own). Only an error
  that may pass is retried (``TransientError``: the service unreachable or failing;
  ``OutputError``: a file or record that could not be written), each time with a fresh
  client, since a client remembers a transient failure for a moment and would answer
  the retry with it at once. Bad usage and refused credentials would only repeat.
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from aiotts._config import DEFAULT_TASK_TIMEOUT
from aiotts._errors import OutputError, TransientError, UsageError
from aiotts._models import Outcome
from aiotts._submit import DEFAULT_SUBMIT_CONCURRENCY
from aiotts.sync import TTSClient

try:
    import dask.dataframe as dd
    import pandas as pd  # type: ignore[import-untyped]
    import pyarrow as pa  # type: ignore[import-untyped]
    from dask.delayed import delayed
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError(
        "aiotts.dask needs Dask: pip install 'aiotts[dask]' (dask, distributed, pandas)"
    ) from exc

__all__ = [
    "OUTCOME_COLUMNS",
    "TEXT_OUTCOME_COLUMNS",
    "fetch_bag",
    "fetch_partition",
    "partition_ledger",
    "partition_record",
    "synthesize_bag",
    "synthesize_partition",
]

OUTCOME_COLUMNS = ("id", "state", "files", "bytes", "error")
"""The columns of ``fetch_bag``'s DataFrame: the id, its ``OutcomeState`` value, its
files (a list of paths as strings), the bytes written, and the error (missing if done).
Strings and lists are Arrow types (``pd.ArrowDtype``)."""

TEXT_OUTCOME_COLUMNS = ("key", *OUTCOME_COLUMNS)
"""The columns of ``synthesize_bag``'s DataFrame: the text's key, then ``OUTCOME_COLUMNS``
(the id is missing for a text that got no task: refused, or maybe sent without an id
coming back)."""

RECORD_FOLDER = ".aiotts"

T = TypeVar("T")

_clients: dict[tuple[int, str], TTSClient] = {}
_retired: list[tuple[int, TTSClient]] = []
"""Clients replaced after a transient failure: other partitions of the same worker may
still be using them, so they are closed at exit, not at once."""
_clients_lock = threading.Lock()

_RETRIED: tuple[type[Exception], ...] = (TransientError, OutputError)
"""The errors of a partition that running it again may get past."""


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


def _retire(options: Mapping[str, Any], client: TTSClient) -> None:
    """Stop handing out ``client`` for ``options``: the next partition makes a new one."""
    key = (os.getpid(), _options_key(options))
    with _clients_lock:
        if _clients.get(key) is client:
            del _clients[key]
            _retired.append((key[0], client))


def _with_retries(options: Mapping[str, Any], retries: int, work: Callable[[TTSClient], T]) -> T:
    """``work`` with this process's client; after an error in ``_RETRIED``, again with a
    fresh client, up to ``retries`` more times (the last error is raised). A client that
    met such an error is never handed out again: it would answer with it for a moment."""
    for attempt in itertools.count():
        client = _client(options)
        try:
            return work(client)
        except _RETRIED:
            _retire(options, client)
            if attempt >= retries:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


@atexit.register
def _close_clients() -> None:
    with _clients_lock:
        mine = [c for (pid, _), c in _clients.items() if pid == os.getpid()]
        mine += [c for pid, c in _retired if pid == os.getpid()]
        _clients.clear()
        _retired.clear()
    for client in mine:
        client.close()


def _token(names: list[str]) -> str:
    digest = hashlib.blake2b(digest_size=8)
    for name in names:
        digest.update(name.encode("utf-8", "surrogatepass") + b"\n")
    return digest.hexdigest()


def partition_record(out_dir: str | os.PathLike[str], index: int, ids: list[str]) -> Path:
    """The record of partition ``index`` holding ``ids``: the same path whenever the same
    partition runs again, another one for other ids."""
    return Path(out_dir) / RECORD_FOLDER / f"part-{index:05d}-{_token(ids)}.db"


def partition_ledger(out_dir: str | os.PathLike[str], index: int, keys: list[str]) -> Path:
    """The ledger of text partition ``index`` holding ``keys``: the same path whenever the
    same partition runs again (a changed text under a kept key is then refused, as in
    any ledger), another one for other keys."""
    return Path(out_dir) / RECORD_FOLDER / f"texts-{index:05d}-{_token(keys)}.db"


def _frame(
    ids: list[str | None],
    states: list[str],
    files: list[list[str]],
    sizes: list[int],
    errors: list[str | None],
    keys: list[str] | None = None,
) -> pd.DataFrame:
    """The outcomes as a pandas DataFrame (with a ``key`` column first when ``keys`` are
    given). Arrow types throughout: Dask would turn plain object columns into strings,
    lists of files included."""
    text = pd.ArrowDtype(pa.string())
    named = {} if keys is None else {"key": pd.Series(keys, dtype=text)}
    return pd.DataFrame(
        {
            **named,
            "id": pd.Series(ids, dtype=text),
            "state": pd.Series(states, dtype=text),
            "files": pd.Series(files, dtype=pd.ArrowDtype(pa.list_(pa.string()))),
            "bytes": pd.Series(sizes, dtype="int64"),
            "error": pd.Series(errors, dtype=text),
        }
    )


def _meta() -> pd.DataFrame:
    return _frame([], [], [], [], [])


def _text_meta() -> pd.DataFrame:
    return _frame([], [], [], [], [], keys=[])


def _frame_of(outcomes: list[Outcome], *, keys: bool = False) -> pd.DataFrame:
    return _frame(
        [o.task_id or None for o in outcomes],
        [o.state.value for o in outcomes],
        [[str(p) for p in o.files] for o in outcomes],
        [o.bytes_written for o in outcomes],
        [o.error for o in outcomes],
        keys=[o.key or "" for o in outcomes] if keys else None,
    )


def _partitions(collection: Any) -> list[Any]:
    """A bag's, a series' or a DataFrame's partitions, as delayed objects."""
    parts = collection.to_delayed()
    if hasattr(parts, "flatten"):  # a series or a DataFrame gives an array of them
        parts = list(parts.flatten())
    return list(parts)


def fetch_partition(
    ids: Any,
    out_dir: str,
    index: int,
    options: Mapping[str, Any],
    task_timeout: float | None = DEFAULT_TASK_TIMEOUT,
    retry_failed: bool = False,
    retries: int = 0,
) -> pd.DataFrame:
    """Fetch one partition's ids (a list, or a pandas Series) into ``out_dir``, resuming
    from the partition's own record; one row per distinct id, in the order they ended.
    ``retries``: how many more times to run it after an error that may pass."""
    task_ids = [str(task_id) for task_id in (ids.tolist() if hasattr(ids, "tolist") else ids)]
    record = partition_record(out_dir, index, task_ids)

    def fetch(client: TTSClient) -> pd.DataFrame:
        report = client.fetch_all(
            task_ids,
            out_dir,
            manifest=record,
            resume=True,
            retry_failed=retry_failed,
            task_timeout=task_timeout,
        )
        return _frame_of([*report.done, *report.failed])

    return _with_retries(options, retries, fetch)


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
    as for any client), so they must pickle. ``retries``: how many more times a partition
    runs, in its worker, after an error that may pass (the service unreachable, a record
    that could not be written), each time with a fresh client; ``compute(retries=N)`` of
    a distributed client adds Dask's own, for any error. ``retry_failed``: ask again
    about ids a record holds as ``failed`` or ``missing``."""
    folder = os.fspath(out_dir)
    fetch = delayed(fetch_partition, pure=False)
    options = dict(client_options)
    frames = [
        fetch(part, folder, index, options, task_timeout, retry_failed, retries)
        for index, part in enumerate(_partitions(ids))
    ]
    return dd.from_delayed(frames, meta=_meta(), verify_meta=False)


def _pairs_of(texts: Any, key_column: str, text_column: str) -> list[tuple[str, str]]:
    """A partition's ``(key, text)`` pairs: from a pandas DataFrame's two columns, or
    from a list of pairs; a key is given as a string (``str`` of anything else)."""
    if isinstance(texts, pd.DataFrame):
        missing = [c for c in (key_column, text_column) if c not in texts.columns]
        if missing:
            raise UsageError(
                f"the texts' DataFrame has no column {', '.join(map(repr, missing))} (its "
                f"columns: {', '.join(map(repr, map(str, texts.columns)))}): name the "
                "columns with key_column= and text_column="
            )
        pairs = zip(texts[key_column].tolist(), texts[text_column].tolist(), strict=True)
        return [(str(key), text) for key, text in pairs]
    result: list[tuple[str, str]] = []
    for item in texts:
        if isinstance(item, str | bytes) or not hasattr(item, "__len__") or len(item) != 2:
            raise UsageError(
                f"a text of the bag is not a (key, text) pair: {item!r:.80}; map the bag "
                "to pairs first, e.g. bag.map(lambda text: (name_of(text), text))"
            )
        key, text = item
        result.append((str(key), text))
    return result


def synthesize_partition(
    texts: Any,
    out_dir: str,
    index: int,
    options: Mapping[str, Any],
    synthesize_options: Mapping[str, Any],
    key_column: str = "key",
    text_column: str = "text",
    retries: int = 0,
) -> pd.DataFrame:
    """Synthesize one partition's texts (``(key, text)`` pairs, or a pandas DataFrame with
    ``key_column`` and ``text_column``) into ``out_dir``, resuming from the partition's own
    ledger; one row per text, in the order they ended. ``retries``: how many more times
    to run it after an error that may pass (each run resumes the ledger)."""
    pairs = _pairs_of(texts, key_column, text_column)
    ledger = partition_ledger(out_dir, index, [key for key, _ in pairs])

    def synthesize(client: TTSClient) -> pd.DataFrame:
        ledger.parent.mkdir(parents=True, exist_ok=True)
        run = client.synthesize(
            pairs, out_dir, ledger=ledger, resume=True, **dict(synthesize_options)
        )
        return _frame_of(list(run), keys=True)

    return _with_retries(options, retries, synthesize)


def synthesize_bag(
    texts: Any,
    out_dir: str | os.PathLike[str],
    *,
    key_column: str = "key",
    text_column: str = "text",
    task_timeout: float | None = DEFAULT_TASK_TIMEOUT,
    resubmit_uncertain: bool = False,
    resubmit_missing: bool = False,
    concurrency: int = DEFAULT_SUBMIT_CONCURRENCY,
    retries: int = 2,
    **client_options: Any,
) -> Any:
    """Turn every text of ``texts`` into a WAV file in ``out_dir`` named after its key, one
    Dask task per partition; a lazy Dask DataFrame of one row per text
    (``TEXT_OUTCOME_COLUMNS``: key, id, state, files, bytes, error).

    ``texts``: a ``dask.bag.Bag`` of ``(key, text)`` pairs, or a ``dask.dataframe``
    DataFrame with the columns ``key_column`` and ``text_column``. Keys are strings (others
    are turned into them with ``str``) and must be unique across the whole collection: a
    key names its file. Each partition keeps its own ledger, so a partition run again
    (``retries`` after an error that may pass, a worker lost, the graph computed twice)
    sends no text twice and fetches no audio twice; a text whose submit may have reached the server
    without an id coming back is sent again only with ``resubmit_uncertain``, a task the
    server forgot only with ``resubmit_missing``. ``concurrency``: submits in flight at
    once per partition. ``client_options`` are ``fetch_bag``'s."""
    folder = os.fspath(out_dir)
    run = delayed(synthesize_partition, pure=False)
    settings = {
        "task_timeout": task_timeout,
        "resubmit_uncertain": resubmit_uncertain,
        "resubmit_missing": resubmit_missing,
        "concurrency": concurrency,
    }
    options = dict(client_options)
    frames = [
        run(part, folder, index, options, settings, key_column, text_column, retries)
        for index, part in enumerate(_partitions(texts))
    ]
    return dd.from_delayed(frames, meta=_text_meta(), verify_meta=False)
