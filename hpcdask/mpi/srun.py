"""``python -m hpcdask.mpi.srun`` is the ``hpcdask-srun`` command: the launcher
for the tasks of one ``srun``, without MPI (see :mod:`hpcdask.mpi.slurm`)."""

from __future__ import annotations

import sys

from hpcdask.mpi.cli import srun_main

__all__ = ["srun_main"]

if __name__ == "__main__":
    sys.exit(srun_main())
