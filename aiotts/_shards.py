"""Shards: splitting one list of ids (or of keys) among N processes with no coordination.

Every process given the same input and the same N takes exactly the ids whose shard is
its own, so the N shards of an input are disjoint and together hold every id. An id's
shard is ``shard_of(id, n)``: the first 8 bytes of the id's BLAKE2b digest as a big-endian
number, modulo n. It depends on the id's text alone, never on ``hash()`` (which changes
from one process to the next), the order of the input, the machine or the version of
Python. Shards are numbered from 0: shard ``k/n`` is the k-th of n, 0 <= k < n.

Pure: no I/O. Where a job-array engine runs many copies of one command, each copy learns
its shard from the environment the engine sets (``shard_from_environment``):

===========================  ==========================================================
engine                       variables
===========================  ==========================================================
aiotts itself                ``AIOTTS_SHARD=K/N``
Kubernetes Indexed Job       ``JOB_COMPLETION_INDEX`` (0-based); N from the caller or
                             ``AIOTTS_SHARDS`` (the Job's ``completions``)
Slurm job array              ``SLURM_ARRAY_TASK_ID`` as given, of N from the caller
                             or ``AIOTTS_SHARDS`` (``--array=0-(N-1)``); without N, the
                             task's position in its array, of any range (``--array=1-16``,
                             ``0-30:2``): ``SLURM_ARRAY_TASK_MIN``, ``_STEP``, ``_COUNT``
AWS Batch array job          ``AWS_BATCH_JOB_ARRAY_INDEX`` (0-based); N from the caller
                             or ``AIOTTS_SHARDS`` (the array's size)
===========================  ==========================================================
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from aiotts._errors import UsageError

__all__ = [
    "ARRAY_VARIABLES",
    "Shard",
    "array_variable_set",
    "parse_shard",
    "shard_from_environment",
    "shard_of",
    "take_shard",
    "take_shard_async",
]

T = TypeVar("T")

MAX_SHARDS = 1_000_000
"""More shards than this is a typo, not a plan (ten million ids in a million shards is
ten ids a process)."""

ARRAY_VARIABLES = (
    "AIOTTS_SHARD",
    "JOB_COMPLETION_INDEX",
    "SLURM_ARRAY_TASK_ID",
    "AWS_BATCH_JOB_ARRAY_INDEX",
)
"""The variables that tell a process it is one of an array, in the order they are read."""


def shard_of(key: str, count: int) -> int:
    """The shard (0 to ``count - 1``) that ``key``, a task id or any other key, falls in.

    The same for the same text in every process, on every machine, in every version: the
    first 8 bytes of its BLAKE2b digest (lone surrogates, which stand for bytes that were
    not UTF-8, are hashed as they are) as a big-endian number, modulo ``count``."""
    if count < 1:
        raise UsageError(f"the number of shards must be at least 1, got {count}")
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based), and where it came from (``source``: the flag
    or the variables it was read from, for the line a command prints)."""

    index: int
    count: int
    source: str = field(default="the caller", compare=False)
    """Not part of what a shard is: shard 2/4 is the same whatever named it."""

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise UsageError(
                f"the number of shards must be from 1 to {MAX_SHARDS:,}, got {self.count}"
            )
        if not 0 <= self.index < self.count:
            raise UsageError(
                f"shard {self.index} of {self.count} does not exist: shards are numbered from "
                f"0 to {self.count - 1}"
            )

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, key: str) -> bool:
        """True if ``key`` (a task id, or any key) falls in this shard."""
        return self.count == 1 or shard_of(key, self.count) == self.index

    @property
    def name(self) -> str:
        """``shard-K-of-N``: what a shard's own record and files are named with."""
        return f"shard-{self.index}-of-{self.count}"


def _key_of(item: object) -> str:
    # What ``fetch_many`` would call the item: a string as it is, anything else by repr.
    return item if isinstance(item, str) else repr(item)


def take_shard(
    items: Iterable[T], shard: Shard | None, key: Callable[[T], str] = _key_of
) -> Iterator[T]:
    """The items of ``items`` that fall in ``shard`` (all of them for ``None``), in order,
    lazily: a generator of ten million ids is never held in memory. ``key`` names each
    item (default: the item itself, for ids)."""
    if shard is None or shard.count == 1:
        yield from items
        return
    for item in items:
        if shard_of(key(item), shard.count) == shard.index:
            yield item


async def take_shard_async(
    items: AsyncIterable[T], shard: Shard | None, key: Callable[[T], str] = _key_of
) -> AsyncIterator[T]:
    """``take_shard`` for an async iterable."""
    async for item in items:
        if shard is None or shard.count == 1 or shard_of(key(item), shard.count) == shard.index:
            yield item


def parse_shard(text: str, *, source: str = "--shard") -> Shard:
    """``K/N`` (0-based: ``0/4`` to ``3/4``) as a ``Shard``; ``UsageError`` naming what is
    wrong otherwise."""
    index, slash, count = text.strip().partition("/")
    if not slash:
        raise UsageError(
            f"{source} {text!r} is not K/N: give this process's shard and the number of "
            "shards, counted from 0 (e.g. 0/4 to 3/4), or 'auto' to read them from a "
            "job array's environment"
        )
    return Shard(
        _whole(index, f"the shard in {source} {text!r}"),
        _whole(count, f"the number of shards in {source} {text!r}"),
        source,
    )


