"""Every code block of the README runs as written, against an emulator on 127.0.0.1.

What happens to a fenced block is decided by its language and by a marker, an HTML comment
on the line right before the fence (invisible on the rendered page):

* ``python``: written to a file in a fresh temporary folder and run there with this
  interpreter; it must exit 0.
* ``sh``: run there by ``sh -e``; it must exit 0.
* Both get the environment a reader has after pasting the emulator's ``export`` line
  (``ASPOSE_CLIENT_ID``, ``ASPOSE_CLIENT_SECRET``, ``AIOTTS_BASE_URL``), and this
  interpreter's folder first on ``PATH`` (so ``aiotts`` is this checkout's).
* ``<!-- server: WHY -->`` before an ``sh`` block of one command: a server that runs until
  stopped. It is started with ``--port 0`` appended (so it never collides with a port in
  use), must print a line containing ``listening on``, then must exit 0 on SIGTERM.
* ``<!-- not run: WHY -->``: not run; the reason is required.
* ``text``, or no language: shown output or a synopsis, never run.
* Any other language fails the test, naming the block's line: write it as one of the
  above or mark it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aiotts.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorProcess

README = Path(__file__).resolve().parent.parent / "README.md"
RUN = {"python", "sh"}
SHOWN = {"", "text"}
MARKER = re.compile(r"^<!--\s*(not run|server):\s*(.*?)\s*-->$")
BLOCK_TIMEOUT = 120


@dataclass(frozen=True, slots=True)
class Block:
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    marker: str | None  # "not run" or "server"
    reason: str

    def __str__(self) -> str:
        return f"README.md line {self.line} (```{self.language})"


def read_blocks(text: str) -> list[Block]:
    """Every fenced block of ``text``, with the marker on the line before it, if any."""
    lines = text.splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        fence = lines[index]
        if not fence.startswith("```"):
            index += 1
            continue
        start = index
        index += 1
        while index < len(lines) and lines[index] != "```":
            index += 1
        if index == len(lines):
            raise AssertionError(f"README.md line {start + 1}: a fence that is never closed")
        before = lines[start - 1].strip() if start else ""
        marked = MARKER.match(before)
        blocks.append(
            Block(
                line=start + 1,
                language=fence[3:].strip(),
                code="\n".join(lines[start + 1 : index]) + "\n",
                marker=marked.group(1) if marked else None,
                reason=marked.group(2) if marked else "",
            )
        )
        index += 1
    return blocks


BLOCKS = read_blocks(README.read_text(encoding="utf-8"))


def run_blocks() -> Iterator[Block]:
    for block in BLOCKS:
        if block.language in RUN and block.marker is None:
            yield block


def server_blocks() -> Iterator[Block]:
    for block in BLOCKS:
        if block.marker == "server":
            yield block


def test_every_block_is_run_or_marked() -> None:
    problems = []
    for block in BLOCKS:
        if block.marker == "not run" and not block.reason:
            problems.append(f"{block}: 'not run' needs a reason")
        elif block.marker == "server" and (
            block.language != "sh" or len(block.code.strip().splitlines()) != 1
        ):
            problems.append(f"{block}: a server block is one sh command")
        elif block.marker is None and block.language not in RUN | SHOWN:
            problems.append(
                f"{block}: neither run nor marked; write it as ```python or ```sh, "
                "or put <!-- not run: WHY --> on the line before it"
            )
    assert not problems, "\n".join(problems)
    assert list(run_blocks()), "the README has no block that runs"


@pytest.fixture(scope="module")
def emulator_env() -> Iterator[dict[str, str]]:
    """The environment after pasting the export line of a default emulator."""
    with EmulatorProcess() as emu:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ASPOSE_", "AIOTTS_"))}
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        env["ASPOSE_CLIENT_ID"] = DEFAULT_CLIENT_ID
        env["ASPOSE_CLIENT_SECRET"] = DEFAULT_CLIENT_SECRET
        env["AIOTTS_BASE_URL"] = emu.url
        env["COLUMNS"] = "120"
        yield env


@pytest.mark.parametrize("block", list(run_blocks()), ids=str)
def test_block_runs(block: Block, emulator_env: dict[str, str], tmp_path: Path) -> None:
    if block.language == "python":
        script = tmp_path / f"readme_line_{block.line}.py"
        script.write_text(block.code, encoding="utf-8")
        command = [sys.executable, str(script)]
    else:
        command = ["sh", "-e", "-c", block.code]
    try:
        result = subprocess.run(
            command,
            cwd=tmp_path,
            env=emulator_env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{block} still running after {BLOCK_TIMEOUT} s")
    assert result.returncode == 0, (
        f"{block} exited {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )


@pytest.mark.parametrize("block", list(server_blocks()), ids=str)
def test_server_block_starts_and_stops(
    block: Block, emulator_env: dict[str, str], tmp_path: Path
) -> None:
    proc = subprocess.Popen(
        ["sh", "-c", f"exec {block.code.strip()} --port 0"],
        cwd=tmp_path,
        env=emulator_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "listening on" in first, f"{block} printed {first!r}"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, f"{block} did not exit 0 on SIGTERM"
    finally:
        proc.kill()
        proc.wait()
