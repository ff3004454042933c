"""``python -m aiotts.emulator``: run the API emulator (same flags as ``aiotts emulator``)."""

import sys

from aiotts.emulator._cli import main

sys.exit(main())
