"""`python -m behemoth ...`: the command line (behemoth.cli)."""
import sys

from .cli import main

sys.exit(main())
