"""The emulator's notion of "now": any ``() -> float`` in seconds; tests inject ManualClock.

The clock drives task states, retention, token expiry, the token lockout and the trial's
daily window. It does not drive fault timing (latency, trickle), which is real time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeAlias

__all__ = ["Clock", "ManualClock", "OffsetClock", "default_clock"]

Clock: TypeAlias = Callable[[], float]

default_clock: Clock = time.monotonic


class ManualClock:
    """A clock that moves only when told to: ``clock.advance(3600)`` skips an hour at once."""

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward; it never moves back."""
        if seconds < 0:
            raise ValueError(f"a clock does not go back ({seconds} s)")
        self._now += seconds

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now})"


class OffsetClock:
    """Wraps a clock and adds a forward offset, so time can be skipped on any clock.

    This is what lets a test in another process move the emulator's time through the admin
    API, even though that emulator runs on the real monotonic clock.
    """

    __slots__ = ("_base", "_offset")

    def __init__(self, base: Clock) -> None:
        self._base = base
        self._offset = 0.0

    def __call__(self) -> float:
        return self._base() + self._offset

    def advance(self, seconds: float) -> None:
        """Skip ``seconds`` forward; never back."""
        if not seconds >= 0:
            raise ValueError(f"a clock does not go back ({seconds} s)")
        self._offset += seconds

    def __repr__(self) -> str:
        return f"OffsetClock(now={self()}, offset={self._offset})"
