"""The launcher's functions: :func:`initialize`, :func:`run`, :func:`serve`.

Each builds the options once, finds this rank's role on the communicator, and
runs the class of that role (:mod:`~hpcdask.mpi.scheduler`,
:mod:`~hpcdask.mpi.worker`, :mod:`~hpcdask.mpi.client`).
"""

from __future__ import annotations

import asyncio
import atexit
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from hpcdask.mpi.client import ClientRank
from hpcdask.mpi.control import MPIControl
from hpcdask.mpi.logs import logger, set_log_level
from hpcdask.mpi.options import ClusterOptions
from hpcdask.mpi.roles import Roles
from hpcdask.mpi.scheduler import SchedulerRank
from hpcdask.mpi.tracebacks import call_as_script
from hpcdask.mpi.worker import WorkerRank, main_module_hidden

if TYPE_CHECKING:
    from mpi4py.MPI import Intracomm

    from hpcdask.mpi.control import ControlPlane

__all__ = [
    "initialize",
    "initialize_with",
    "run",
    "run_with",
    "serve",
    "serve_rank",
    "serve_with",
]

#: the client rank of this process's cluster, once it is up
_client: ClientRank | None = None


def initialize(
    interface: str | None = None,
    nthreads: int = 1,
    local_directory: str | None = None,
    memory_limit: str | int | float | None = "auto",
    nanny: bool = False,
    dashboard: bool = True,
    dashboard_address: str = ":8787",
    protocol: str | None = None,
    worker_class: str | type = "distributed.Worker",
    worker_options: Mapping[str, Any] | None = None,
    comm: Intracomm | None = None,
    exit: bool = True,
    *,
    scheduler_file: str | None = None,
    scheduler_port: int = 0,
    log_level: str | None = "warning",
    failure_timeout: float = 10.0,
    shutdown_timeout: float = 60.0,
) -> bool:
    """Turn an ``mpirun``-started script into a Dask cluster and its client.

    Rank 0 runs the scheduler and ranks 2 and up run one worker each; neither
    returns while the cluster lives. Rank 1 returns ``True`` at once and runs the
    rest of the script as the client: ``distributed.Client()`` connects to the
    scheduler. When the script ends, the cluster shuts down cleanly and every rank
    exits with the script's status (see :mod:`hpcdask.mpi`).

    Parameters
    ----------
    interface, protocol
        network interface (e.g. ``"ib0"``) and comm protocol (e.g. ``"ucx://"``).
    nthreads, memory_limit, local_directory
        each worker's threads, memory before spilling, and scratch directory.
    nanny, worker_class, worker_options
        run each worker under a restarting nanny; the worker class or its
        import path; further keyword arguments of the worker (or nanny).
    dashboard, dashboard_address, scheduler_file, scheduler_port
        the scheduler's dashboard, a file to write its address to, its port.
    comm, exit
        the communicator (default ``MPI.COMM_WORLD``); with ``exit=False`` the
        scheduler and worker ranks return ``False`` instead of ``sys.exit``.
    log_level
        level of dask's loggers on every rank; ``None`` keeps dask's config.
    failure_timeout, shutdown_timeout
        seconds a lost rank may stay lost; seconds the shutdown may take.

    Returns
    -------
    bool
        ``True`` on the client rank; ``False`` on the others when ``exit=False``.

    Raises
    ------
    WorldTooSmallError
        with fewer than three ranks.
    """
    # every parameter but comm and exit is a field of ClusterOptions
    return initialize_with(ClusterOptions.from_mapping(locals()), comm, exit)


def initialize_with(
    options: ClusterOptions, comm: Intracomm | None = None, exit: bool = True
) -> bool:
    """:func:`initialize` with the options built already."""
    if _in_worker_subprocess():
        # A nanny's worker process re-imports the main script: it must not join.
        return False
    if _client is not None:
        # the script runs under `hpcdask-mpi run` (or called this twice): this is
        # the client rank of a cluster that is already up
        return True
    control, roles = _mpi_roles(comm, options, with_client=True)
    if control.rank == Roles.CLIENT:
        client = _start_client(control, options)
        atexit.register(client.finish_at_exit)
        return True
    code = serve_rank(control, roles, options)
    if exit:
        sys.exit(code)
    return False


