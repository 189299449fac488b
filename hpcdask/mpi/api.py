"""The launcher's functions: :func:`initialize`, :func:`execute`, :func:`run`,
:func:`serve`, :func:`send_close_signal`.

Each builds the options once, finds this rank's roles, and hands them to
:func:`~hpcdask.mpi.ranks.launch`, which runs the class of each role. The
``*_with`` variants take options built already and any control plane (the
``hpcdask-srun`` command passes Slurm's).
"""

from __future__ import annotations

import atexit
import functools
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hpcdask.mpi.client import ClientRank, current_client
from hpcdask.mpi.control import MPIControl
from hpcdask.mpi.logs import set_log_level
from hpcdask.mpi.options import ClusterOptions, Placement
from hpcdask.mpi.ranks import launch
from hpcdask.mpi.roles import Roles
from hpcdask.mpi.servers import default_dask_client
from hpcdask.mpi.tracebacks import call_as_script

if TYPE_CHECKING:
    from mpi4py.MPI import Intracomm

    from hpcdask.mpi.control import ControlPlane

__all__ = [
    "execute",
    "initialize",
    "initialize_with",
    "launch_with",
    "run",
    "run_with",
    "send_close_signal",
    "serve",
    "serve_with",
]


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
    worker_options: Mapping[str, object] | None = None,
    comm: Intracomm | None = None,
    exit: bool = True,
    *,
    scheduler_file: str | None = None,
    scheduler_port: int = 0,
    worker_name: str | None = None,
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
    nanny, worker_class, worker_options, worker_name
        run each worker under a restarting nanny; the worker class or its import
        path; its further keyword arguments; name workers ``"<name>-<rank>"``.
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
    if current_client() is not None:
        # the script runs under `hpcdask-mpi run` (or called this twice): this is
        # the client rank of a cluster that is already up
        return True
    control = mpi_control(comm)
    roles = Roles(control.size)
    set_log_level(options.log_level)
    if control.rank == roles.client:
        client = ClientRank.start(control, roles, options)
        atexit.register(client.finish_at_exit)
        return True
    code = launch(control, roles, options)
    if exit:
        sys.exit(code)
    return False


def execute(
    client_function: Callable[..., object] | None = None,
    client_args: Sequence[object] = (),
    client_kwargs: Mapping[str, object] | None = None,
    client_rank: int = 1,
    scheduler: bool = True,
    scheduler_rank: int = 0,
    scheduler_address: str | None = None,
    scheduler_port: int | None = None,
    scheduler_file: str | None = None,
    interface: str | None = None,
    nthreads: int = 1,
    local_directory: str | None = None,
    memory_limit: str | int | float | None = "auto",
    nanny: bool = False,
    dashboard: bool = True,
    dashboard_address: str = ":8787",
    protocol: str | None = None,
    exclusive_workers: bool = True,
    worker_class: str | type = "distributed.Worker",
    worker_options: Mapping[str, object] | None = None,
    worker_name: str | None = None,
    comm: Intracomm | None = None,
    *,
    log_level: str | None = "warning",
    failure_timeout: float = 10.0,
    shutdown_timeout: float = 60.0,
) -> int:
    """dask-mpi's ``execute``: run ``client_function`` on one rank as the
    client of an MPI Dask cluster; every rank returns when it has returned.

    Parameters
    ----------
    client_function, client_args, client_kwargs
        the client rank calls ``client_function(*client_args, **client_kwargs)``;
        ``None``: no client, the cluster serves until ``client.shutdown()``.
    client_rank, scheduler_rank, exclusive_workers
        where the client and the scheduler run (any ranks, the same or not);
        workers run on the other ranks; with ``False`` on every rank.
    scheduler, scheduler_address
        ``False``: join the scheduler at ``scheduler_address`` (or in
        ``scheduler_file``); the client retires its workers at the end.
    worker_name, and the others
        ``"<worker_name>-<rank>"`` names the workers; the rest are
        :func:`initialize`'s (``scheduler_port=None``: any free port).

    Returns
    -------
    int
        the exit code of the function as for a script, on every rank (1 with
        its traceback for an exception). The communicator stays usable.
    """
    values = {**locals(), "scheduler_port": scheduler_port or 0}
    placement = Placement(scheduler_rank, client_rank, exclusive_workers, scheduler)
    function = _as_script(client_function, client_args, client_kwargs)
    options = ClusterOptions.from_mapping(values)
    return launch_with(
        options, placement, function, mpi_control(comm), scheduler_address
    )


def _as_script(
    function: Callable[..., object] | None,
    args: Sequence[object],
    kwargs: Mapping[str, object] | None,
) -> Callable[[], int] | None:
    """``function(*args, **kwargs)`` called as a script: its exit code."""
    if function is None:
        return None
    return functools.partial(
        call_as_script, functools.partial(function, *args, **(kwargs or {}))
    )


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
    control: ControlPlane | None = None,
    placement: Placement | None = None,
    address: str | None = None,
) -> int:
    """:func:`run` with the options built already, on any control plane."""
    code = launch_with(
        options,
        placement or Placement(),
        functools.partial(call_as_script, function, *args),
        control or mpi_control(comm),
        address,
    )
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


def serve_with(
    options: ClusterOptions,
    comm: Intracomm | None = None,
    control: ControlPlane | None = None,
    placement: Placement | None = None,
    address: str | None = None,
) -> int:
    """:func:`serve` with the options built already, on any control plane."""
    return launch_with(
        options, placement or Placement(), None, control or mpi_control(comm), address
    )


def launch_with(
    options: ClusterOptions,
    placement: Placement,
    function: Callable[[], int] | None,
    control: ControlPlane,
    address: str | None = None,
) -> int:
    """Run this rank's roles: ``function`` (an exit code) on the client rank.

    Raises :class:`WorldTooSmallError` (on every rank) when the ranks are too
    few, and :class:`ValueError` for a scheduler elsewhere with no address.
    """
    launcher = "mpirun" if isinstance(control, MPIControl) else "srun"
    roles = placement.roles(control.size, function is not None, launcher)
    if roles.scheduler is None:
        address = external_address(address, options.scheduler_file)
    set_log_level(options.log_level)
    return launch(control, roles, options, function, address)


def send_close_signal() -> None:
    """End the cluster from its client: what dask-mpi's function of that name
    does, for scripts that call :func:`initialize` with ``exit=False``.

    On the client rank it shuts the cluster down as the end of the script
    would (the other ranks then return from :func:`initialize`); elsewhere it
    shuts down the scheduler of this process's current client, if it has one.
    """
    client = current_client()
    if client is not None:
        client.finish(0)
        return
    other = default_dask_client()
    if other is not None:
        other.shutdown()


def mpi_control(comm: Intracomm | None = None) -> MPIControl:
    """The MPI control plane over ``comm`` (default: the world)."""
    from mpi4py import MPI

    return MPIControl(comm if comm is not None else MPI.COMM_WORLD)


def external_address(address: str | None, scheduler_file: str | None) -> str:
    """The address of a scheduler this run does not start."""
    if address:
        return address
    if not scheduler_file:
        raise ValueError(
            "without a scheduler of its own, the run needs scheduler_address "
            "or scheduler_file"
        )
    try:
        with open(scheduler_file) as f:
            return str(json.load(f)["address"])
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"no scheduler address in {scheduler_file}: {e}") from e


def _in_worker_subprocess() -> bool:
    """Whether this is a process multiprocessing started (a nanny's worker)."""
    import multiprocessing

    return multiprocessing.parent_process() is not None
