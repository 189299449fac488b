"""``python -m hpcdask.mpi`` is the ``hpcdask-mpi`` command."""

from __future__ import annotations

import sys

from hpcdask.mpi.cli import main

if __name__ == "__main__":
    sys.exit(main())
