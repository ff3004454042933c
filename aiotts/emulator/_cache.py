"""A least-recently-used cache of byte strings bounded by their total size."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

__all__ = ["ByteLRU"]


class ByteLRU:
    """Maps keys to ``bytes``; the sum of the values' lengths never exceeds ``limit``.

    A value larger than the limit is not stored at all (the caller still has it). Eviction
    only drops the cache's reference: a response already writing the bytes keeps them alive.
    """

    __slots__ = ("_items", "_size", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = 0

    def get(self, key: Hashable) -> bytes | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: Hashable, value: bytes) -> None:
        if len(value) > self.limit:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self._size -= len(old)
        while self._items and self._size + len(value) > self.limit:
            _, evicted = self._items.popitem(last=False)
            self._size -= len(evicted)
        self._items[key] = value
        self._size += len(value)

    @property
    def size(self) -> int:
        """Total bytes held."""
        return self._size

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"<ByteLRU items={len(self._items)} bytes={self._size}/{self.limit}>"
