"""One rate limiter for every request a client sends, tokens included.

A token bucket kept as a single number (the generic cell rate algorithm): ``_next_free`` is
the time at which the bucket would be empty again. ``acquire`` reserves the next slot and
sleeps until it; there is no await between reading and moving ``_next_free``, so concurrent
callers can never take the same slot.

The rate adapts to the server, once a second, from the second that just ended: if more
than one answer in ten was 429, the whole client slows down to what it was sending times
the share of answers that were *not* 429 (never below half of it), so a server that
accepts 100 of 500 requests a second brings the client to about 100/s within seconds.
Fewer 429s than that are noise or a limit barely crossed: each refused request waits for
its own ``Retry-After``, which costs less than slowing every other request. Each success
adds ``recovery`` requests per second back (about ``recovery * 100`` percent a second at
any rate), up to the configured cap. A client configured without a cap sends freely until
it is first slowed, and goes back to sending freely once it has regrown to twice the rate
it was sending then.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

__all__ = ["RateLimiter"]

_MIN_SAMPLE = 20
"""Answers counted as at least this many when computing the share of 429s, so that the
first answers of a run (one 429 out of one) are not read as "everything is refused"."""

_TOLERATED_SHARE = 0.1
"""Up to this share of 429 answers does not slow the whole client."""


class _Window:
    """Requests sent, and answers received, in one second."""

    __slots__ = ("answers", "sent", "start", "throttled")

    def __init__(self, start: float) -> None:
        self.start = start
        self.sent = 0
        self.answers = 0
        self.throttled = 0


class RateLimiter:
    on_slowed: Callable[[float, int], None] | None = None
    """Called with the new rate and the count of slowdowns each time the client slows."""

    def __init__(
        self,
        rate: float | None,
        *,
        burst: int,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        min_rate: float = 1.0,
        recovery: float = 0.1,
    ) -> None:
        self._cap = math.inf if rate is None else rate
        self._rate = self._cap
        self._burst = burst
        self._clock = clock
        self._sleep = sleep
        self._min_rate = min_rate
        self._recovery = recovery
        self._next_free = 0.0
        self._window = _Window(clock())
        self._free_again_above = math.inf
        self.throttle_events = 0

    def __repr__(self) -> str:
        rate = "unlimited" if math.isinf(self._rate) else f"{self._rate:.1f}/s"
        return f"<RateLimiter rate={rate} throttle_events={self.throttle_events}>"

    @property
    def rate(self) -> float:
        """Requests per second allowed now (``inf`` when unlimited)."""
        return self._rate

    def _current(self, now: float) -> _Window:
        window = self._window
        if now - window.start >= 1.0:
            if now - window.start < 2.0:
                self._adapt(window, now)
            window = self._window = _Window(now)
        return window

    def _adapt(self, finished: _Window, now: float) -> None:
        """Slow down if the second that just ended had too many 429s."""
        refused = finished.throttled / max(finished.answers, _MIN_SAMPLE)
        if refused <= _TOLERATED_SHARE:
            return
        self.throttle_events += 1
        sending = max(finished.sent, 1)
        self._rate = max(self._min_rate, min(self._rate, sending) * max(0.5, 1.0 - refused))
        if math.isinf(self._cap):
            self._free_again_above = 2.0 * sending
        self._next_free = max(self._next_free, now)
        if self.on_slowed is not None:
            self.on_slowed(self._rate, self.throttle_events)

    @property
    def limited(self) -> bool:
        """False while requests may go at once (``acquire`` would never wait)."""
        return self._rate != math.inf

    def sent(self) -> None:
        """Count a request that went without ``acquire`` (allowed only while not limited)."""
        self._current(self._clock()).sent += 1

    async def acquire(self) -> None:
        """Wait for the next free slot."""
        now = self._clock()
        self._current(now).sent += 1
        if math.isinf(self._rate):
            return
        interval = 1.0 / self._rate
        slot = max(self._next_free, now)
        self._next_free = slot + interval
        wait = slot - (self._burst - 1) * interval - now
        if wait > 0:
            await self._sleep(wait)

    def throttled(self) -> None:
        """The server answered 429."""
        window = self._current(self._clock())
        window.answers += 1
        window.throttled += 1

    def succeeded(self) -> None:
        """A request went through: let the rate grow back."""
        self._current(self._clock()).answers += 1
        if self._rate >= self._cap:
            return
        self._rate = min(self._cap, self._rate + self._recovery)
        if self._rate >= self._free_again_above:
            self._rate = self._cap
            self._free_again_above = math.inf
