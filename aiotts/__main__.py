"""``python -m aiotts`` runs the command line."""

import sys

from aiotts.cli import main

sys.exit(main())
