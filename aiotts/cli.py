"""The ``aiotts`` command line: the only code in the package that prints or exits."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    from aiotts.emulator import _cli as emulator_cli

    parser = argparse.ArgumentParser(prog="aiotts", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    emulator = verbs.add_parser("emulator", help="run the API emulator")
    emulator_cli.add_arguments(emulator)
    emulator.set_defaults(run=emulator_cli.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
