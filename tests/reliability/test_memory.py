"""Memory does not grow with the size of the audio: a 30 MB result streams to disk.

The client runs in a process of its own (so its peak RSS is its own) against an emulator in
another; it warms up on a small result first, so the figure is the growth that the size of
the result causes, not the cost of imports and the first connection.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from aiotts.emulator import EmulatorConfig, EmulatorProcess

CLIENT = r"""
import resource, sys, anyio, orjson
from aiotts import TTSClient
from aiotts.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

def peak_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

async def main(url, small, big, out):
    async with TTSClient(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, base_url=url) as client:
        await client.download(small, out)
        before = peak_kib()
        saved = await client.download(big, out)
        after = peak_kib()
    print(orjson.dumps({"before": before, "after": after, "bytes": saved.bytes_written}).decode())

anyio.run(main, *sys.argv[1:])
"""

SIZE = 30_000_000


def test_a_30_mb_download_grows_peak_rss_by_less_than_10_mb(tmp_path: Path) -> None:
    with EmulatorProcess(EmulatorConfig(pending_seconds=0, processing_seconds=0)) as emu:
        small = emu.create_tasks(["warm up"], audio_bytes=400_000)[0]
        big = emu.create_tasks(["thirty megabytes"], audio_bytes=SIZE)[0]
        result = subprocess.run(
            [sys.executable, "-c", CLIENT, emu.url, small, big, str(tmp_path)],
            capture_output=True,
            check=True,
            timeout=120,
        )
        figures = orjson.loads(result.stdout)
        audio = emu.audio(big)
        assert (tmp_path / f"{big}.wav").read_bytes() == audio
    growth_mib = (figures["after"] - figures["before"]) / 1024
    print(
        f"\n30 MB download: peak RSS {figures['before'] / 1024:.1f} -> "
        f"{figures['after'] / 1024:.1f} MiB (+{growth_mib:.1f})"
    )
    assert figures["bytes"] == len(audio) > SIZE - 3
    assert growth_mib < 10
