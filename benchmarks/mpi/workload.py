"""The benchmark's client script: one small dask array computation.

    mpirun -np N python workload.py dask-mpi     # dask_mpi.initialize()
    mpirun -np N python workload.py hpcdask      # hpcdask.mpi.initialize()
    mpirun -np N hpcdask-mpi run workload.py cli # no initialize(): the command does it

Prints ``RESULT <unix time>`` when the first result is in, for bench_mpi.py.
"""

from __future__ import annotations

import sys
import time

launcher = sys.argv[1]
if launcher == "dask-mpi":
    from dask_mpi import initialize

    initialize()
elif launcher == "hpcdask":
    from hpcdask.mpi import initialize

    initialize()

import dask.array as da  # noqa: E402
from distributed import Client  # noqa: E402

client = Client()
x = da.random.RandomState(42).random((4000, 4000), chunks=(1000, 1000))
value = float((x + x.T).mean().compute())
print(f"RESULT {time.time():.6f} {value:.6f}", flush=True)
