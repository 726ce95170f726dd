"""``python -m gridflow``: the ``gridflow`` command (`gridflow.cli.main`)."""

from __future__ import annotations

import sys

from gridflow.cli import main

if __name__ == "__main__":
    sys.exit(main())
