"""`python -m execd` is the `execd` command."""

import sys

from execd.cli.main import main

sys.exit(main())
