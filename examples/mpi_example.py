"""A Dask computation as one MPI job.

    mpirun -np 4 python examples/mpi_example.py

Rank 0 runs the Dask scheduler, ranks 2 and up run workers, and rank 1 carries on
past ``initialize()`` as the client. When this script ends, the whole cluster
shuts down and every rank exits with the script's exit code. The same script
also runs as ``mpirun -np 4 hpcdask-mpi run examples/mpi_example.py``, or
without MPI inside a Slurm allocation as ``srun -n 4 hpcdask-srun run
examples/mpi_example.py``, where the command has set the cluster up and
``initialize()`` does nothing.
"""

from __future__ import annotations

import dask.array as da
from distributed import Client

from hpcdask.mpi import initialize

initialize()

with Client() as client:
    x = da.random.RandomState(0).random((4000, 4000), chunks=(1000, 1000))
    mean = (x + x.T).mean().compute()
    workers = len(client.scheduler_info()["workers"])
    print(f"mean of x + x.T = {mean:.4f}, computed by {workers} workers")
