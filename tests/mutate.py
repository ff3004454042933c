"""Mutation testing of the pure cores: ``python -m tests.mutate _states _pacing ...``.

For each module ``aiotts/_X.py`` named on the command line, mutmut plants small bugs in it
(a ``<`` turned into ``<=``, a constant changed, a call dropped) one at a time, and runs
only that module's own unit tests against each: ``tests/unit/test_X.py``, any
``tests/unit/test_X_*.py``, and the files ``EXTRA_TESTS`` adds. A mutant that no test
notices ("survived") is a rule of the module that no test guards.

Each module runs in a fresh copy of the project under ``build/mutate/_X/`` (mutmut reads
its settings from the ``pyproject.toml`` of the folder it runs in, so each copy gets its
own), which keeps the runs apart and the working tree untouched. The script prints the
score per module and every surviving mutant, and exits 1 if a module scores below
``--min-score`` percent (or its own floor in ``MIN_SCORES``). ``mutmut show NAME`` in a
module's folder shows a mutant's diff.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "mutate"

EXTRA_TESTS: dict[str, tuple[str, ...]] = {
    "_files": ("tests/unit/test_file_names.py",),
}
"""Unit tests of a module kept in files not named after it."""

MIN_SCORES: dict[str, float] = {}
"""Floors other than ``--min-score`` for modules whose equivalent mutants are more than a
tenth (none at present; the survivors are listed in the README's Development section)."""

KILLED = frozenset({"killed", "timeout"})
"""Outcomes in which the tests noticed the mutant (a test that hangs noticed it too)."""


@dataclass(frozen=True, slots=True)
class Score:
    module: str
    results: dict[str, str]  # mutant name -> mutmut's status
    seconds: float

    @property
    def killed(self) -> int:
        return sum(status in KILLED for status in self.results.values())

    @property
    def survivors(self) -> list[str]:
        return sorted(name for name, status in self.results.items() if status not in KILLED)

    @property
    def percent(self) -> float:
        return 100.0 * self.killed / len(self.results) if self.results else 100.0


def _settings(module: str) -> str:
    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["aiotts/"]\n'
        f'only_mutate = ["aiotts/{module}.py"]\n'
        f"pytest_add_cli_args_test_selection = {_toml_list(_tests_of(module))}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "--no-cov"]\n'
        # A mutant that makes a test loop or wait for ever counts as killed once its run
        # takes this many times the tests' usual time (mutmut's default, 15, makes each
        # such mutant cost minutes).
        "timeout_multiplier = 5.0\n"
    )


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def _tests_of(module: str) -> list[str]:
    """The unit test files of ``module`` (relative to the root); the first is required."""
    name = module.lstrip("_")
    unit = ROOT / "tests" / "unit"
    named = sorted(unit.glob(f"test_{name}_*.py"))
    files = [f"tests/unit/test_{name}.py"]
    files += [path.relative_to(ROOT).as_posix() for path in named]
    files += EXTRA_TESTS.get(module, ())
    return files


def _prepare(module: str) -> Path:
    folder = WORK / module
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "aiotts", folder / "aiotts", ignore=ignore)
    shutil.copytree(ROOT / "tests", folder / "tests", ignore=ignore)
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    (folder / "pyproject.toml").write_text(pyproject + _settings(module), encoding="utf-8")
    return folder


def _run(module: str, mutmut: str) -> Score:
    if not (ROOT / "aiotts" / f"{module}.py").is_file():
        raise SystemExit(f"no module aiotts/{module}.py: name modules like _states")
    required = _tests_of(module)[0]
    if not (ROOT / required).is_file():
        raise SystemExit(f"no unit tests for aiotts/{module}.py: write {required}")
    started = time.monotonic()
    folder = _prepare(module)
    log = folder / "mutmut.log"
    with log.open("wb") as output:
        run = subprocess.run(
            [mutmut, "run"], cwd=folder, stdout=output, stderr=subprocess.STDOUT, check=False
        )
    if run.returncode != 0:
        raise SystemExit(f"mutmut failed on {module} (exit {run.returncode}); see {log}")
    listing = subprocess.run(
        [mutmut, "results", "--all", "true"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    results: dict[str, str] = {}
    for line in listing.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name:
            results[name] = status
    return Score(module, results, time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="+", help="modules of aiotts, e.g. _states")
    parser.add_argument("--min-score", type=float, default=90.0, help="percent (default 90)")
    args = parser.parse_args(argv)
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    if not Path(mutmut).exists():
        raise SystemExit("mutmut is not installed: pip install -e '.[dev]'")
    scores = []
    for module in args.modules:
        score = _run(module, mutmut)
        scores.append(score)
        print(
            f"{module:<12} {score.killed:>4} of {len(score.results):>4} killed "
            f"({score.percent:5.1f}%) in {score.seconds:.0f} s",
            flush=True,
        )
    below = [s.module for s in scores if s.percent < MIN_SCORES.get(s.module, args.min_score)]
    for score in scores:
        for name in score.survivors:
            print(f"  survived: {name} ({score.results[name]})")
    if below:
        print(f"below their minimum score: {', '.join(below)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
