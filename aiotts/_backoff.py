"""Delay sequences for polls and retries, built on ``backoff``'s wait generators.

This is the only module that imports ``backoff``: replacing the library means replacing
these three functions. Every sequence is infinite; callers bound attempts and time.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator, Iterator
from typing import Any, Literal

import backoff

__all__ = ["constant", "exponential", "jittered"]


def _primed(generator: Generator[Any, Any, Any]) -> Iterator[float]:
    # backoff's generators yield None once first (the decorator primes them with send()).
    next(generator)
    return generator


def exponential(first: float, growth: float, cap: float) -> Iterator[float]:
    """``first``, ``first * growth``, ``first * growth**2``, ... never above ``cap``."""
    return _primed(backoff.expo(base=growth, factor=first, max_value=cap))


def constant(value: float) -> Iterator[float]:
    """``value`` forever."""
    return _primed(backoff.constant(interval=itertools.repeat(value)))


def jittered(
    delays: Iterator[float], jitter: Literal["full", "none"], *, floor: float = 0.0
) -> Iterator[float]:
    """Each delay drawn uniformly from [floor, delay] ("full"), or kept as it is ("none")."""
    if jitter == "none":
        yield from delays
        return
    for delay in delays:
        yield floor + backoff.full_jitter(max(delay - floor, 0.0))
