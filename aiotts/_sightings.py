"""A resume's first sightings, found beside the store's records read in their own order.

A resume is most often fed the same ids as the run it resumes, in about the same order:
the order that run recorded its outcomes in (give or take the tasks in flight at once).
``RecordedSightings`` reads the store's file proofs in that order (``seq``, from the index
``outcomes_proofs``), a few thousand ahead of the input, and finds most ids there: no
search of the store per id, whose pages a store of millions of ids could not keep in its
cache. An id not found ahead is looked up by id. If the input's order turns out to be
another, reading ahead stops and every id is looked up by id.

Which ids were seen before in this batch is decided, for an id the store holds, by the
``seq`` of its row rather than by ``SeenIds``:

* a row recorded before the batch started (``seq <= until``) has a bit of its own in a
  bitmap (one bit per row, not per id of the input): set at the id's first sighting;
* a row recorded after (``seq > until``) was written by this batch, so its id was taken
  in before;
* an id with no row is asked of ``SeenIds``, as every id of a batch without a store is.

Invariant: the answer for an id at any sighting but its first is "seen". The first
sighting of an id either finds a row recorded before the batch (the bit is set then) or
finds none (``SeenIds`` keeps it then). Until the batch records the id, a later sighting
finds the same; after, it finds a row of this batch (a window read ahead may still hold the
earlier row, whose bit is set). A row read ahead is never newer than ``until``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from aiotts._admission import ProofOf, SeenIds, id_of
from aiotts._store import LOOKUP_CHUNK, OutcomeStore, Row

__all__ = ["RecordedSightings"]

_READ = 1024
"""Rows read ahead at a time."""
_AHEAD = 4 * LOOKUP_CHUNK
"""How far past the furthest row found so far the window reaches (in ``seq``)."""
_MOST = 32 * LOOKUP_CHUNK
"""The most rows the window holds: the oldest go first (rows the input never asked for,
or found by id before the window reached them)."""
_BEHIND = LOOKUP_CHUNK
"""When the window moves to where the input is found (``_follow``), it starts this many
rows (in ``seq``) before the middle of the ids found there."""
_JUDGED_AFTER = 16 * LOOKUP_CHUNK
"""Ids asked about before the window's worth is judged: fewer than a quarter of them
found ahead means the input has another order, and reading ahead stops."""


class RecordedSightings:
    """``SeenIds.new_among`` for a resume from a store, with the file proofs of the ids
    it returns (see the module's docstring)."""

    __slots__ = (
        "_after",
        "_asked",
        "_found",
        "_frontier",
        "_seen",
        "_sighted",
        "_store",
        "_until",
        "_window",
    )

    def __init__(self, store: OutcomeStore, seen: SeenIds) -> None:
        self._store = store
        self._seen = seen
        self._until = store.last_seq  # rows recorded before the batch started
        self._sighted = bytearray((self._until >> 3) + 1)
        self._window: dict[bytes, Row] | None = {} if self._until else None
        self._after = 0  # the seq of the last row read ahead
        self._frontier = 0  # the greatest seq found ahead so far
        self._asked = 0
        self._found = 0

    def __repr__(self) -> str:
        reading = "off" if self._window is None else f"{len(self._window)} ahead"
        return f"<RecordedSightings until={self._until} {reading}>"

    @property
    def reading_ahead(self) -> bool:
        """False once the input's order showed itself to be another than the store's."""
        return self._window is not None

    def new_among(self, chunk: Sequence[object]) -> tuple[list[str], list[object], list[ProofOf]]:
        """``SeenIds.new_among(chunk)``, and the file proofs recorded for the ids it
        returns (in their order, each with its id)."""
        ids = [raw if type(raw) is str else id_of(raw) for raw in chunk]
        rows = self._rows(ids)
        until, sighted = self._until, self._sighted
        new = [False] * len(ids)
        unknown: list[int] = []
        for n, row in enumerate(rows):
            if row is None:
                unknown.append(n)
                continue
            seq = row[0]
            if seq > until:
                continue  # recorded by this batch: taken in before
            bit = 1 << (seq & 7)
            if sighted[seq >> 3] & bit:
                continue
            sighted[seq >> 3] |= bit
            new[n] = True
        if unknown:
            fresh = self._seen.new_among([chunk[n] for n in unknown])[0]
            # ``fresh`` keeps the order of ``unknown`` and the first sighting of each id:
            # walked in step, each of its ids meets the position of that first sighting.
            walk = iter(fresh)
            expected = next(walk, None)
            for n in unknown:
                if expected is not None and ids[n] == expected:
                    new[n] = True
                    expected = next(walk, None)
        if all(new):
            fresh_ids, fresh_raws = ids, list(chunk)
        else:
            fresh_ids = list(itertools.compress(ids, new))
            fresh_raws = list(itertools.compress(chunk, new))
            rows = list(itertools.compress(rows, new))
        proofs: list[ProofOf] = [
            (task_id, row)
            for task_id, row in zip(fresh_ids, rows, strict=True)
            if row is not None and row[1] is not None
        ]
        return fresh_ids, fresh_raws, proofs

    def _rows(self, ids: list[str]) -> list[Row | None]:
        """The row recorded for each of ``ids`` (None for none): from the window read
        ahead, else looked up by id."""
        keys = [task_id.encode("utf-8", "surrogatepass") for task_id in ids]  # key_of
        window = self._window
        if window is None:
            rows: list[Row | None] = [None] * len(ids)
            missing: Sequence[int] = range(len(ids))
        else:
            self._read_ahead(window)
            pop = window.pop
            rows = [pop(key, None) for key in keys]
            missing = [n for n, row in enumerate(rows) if row is None]
            if len(missing) < len(ids):
                self._frontier = max(self._frontier, *(row[0] for row in rows if row is not None))
            self._judge(len(ids), len(ids) - len(missing))
        if missing:
            by_key = {row[7]: row for row in self._store.rows_of([ids[n] for n in missing])}
            for n in missing:
                rows[n] = by_key.get(keys[n])
            if window is not None and 2 * len(missing) > len(ids):
                self._follow([row[0] for row in by_key.values() if row[0] <= self._until])
        return rows

    def _follow(self, seqs: list[int]) -> None:
        """Most of a chunk was not ahead but found by id, at ``seqs``: the input is
        elsewhere in the store's order (its start held ids this input lacks, say), so the
        window moves to the middle of them, skipping the rows between."""
        if not seqs:
            return
        seqs.sort()
        middle = seqs[len(seqs) // 2]
        if middle > self._after:
            self._after = max(self._after, middle - _BEHIND)
        self._frontier = max(self._frontier, middle)

    def _read_ahead(self, window: dict[bytes, Row]) -> None:
        """Read rows until the window reaches ``_AHEAD`` past the furthest row found, or
        the last row recorded before the batch; then let the oldest go past ``_MOST``."""
        while self._after < self._until and self._after - self._frontier < _AHEAD:
            rows = self._store.rows_after(self._after, self._until, _READ)
            if not rows:
                self._after = self._until
                break
            window.update((row[7], row) for row in rows)
            self._after = rows[-1][0]
        excess = len(window) - _MOST
        if excess > 0:
            for key in list(itertools.islice(window, excess)):
                del window[key]

    def _judge(self, asked: int, found: int) -> None:
        self._asked += asked
        self._found += found
        if self._asked >= _JUDGED_AFTER:
            if 4 * self._found < self._asked:
                self._window = None  # another order: every id is looked up by id
            self._asked = self._found = 0
