"""Bulk retrieval: every id in a file into a folder, resumable.

    python examples/bulk_fetch.py [IDS_FILE] [OUT_DIR]

Without arguments it works in a new temporary folder (IDS_FILE and OUT_DIR inside it) and
says where, so it never writes into the current directory.

Each outcome is appended to OUT_DIR/manifest.jsonl before it is reported, so running the
same command again (after a crash, Ctrl-C, or a failure) skips what is already done and
fetches the rest. Without credentials it runs against an emulator with 50 tasks, and shows
the resume by running twice: the second run sends no request for what is done.
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import anyio

from _common import service


def ids_from(path: Path) -> Iterator[str]:
    """One id per line; blank lines skipped. Read lazily: the file may hold millions."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield line.strip()


async def main(ids_file: Path, out: Path) -> int:
    manifest = out / "manifest.jsonl"
    async with service() as (client, emulator):
        ids_path = anyio.Path(ids_file)
        if emulator is not None and not await ids_path.exists():
            await ids_path.write_text("\n".join(emulator.create_tasks(50)) + "\n")
        for run in ("first run", "second run (resume)"):
            states: Counter[str] = Counter()
            resumed = 0
            batch = client.fetch_many(ids_from(ids_file), out, manifest=manifest, resume=True)
            async for outcome in batch:
                states[outcome.state.value] += 1
                resumed += outcome.resumed
                if not outcome.ok:
                    print(f"  {outcome.task_id}: {outcome.state.value}: {outcome.error}")
            requests = batch.statistics().requests.get("poll", 0)
            print(f"{run}: {dict(states)}, {resumed} from the manifest, {requests} polls sent")
            if emulator is None:
                break
    return 0 if set(states) <= {"done"} else 1


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) > 2:
        sys.exit("usage: python examples/bulk_fetch.py [IDS_FILE] [OUT_DIR]")
    if len(args) == 2:
        ids_path, out_dir = Path(args[0]), Path(args[1])
    else:  # a fresh folder, never the current directory
        workdir = Path(tempfile.mkdtemp(prefix="aiotts-bulk-fetch-"))
        ids_path = Path(args[0]) if args else workdir / "ids.txt"
        out_dir = workdir / "audio"
    print(f"ids: {ids_path}; audio and manifest: {out_dir}")
    sys.exit(anyio.run(main, ids_path, out_dir))
