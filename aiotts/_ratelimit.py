"""One rate limiter for every request a client sends, tokens included.

A token bucket kept as a single number (the generic cell rate algorithm): ``_next_free`` is
the time at which the bucket would be empty again. ``acquire`` reserves the next slot and
sleeps until it; there is no await between reading and moving ``_next_free``, so concurrent
callers can never take the same slot.

The rate adapts (additive increase, multiplicative decrease): a 429 halves it for the whole
client, at most once per ``cooldown`` so that a burst of 429s counts as one signal; each
success adds ``recovery`` requests per second back, up to the configured cap. A client
configured without a cap sends freely until the first 429, starts from half the rate it
was actually sending at, and goes back to sending freely once it has regrown to twice that.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(
        self,
        rate: float | None,
        *,
        burst: int,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        min_rate: float = 1.0,
        recovery: float = 0.1,
        cooldown: float = 1.0,
    ) -> None:
        self._cap = math.inf if rate is None else rate
        self._rate = self._cap
        self._burst = burst
        self._clock = clock
        self._sleep = sleep
        self._min_rate = min_rate
        self._recovery = recovery
        self._cooldown = cooldown
        self._next_free = 0.0
        self._last_cut = -math.inf
        # Requests started in the current and the previous one-second window.
        self._window_start = 0.0
        self._window_count = 0
        self._previous_count = 0
        self._free_again_above = math.inf
        self.throttle_events = 0

    def __repr__(self) -> str:
        rate = "unlimited" if math.isinf(self._rate) else f"{self._rate:.1f}/s"
        return f"<RateLimiter rate={rate} throttle_events={self.throttle_events}>"

    @property
    def rate(self) -> float:
        """Requests per second allowed now (``inf`` when unlimited)."""
        return self._rate

    async def acquire(self) -> None:
        """Wait for the next free slot."""
        now = self._clock()
        if now - self._window_start >= 1.0:
            self._previous_count = self._window_count if now - self._window_start < 2.0 else 0
            self._window_start = now
            self._window_count = 0
        self._window_count += 1
        if math.isinf(self._rate):
            return
        interval = 1.0 / self._rate
        slot = max(self._next_free, now)
        self._next_free = slot + interval
        wait = slot - (self._burst - 1) * interval - now
        if wait > 0:
            await self._sleep(wait)

    def throttled(self) -> None:
        """The server answered 429: slow the whole client down."""
        now = self._clock()
        if now - self._last_cut < self._cooldown:
            return
        self._last_cut = now
        self.throttle_events += 1
        sending = max(self._previous_count, self._window_count, 1)
        self._rate = max(self._min_rate, min(self._rate, float(sending)) / 2)
        if math.isinf(self._cap):
            self._free_again_above = 4 * self._rate
        # Restart the bucket at the new rate from now on.
        self._next_free = max(self._next_free, now)

    def succeeded(self) -> None:
        """A request went through: let the rate grow back."""
        if self._rate >= self._cap:
            return
        self._rate = min(self._cap, self._rate + self._recovery)
        if self._rate >= self._free_again_above:
            self._rate = self._cap
            self._free_again_above = math.inf
