"""`python -m imagegen …`: the command-line client (imagegen/cli.py)."""

import sys

from imagegen.cli import main

sys.exit(main())
