"""``python -m photosketch``: the same as the ``photosketch`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