def run(
    function: Callable[..., object],
    *args: object,
    comm: Intracomm | None = None,
    exit: bool = True,
    **options: Any,
) -> int:
    """Run ``function(*args)`` as the client of an MPI Dask cluster.

    Every rank calls this; rank 1 calls ``function`` while rank 0 runs the
    scheduler and the others run workers. ``function`` returning ``None`` or an
    int sets the exit code; an exception prints its traceback and gives 1, and
    ``SystemExit`` gives its code, as for a script.

    Parameters
    ----------
    function
        what the client runs.
    *args
        positional arguments of ``function``.
    comm, exit
        as for :func:`initialize`; with ``exit=False`` every rank returns the code.
    **options
        any other keyword argument of :func:`initialize`.

    Returns
    -------
    int
        the exit code (only when ``exit=False``).
    """
    return run_with(ClusterOptions(**options), function, *args, comm=comm, exit=exit)


def run_with(
    options: ClusterOptions,
    function: Callable[..., object],
    *args: object,
    comm: Intracomm | None = None,
    exit: bool = True,
) -> int:
    """:func:`run` with the options built already."""
    control, roles = _mpi_roles(comm, options, with_client=True)
    if control.rank == Roles.CLIENT:
        client = _start_client(control, options)
        code = client.finish(call_as_script(function, *args))
    else:
        code = serve_rank(control, roles, options)
    if exit:
        sys.exit(code)
    return code


def serve(comm: Intracomm | None = None, **options: Any) -> int:
    """Run only a scheduler (rank 0) and workers (every other rank).

    A client elsewhere connects, usually through ``scheduler_file``. When the
    scheduler is shut down (``client.shutdown()``), its workers close first and
    every rank returns 0.

    Parameters
    ----------
    comm
        the communicator to use (default ``MPI.COMM_WORLD``).
    **options
        keyword arguments of :func:`initialize`, e.g. ``scheduler_file``.

    Returns
    -------
    int
        the exit code for this rank.
    """
    return serve_with(ClusterOptions(**options), comm)


def serve_with(options: ClusterOptions, comm: Intracomm | None = None) -> int:
    """:func:`serve` with the options built already."""
    control, roles = _mpi_roles(comm, options, with_client=False)
    return serve_rank(control, roles, options)


def serve_rank(control: ControlPlane, roles: Roles, options: ClusterOptions) -> int:
    """Run this rank's scheduler or worker until the cluster closes.

    Any failure here ends the whole job: a rank that exits on its own would
    leave the others waiting for it.
    """
    rank = control.rank
    try:
        if rank == Roles.SCHEDULER:
            return asyncio.run(SchedulerRank(control, roles, options).run())
        address = control.receive_address(Roles.SCHEDULER)
        if address is None:
            # the scheduler rank has reported its failure and ends the job
            control.abort(1)
        with main_module_hidden():
            code = asyncio.run(WorkerRank(control, options).run(address))
        control.flush(options.failure_timeout)
        return code
    except BaseException:
        logger.exception(
            "the %s on MPI rank %d failed; ending the MPI job", roles.role(rank), rank
        )
        control.abort(1)


def _mpi_roles(
    comm: Intracomm | None, options: ClusterOptions, with_client: bool
) -> tuple[MPIControl, Roles]:
    """The control plane over ``comm`` (default: the world) and its roles."""
    from mpi4py import MPI

    world = comm if comm is not None else MPI.COMM_WORLD
    roles = Roles(world.Get_size(), with_client=with_client)
    set_log_level(options.log_level)
    return MPIControl(world), roles


def _start_client(control: ControlPlane, options: ClusterOptions) -> ClientRank:
    global _client
    client = _client = ClientRank(control, options)
    client.start()
    return client


def _in_worker_subprocess() -> bool:
    """Whether this is a process multiprocessing started (a nanny's worker)."""
    import multiprocessing

    return multiprocessing.parent_process() is not None
