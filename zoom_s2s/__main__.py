"""``python -m zoom_s2s``: the ``zoom-s2s`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
