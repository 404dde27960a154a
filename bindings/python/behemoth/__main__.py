"""`python -m behemoth ...`: the command line (behemoth.cli)."""
import sys

from .cli import main

if __name__ == "__main__":   # a sweep's worker processes import this module again: they must not run the CLI
    sys.exit(main())
