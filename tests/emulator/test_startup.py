"""What the emulator prints when it starts, and that its ``export`` line works as pasted."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aiotts.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from aiotts.emulator._cli import startup_lines

COMMANDS = {
    "python -m aiotts.emulator": [sys.executable, "-m", "aiotts.emulator"],
    "aiotts emulator": [sys.executable, "-m", "aiotts", "emulator"],
}

# Run by a shell after the pasted export line: the library alone, no argument.
CLIENT = """
import anyio
from aiotts import TTSClient

async def main() -> None:
    async with TTSClient() as client:
        saved = await client.wait(await client.submit("Pasted."), "out/", timeout=30)
        print(saved.bytes_written)

anyio.run(main)
"""


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("ASPOSE_", "AIOTTS_"))}


def read_startup(proc: subprocess.Popen[str]) -> list[str]:
    assert proc.stdout is not None
    return [proc.stdout.readline().rstrip("\n") for _ in startup_lines("u", "i", "s")]


@pytest.mark.parametrize("command", COMMANDS)
def test_startup_lines_say_how_to_connect(command: str, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*COMMANDS[command], "--port", "0", "--pending-seconds", "0", "--processing-seconds", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        lines = read_startup(proc)
        url = lines[0].removeprefix("aiotts emulator listening on ")
        assert url.startswith("http://127.0.0.1:")
        assert lines == startup_lines(url, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
        assert f"client secret: {DEFAULT_CLIENT_SECRET}" in lines
        assert any("throwaway credentials" in line for line in lines)
        export = next(line.strip() for line in lines if line.strip().startswith("export "))
        assert f"AIOTTS_BASE_URL={url}" in export
        if command == "aiotts emulator":
            return  # one paste test is enough; both commands print the same lines
        shell = shutil.which("sh")
        assert shell is not None
        script = tmp_path / "client.py"
        script.write_text(CLIENT)
        pasted = subprocess.run(
            [shell, "-c", f'{export}\nexec "{sys.executable}" "{script}"'],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=clean_env(),
            timeout=60,
            check=False,
        )
        assert pasted.returncode == 0, pasted.stderr
        assert int(pasted.stdout) > 44
        assert len(list((tmp_path / "out").glob("*.wav"))) == 1
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0


def test_export_line_quotes_what_a_shell_would_split() -> None:
    lines = startup_lines("http://127.0.0.1:1", "id with space", "se$cret'")
    export = next(line.strip() for line in lines if line.strip().startswith("export "))
    shell = shutil.which("sh")
    assert shell is not None
    shown = subprocess.run(
        [shell, "-c", f'{export}\nprintf "%s|%s" "$ASPOSE_CLIENT_ID" "$ASPOSE_CLIENT_SECRET"'],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=10,
        check=True,
    )
    assert shown.stdout == "id with space|se$cret'"
