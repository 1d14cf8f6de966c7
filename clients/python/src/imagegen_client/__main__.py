"""`python -m imagegen_client …`: the command line (imagegen_client.cli), like `imagegen-client …`."""

import sys

from imagegen_client.cli import main

sys.exit(main())
