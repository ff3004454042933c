"""A least-recently-used cache bounded by the total size of its values, in bytes."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["ByteLRU"]

V = TypeVar("V")


class ByteLRU(Generic[V]):
    """Maps keys to values of a stated size; the sum of the sizes never exceeds ``limit``.

    A value larger than the limit is not stored at all (the caller still has it). Eviction
    only drops the cache's reference: a response already writing the bytes keeps them alive.
    """

    __slots__ = ("_items", "_size", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._size = 0

    def get(self, key: Hashable) -> V | None:
        entry = self._items.get(key)
        if entry is None:
            return None
        self._items.move_to_end(key)
        return entry[0]

    def put(self, key: Hashable, value: V, size: int) -> None:
        """Store ``value``, which holds ``size`` bytes, evicting the least recently used."""
        if size > self.limit:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self._size -= old[1]
        while self._items and self._size + size > self.limit:
            _, (_, evicted) = self._items.popitem(last=False)
            self._size -= evicted
        self._items[key] = (value, size)
        self._size += size

    @property
    def size(self) -> int:
        """Total bytes held."""
        return self._size

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"<ByteLRU items={len(self._items)} bytes={self._size}/{self.limit}>"
