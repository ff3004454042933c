"""``--shard K/N``, ``--shards N`` and ``--processes P`` of ``fetch`` and ``synthesize``:
which share of the ids (or of the texts, by key) this process takes, and the record it
keeps for it."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

from aiotts._errors import UsageError
from aiotts._shards import Shard, array_variable_set, parse_shard, shard_from_environment
from aiotts.cli._text import shown

__all__ = [
    "AUTO",
    "add_shard_arguments",
    "array_warning",
    "chosen_shard",
    "shard_line",
    "shard_record",
    "sub_shard",
]

AUTO = "auto"
"""``--shard auto``: read the shard from a job array's environment."""

DEFAULT_RECORD_STEM = "aiotts"


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def add_shard_arguments(
    parser: argparse.ArgumentParser,
    *,
    items: str = "ids",
    record: str = "record",
    processes: bool = True,
) -> None:
    """``--shard`` and ``--shards`` (and ``--processes`` unless ``processes`` is False) on
    ``parser``; ``items`` names what is split (``ids``, or ``texts, by key,``) and
    ``record`` what each shard keeps apart (``record``, ``ledger``)."""
    group = parser.add_argument_group("shards and processes" if processes else "shards")
    group.add_argument(
        "--shard",
        metavar="K/N|auto",
        help=f"take only the {items} of shard K of N (counted from 0: 0/4 to 3/4), chosen "
        "by a hash of each, so N runs given the same input split it exactly; 'auto' reads "
        "K and N from a job array (AIOTTS_SHARD, Kubernetes JOB_COMPLETION_INDEX, Slurm "
        f"SLURM_ARRAY_TASK_*, AWS_BATCH_JOB_ARRAY_INDEX). The {record} is then "
        "DIR/aiotts.shard-K-of-N.db",
    )
    group.add_argument(
        "--shards",
        type=_count,
        metavar="N",
        help="with --shard auto: the number of shards, where the engine does not say it "
        "(Kubernetes, AWS Batch; under Slurm, SLURM_ARRAY_TASK_ID is then the shard as "
        "given: submit --array=0-(N-1); default: $AIOTTS_SHARDS)",
    )
    if not processes:
        return
    group.add_argument(
        "--processes",
        type=_count,
        metavar="P",
        help=f"run P processes on this machine, each taking one shard of the {items} with "
        f"its own {record} (with --shard: P shares of that shard), under one progress bar "
        "and summary; --rate applies to each",
    )
    # The child processes of --processes write their statistics among their JSON lines.
    group.add_argument("--progress-lines", action="store_true", help=argparse.SUPPRESS)


def chosen_shard(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Shard | None:
    """The shard this run takes (None: all of its input), from ``--shard`` and
    ``--shards``."""
    env = os.environ if env is None else env
    text: str | None = args.shard
    if text is None:
        if args.shards is not None:
            raise UsageError("--shards goes with --shard auto")
        return None
    if text.strip() == AUTO:
        shard = shard_from_environment(env, count=args.shards)
        if shard is None:
            raise UsageError(
                "--shard auto found no job array's variable (AIOTTS_SHARD, "
                "JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID, AWS_BATCH_JOB_ARRAY_INDEX): "
                "pass --shard K/N"
            )
        return shard
    if args.shards is not None:
        raise UsageError("--shards goes with --shard auto; --shard K/N gives N itself")
    return parse_shard(text)


def array_warning(
    env: Mapping[str, str] | None = None, *, takes: str = "fetches every id"
) -> str | None:
    """What to say when a run without ``--shard`` is one of a job array: it takes all of
    its input (``takes``: what it does with it), like each of its siblings."""
    name = array_variable_set(os.environ if env is None else env)
    if name is None:
        return None
    return (
        f"aiotts: note: {name} is set, but --shard is not given: this process {takes}; "
        "pass --shard auto to take only this array task's share"
    )


def shard_record(manifest: str | None, out: str, shard: Shard) -> str:
    """A shard's own record: ``DIR/aiotts.shard-K-of-N.db`` by default, and a given
    ``--manifest`` (or ``--ledger``) with ``.shard-K-of-N`` before its suffix, so the runs
    of an array (which share one command line) never share a record."""
    if manifest is None:
        return os.path.join(out, f"{DEFAULT_RECORD_STEM}.{shard.name}.db")
    path = Path(manifest)
    return str(path.with_name(f"{path.stem}.{shard.name}{path.suffix}"))


def sub_shard(shard: Shard | None, part: int, parts: int) -> Shard:
    """Share ``part`` of ``parts`` of ``shard`` (of every id for None), itself a shard:
    ``shard_of(id, N * P) % N == shard_of(id, N)``, so shard ``K + N * j`` of ``N * P``
    holds exactly the ids of shard K of N whose share is j."""
    if shard is None:
        return Shard(part, parts, "--processes")
    return Shard(shard.index + shard.count * part, shard.count * parts, "--processes")


def shard_line(shard: Shard, record: str, *, kind: str = "record") -> str:
    """The line that says which shard a run took, from where, and its record (``kind``:
    what the verb calls it, ``record`` or ``ledger``)."""
    return (
        f"aiotts: shard {shard} (counted from 0), from {shown(shard.source)}; "
        f"{kind} {shown(record)}"
    )
