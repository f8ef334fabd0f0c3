"""`python -m lossdsl` is the `lossdsl` command."""

import sys

from .cli import main

sys.exit(main())