def _whole(text: str, what: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise UsageError(f"{what} is not a whole number: {text.strip()!r}") from None
    return value


def _count_for(engine: str, variable: str, count: int | None, env: Mapping[str, str]) -> int:
    """The number of shards for an engine that does not tell it: the caller's, else
    ``AIOTTS_SHARDS``."""
    if count is not None:
        return count
    raw = env.get("AIOTTS_SHARDS", "").strip()
    if not raw:
        raise UsageError(
            f"{variable} is set ({engine}), but not the number of shards: pass --shards N "
            "or set AIOTTS_SHARDS=N, N being the array's size"
        )
    return _whole(raw, "AIOTTS_SHARDS")


def _slurm(env: Mapping[str, str], count: int | None) -> Shard:
    """A Slurm array task's shard. With the number of shards given (``--shards N`` or
    ``AIOTTS_SHARDS``), the task id is the shard as it is (submit ``--array=0-(N-1)``; a
    lone task run again with ``--array=K`` is still shard K). Otherwise the shard is the
    task's position in its array, which Slurm numbers with any range (``--array=1-16``,
    ``--array=0-30:2``): ``(ID - MIN) / STEP`` of ``SLURM_ARRAY_TASK_COUNT``."""
    task = _whole(env["SLURM_ARRAY_TASK_ID"], "SLURM_ARRAY_TASK_ID")
    raw_shards = env.get("AIOTTS_SHARDS", "").strip()
    if count is None and raw_shards:
        count = _whole(raw_shards, "AIOTTS_SHARDS")
    if count is not None:
        return Shard(task, count, f"Slurm (SLURM_ARRAY_TASK_ID={task} as given, of {count})")
    low = _whole(env.get("SLURM_ARRAY_TASK_MIN", "0"), "SLURM_ARRAY_TASK_MIN")
    step = _whole(env.get("SLURM_ARRAY_TASK_STEP", "1") or "1", "SLURM_ARRAY_TASK_STEP")
    raw_count = env.get("SLURM_ARRAY_TASK_COUNT", "").strip()
    if not raw_count:
        raise UsageError(
            "SLURM_ARRAY_TASK_ID is set but not SLURM_ARRAY_TASK_COUNT: pass --shards N"
        )
    total = _whole(raw_count, "SLURM_ARRAY_TASK_COUNT")
    high = env.get("SLURM_ARRAY_TASK_MAX", "").strip()
    offset = task - low
    regular = step >= 1 and offset >= 0 and offset % step == 0
    if high and regular:
        regular = (_whole(high, "SLURM_ARRAY_TASK_MAX") - low) // step + 1 == total
    if not regular:
        raise UsageError(
            f"this Slurm array (task {task}, from {low} in steps of {step}, {total} tasks) is "
            "not an even range, so a task's position in it is unknown: submit it as "
            "--array=A-B or --array=A-B:STEP, or pass --shards N with --array=0-(N-1)"
        )
    where = f"SLURM_ARRAY_TASK_ID={task}, SLURM_ARRAY_TASK_MIN={low}"
    if step != 1:
        where += f", SLURM_ARRAY_TASK_STEP={step}"
    where += f", SLURM_ARRAY_TASK_COUNT={total}"
    return Shard(offset // step, total, f"Slurm ({where})")


def shard_from_environment(env: Mapping[str, str], *, count: int | None = None) -> Shard | None:
    """This process's shard as a job-array engine set it in ``env`` (see the module's
    table), or None when no engine's variable is set. ``count`` is the number of shards
    for engines that do not tell it (``--shards N``). The first variable set, in the order
    of ``ARRAY_VARIABLES``, decides; a value that is not a whole number, a shard out of
    range or a missing count is a ``UsageError`` naming the variable."""
    raw = env.get("AIOTTS_SHARD", "").strip()
    if raw:
        shard = parse_shard(raw, source="AIOTTS_SHARD")
        if count is not None and count != shard.count:
            raise UsageError(f"--shards {count} disagrees with AIOTTS_SHARD={raw}")
        return shard
    raw = env.get("JOB_COMPLETION_INDEX", "").strip()
    if raw:
        index = _whole(raw, "JOB_COMPLETION_INDEX")
        total = _count_for("a Kubernetes Indexed Job", "JOB_COMPLETION_INDEX", count, env)
        return Shard(index, total, f"Kubernetes (JOB_COMPLETION_INDEX={index}, of {total})")
    if env.get("SLURM_ARRAY_TASK_ID", "").strip():
        return _slurm(env, count)
    raw = env.get("AWS_BATCH_JOB_ARRAY_INDEX", "").strip()
    if raw:
        index = _whole(raw, "AWS_BATCH_JOB_ARRAY_INDEX")
        total = _count_for("an AWS Batch array job", "AWS_BATCH_JOB_ARRAY_INDEX", count, env)
        return Shard(index, total, f"AWS Batch (AWS_BATCH_JOB_ARRAY_INDEX={index}, of {total})")
    return None


def array_variable_set(env: Mapping[str, str]) -> str | None:
    """The first job-array variable set in ``env``, if any: a command run without
    ``--shard`` warns that it takes every id although it looks like one of an array."""
    for name in ARRAY_VARIABLES:
        if env.get(name, "").strip():
            return name
    return None
