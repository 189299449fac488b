"""The MPI launcher: one ``mpirun``, a whole Dask cluster, a clean exit.

Inside a script started with ``mpirun -np N python script.py``,
:func:`initialize` gives each rank of the communicator a role:

========  ====================================================================
rank 0    the Dask scheduler
rank 1    the client: :func:`initialize` returns ``True`` and the script goes on;
          a bare ``distributed.Client()`` connects to the scheduler
rank 2..  one Dask worker each
========  ====================================================================

:func:`run` does the same for a Python callable, :func:`execute` (dask-mpi's)
for a callable with any choice of scheduler and client ranks, and the
``hpcdask-mpi`` command (:mod:`hpcdask.mpi.cli`, also ``python -m hpcdask.mpi``)
for a script, a module or a callable, plus a ``serve`` mode that only provides a
scheduler and workers for a client elsewhere. ``hpcdask-srun`` (``python -m
hpcdask.mpi.srun``) is the same command for the tasks of one ``srun``, without
MPI (:mod:`hpcdask.mpi.slurm`).

Shutdown is coordinated over MPI, on a private duplicate of the communicator so
it never mixes with a script's own messages (:mod:`hpcdask.mpi.roles`):

1. the client rank closes the script's clients and sends DONE(code) to rank 0;
2. rank 0 has every worker stop its heartbeats (so no call to the scheduler is on
   its way when the worker closes), sends STOP to every worker rank, which then
   closes its own worker or nanny, waits until all have left, and closes the
   scheduler;
3. rank 0 sends EXIT(code) to every other rank, and all ranks exit with ``code``.

Nothing closes a connection the other side still uses, so a successful run
leaves no tracebacks or error logs. Failures do not hang the job: a worker rank
whose worker leaves without a STOP (its scheduler died), a worker that leaves the
scheduler without one and does not return within ``failure_timeout``, or a
shutdown that does not finish within ``shutdown_timeout`` ends the whole job
with ``MPI_Abort`` and a non-zero exit code. (Open MPI's ``mpirun`` also ends the
job at once when a rank is killed.)

The package, one concern per module: :mod:`~hpcdask.mpi.options` (the options
and the commands' flags), :mod:`~hpcdask.mpi.roles` (pure: ranks, messages,
exit codes), :mod:`~hpcdask.mpi.control` (the control-plane protocol and MPI's),
:mod:`~hpcdask.mpi.slurm` (the control plane of srun's tasks),
:mod:`~hpcdask.mpi.scheduler`, :mod:`~hpcdask.mpi.worker` and
:mod:`~hpcdask.mpi.client` (one class per rank role), :mod:`~hpcdask.mpi.ranks`
(a rank's roles together), :mod:`~hpcdask.mpi.plugins`,
:mod:`~hpcdask.mpi.servers` (distributed's objects, typed),
:mod:`~hpcdask.mpi.tracebacks`, :mod:`~hpcdask.mpi.logs`,
:mod:`~hpcdask.mpi.api` (the functions below), :mod:`~hpcdask.mpi.script`
(batch scripts) and :mod:`~hpcdask.mpi.cli`.
Importing it does not start MPI.
"""

from __future__ import annotations

from hpcdask.errors import MPIClusterError, WorldTooSmallError
from hpcdask.mpi.api import execute, initialize, run, send_close_signal, serve
from hpcdask.mpi.options import ClusterOptions, Placement
from hpcdask.mpi.roles import RankWatch, Roles

#: dask-mpi's name for it, so that changing the import is enough
WorldTooSmallException = WorldTooSmallError

__all__ = [
    "ClusterOptions",
    "MPIClusterError",
    "Placement",
    "RankWatch",
    "Roles",
    "WorldTooSmallError",
    "WorldTooSmallException",
    "execute",
    "initialize",
    "run",
    "send_close_signal",
    "serve",
]
