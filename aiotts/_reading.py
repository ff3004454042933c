"""What ``async for`` holds while it reads a batch or a synthesis.

A batch (and a synthesis) runs in a task the client keeps, and that task holds it: when
the caller leaves its ``async for`` early, the batch is still referred to, so its own
``__del__`` never runs and it would go on polling (and a synthesis on submitting texts)
for nobody. The loop holds a ``Reader`` instead: the owner's ``__aiter__`` makes a new
one, and nothing but the loop refers to it. It is dropped the moment the loop is left (a
``break``, a ``return``, an exception in the loop's body), and then it tells its owner,
which stops unless it had already ended.

A step costs one call more than reading the owner itself: ``__anext__`` hands on the
owner's own awaitable. ``anext(batch)`` and ``batch.__anext__()`` read the owner without
a reader, so leaving them stops nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable
from typing import Generic, Protocol, TypeVar

__all__ = ["Readable", "Reader"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Readable(Protocol[T_co]):
    def __anext__(self) -> Awaitable[T_co]: ...

    def reader_left(self) -> None:
        """The loop that read this was left: stop, unless already ended."""


class Reader(Generic[T]):
    """The iterator of one ``async for`` over ``owner``."""

    __slots__ = ("_owner",)

    def __init__(self, owner: Readable[T]) -> None:
        self._owner = owner

    def __repr__(self) -> str:
        return f"<Reader of {self._owner!r}>"

    def __aiter__(self) -> Reader[T]:
        return self

    def __anext__(self) -> Awaitable[T]:
        return self._owner.__anext__()

    def __del__(self) -> None:
        # A loop left after its event loop closed has nothing left to stop.
        with contextlib.suppress(RuntimeError):
            self._owner.reader_left()
