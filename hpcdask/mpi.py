"""The MPI launcher: one ``mpirun``, a whole Dask cluster, a clean exit.

Inside a script started with ``mpirun -np N python script.py``,
:func:`initialize` gives each rank of the communicator a role:

========  ====================================================================
rank 0    the Dask scheduler
rank 1    the client: :func:`initialize` returns ``True`` and the script goes on;
          a bare ``distributed.Client()`` connects to the scheduler
rank 2..  one Dask worker each
========  ====================================================================

:func:`run` does the same for a Python callable, and the ``hpcdask-mpi``
command (:mod:`hpcdask.mpi_cli`) for a script, a module or a callable, plus a
``serve`` mode that only provides a scheduler and workers for a client elsewhere.

Shutdown is coordinated over MPI, on a private duplicate of the communicator so
it never mixes with a script's own messages:

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
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import pickle
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

from distributed.diagnostics.plugin import SchedulerPlugin, WorkerPlugin

from hpcdask.errors import HPCDaskError

if TYPE_CHECKING:
    from distributed import Scheduler, Worker
    from mpi4py.MPI import Intracomm, Request

logger = logging.getLogger(__name__)

__all__ = [
    "ClusterOptions",
    "MPIClusterError",
    "RankWatch",
    "Roles",
    "WorldTooSmallError",
    "initialize",
    "run",
    "serve",
]

#: ranks needed with a client rank: scheduler, client, one worker.
MIN_RANKS = 3

# Message tags on the launcher's private communicator.
_TAG_DONE = 1  # client rank -> rank 0: the script ended, with this exit code
_TAG_STOP = 2  # rank 0 -> worker ranks: your worker is about to be closed
_TAG_EXIT = 3  # rank 0 -> every rank: the scheduler is closed, exit with this code

_POLL_INTERVAL = 0.02  # seconds between checks for control messages


class MPIClusterError(HPCDaskError):
    """The MPI cluster cannot be set up as asked."""


class WorldTooSmallError(MPIClusterError, ValueError):
    """The communicator has too few ranks for the roles asked for."""

    def __init__(self, size: int, needed: int, roles: str) -> None:
        self.size = size
        self.needed = needed
        super().__init__(
            f"hpcdask's MPI launcher needs at least {needed} MPI ranks ({roles}); "
            f"this run has {size}: start it with e.g. `mpirun -np {needed} ...`"
        )


@dataclass(frozen=True)
class ClusterOptions:
    """How the scheduler and the workers are started (see :func:`initialize`)."""

    interface: str | None = None
    nthreads: int = 1
    local_directory: str | None = None
    memory_limit: str | int | float | None = "auto"
    nanny: bool = False
    dashboard: bool = True
    dashboard_address: str = ":8787"
    protocol: str | None = None
    worker_class: str | type = "distributed.Worker"
    worker_options: Mapping[str, Any] = field(default_factory=dict)
    scheduler_file: str | None = None
    scheduler_port: int = 0
    log_level: str | None = "warning"
    failure_timeout: float = 10.0
    shutdown_timeout: float = 60.0

    def scheduler_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`distributed.Scheduler`."""
        kwargs: dict[str, Any] = {
            "interface": self.interface,
            "protocol": self.protocol,
            "dashboard": self.dashboard,
            "dashboard_address": self.dashboard_address,
            "port": self.scheduler_port,
        }
        if self.scheduler_file:
            kwargs["scheduler_file"] = self.scheduler_file
        return kwargs

    def worker_spec(self, rank: int) -> tuple[Any, dict[str, Any]]:
        """The class to start on worker ``rank`` and its keyword arguments.

        With ``nanny=True`` that is a :class:`distributed.Nanny` running
        ``worker_class``, unless ``worker_class`` is itself a nanny class.
        """
        from distributed import Nanny
        from distributed.utils import import_term

        cls: Any = self.worker_class
        if isinstance(cls, str):
            cls = import_term(cls)
        kwargs: dict[str, Any] = {
            "name": rank,
            "interface": self.interface,
            "protocol": self.protocol,
            "nthreads": self.nthreads,
            "memory_limit": self.memory_limit,
            "local_directory": self.local_directory,
        }
        if self.nanny and not (isinstance(cls, type) and issubclass(cls, Nanny)):
            kwargs["worker_class"] = cls
            cls = Nanny
        kwargs.update(self.worker_options)
        return cls, kwargs


def check_options(options: ClusterOptions) -> ClusterOptions:
    """Validate ``options``; raise :class:`ValueError` naming the bad one."""
    if isinstance(options.nthreads, bool) or not isinstance(options.nthreads, int):
        raise ValueError(
            f"nthreads must be a positive integer, not {options.nthreads!r}"
        )
    if options.nthreads < 1:
        raise ValueError(f"nthreads must be a positive integer, not {options.nthreads}")
    for name in ("failure_timeout", "shutdown_timeout"):
        value = getattr(options, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(
                f"{name} must be a positive number of seconds, not {value!r}"
            )
    if options.log_level is not None and not isinstance(
        logging.getLevelName(options.log_level.upper()), int
    ):
        raise ValueError(f"unknown log_level {options.log_level!r}")
    if not isinstance(options.worker_options, Mapping):
        raise ValueError("worker_options must be a dict")
    return options


# -- pure pieces ---------------------------------------------------------------------


@dataclass(frozen=True)
class Roles:
    """Which rank does what in a communicator of ``size`` ranks."""

    size: int
    with_client: bool = True

    SCHEDULER = 0
    CLIENT = 1

    def __post_init__(self) -> None:
        needed = MIN_RANKS if self.with_client else MIN_RANKS - 1
        if self.size < needed:
            roles = (
                "a scheduler, a client and at least one worker"
                if self.with_client
                else "a scheduler and at least one worker"
            )
            raise WorldTooSmallError(self.size, needed, roles)

    @property
    def client(self) -> int | None:
        return self.CLIENT if self.with_client else None

    @property
    def workers(self) -> range:
        return range(2 if self.with_client else 1, self.size)

    def role(self, rank: int) -> str:
        if rank == self.SCHEDULER:
            return "scheduler"
        if rank == self.client:
            return "client"
        return "worker"


@dataclass
class RankWatch:
    """Which worker ranks have left the scheduler for longer than ``timeout``.

    A worker behind a nanny may leave and come back (a restart); a worker that
    stays away means its rank is gone. The clock is an argument.
    """

    timeout: float
    connected: set[int] = field(default_factory=set)
    left_at: dict[int, float] = field(default_factory=dict)

    def joined(self, rank: int) -> None:
        self.connected.add(rank)
        self.left_at.pop(rank, None)

    def left(self, rank: int, now: float) -> None:
        if rank in self.connected:
            self.connected.discard(rank)
            self.left_at[rank] = now

    def overdue(self, now: float) -> list[int]:
        """Ranks whose worker left at least ``timeout`` ago and is still away."""
        return sorted(r for r, t in self.left_at.items() if now - t >= self.timeout)


def exit_code_of(exc: SystemExit) -> int:
    """The process exit code Python gives for ``SystemExit(exc.code)``."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, bool):
        return int(code)
    if isinstance(code, int):
        return code & 0xFF
    return 1


def rank_of(name: object) -> int | None:
    """The MPI rank a worker's name stands for, or ``None`` for other names."""
    if isinstance(name, bool):
        return None
    if isinstance(name, int):
        return name
    if isinstance(name, str) and name.isdigit():
        return int(name)
    return None


# -- the control plane ---------------------------------------------------------------


class Control:
    """The launcher's own messages, on a private duplicate of the communicator.

    Everything is non-blocking or polled, so a dead peer turns into a timeout
    rather than a hang. :meth:`connect` makes the duplicate; it is collective, so
    every rank calls it once, after the scheduler's address is known (rank 0
    starts its scheduler while the other ranks are still importing).
    """

    def __init__(self, world: Intracomm) -> None:
        self.world = world
        self.rank: int = world.Get_rank()
        self.size: int = world.Get_size()
        self._comm: Intracomm | None = None
        self._sends: list[Request] = []

    def connect(self) -> None:
        self._comm = self.world.Dup()

    @property
    def comm(self) -> Intracomm:
        assert self._comm is not None, "Control.connect() first"
        return self._comm

    def send(self, dest: int, tag: int, value: object) -> None:
        self._sends.append(self.comm.isend(value, dest=dest, tag=tag))

    def receive(self, source: int, tag: int) -> tuple[bool, Any]:
        """``(True, message)`` if ``source`` sent one, else ``(False, None)``."""
        if self.comm.iprobe(source=source, tag=tag):
            return True, self.comm.recv(source=source, tag=tag)
        return False, None

    def wait_blocking(
        self, source: int, tag: int, timeout: float | None
    ) -> tuple[bool, Any]:
        """Wait for a message from ``source``, for code outside an event loop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found, value = self.receive(source, tag)
            if found:
                return True, value
            if deadline is not None and time.monotonic() >= deadline:
                return False, None
            time.sleep(_POLL_INTERVAL)

    def flush(self, timeout: float) -> None:
        """Wait (bounded) until the messages this rank sent are delivered."""
        from mpi4py import MPI

        deadline = time.monotonic() + timeout
        while self._sends and not MPI.Request.Testall(self._sends):
            if time.monotonic() >= deadline:
                return
            time.sleep(_POLL_INTERVAL)
        self._sends.clear()

    def abort(self, code: int) -> NoReturn:
        """End every rank of the job now (``MPI_Abort``)."""
        for handler in logging.getLogger().handlers + logger.handlers:
            with contextlib.suppress(Exception):
                handler.flush()
        sys.stderr.flush()
        self.world.Abort(code or 1)


class Mailbox:
    """Messages from one rank, as futures by tag, for code in an event loop.

    One task polls for all tags, so an idle rank wakes up once per poll
    interval however many messages it waits for.
    """

    def __init__(self, control: Control, source: int) -> None:
        self.control = control
        self.source = source
        self._futures: dict[int, asyncio.Future[Any]] = {}
        self._task = asyncio.ensure_future(self._poll())

    def future(self, tag: int) -> asyncio.Future[Any]:
        """Resolves to the first message with ``tag``."""
        if tag not in self._futures:
            self._futures[tag] = asyncio.get_running_loop().create_future()
        return self._futures[tag]

    async def _poll(self) -> None:
        from mpi4py import MPI

        comm = self.control.comm
        status = MPI.Status()
        while True:
            while comm.iprobe(source=self.source, tag=MPI.ANY_TAG, status=status):
                tag = status.Get_tag()
                value = comm.recv(source=self.source, tag=tag)
                future = self.future(tag)
                if not future.done():
                    future.set_result(value)
            await asyncio.sleep(_POLL_INTERVAL)

    def close(self) -> None:
        self._task.cancel()


# -- public API ----------------------------------------------------------------------


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
    exits with the script's status (see the module documentation).

    Parameters
    ----------
    interface
        network interface for the scheduler and workers, e.g. ``"ib0"``.
    nthreads
        threads per worker.
    local_directory
        directory for the workers' scratch files (dask's default when ``None``).
    memory_limit
        bytes per worker before spilling, as for :class:`distributed.Worker`.
    nanny
        run each worker under a :class:`distributed.Nanny` (which restarts it).
    dashboard, dashboard_address
        whether and where the scheduler serves its dashboard.
    protocol
        the comm protocol, e.g. ``"tcp://"`` or ``"ucx://"``.
    worker_class
        the worker class or its import path.
    worker_options
        further keyword arguments of the worker (or nanny) class.
    comm
        the communicator to use (default ``MPI.COMM_WORLD``).
    exit
        end the scheduler and worker ranks with ``sys.exit(code)`` when the
        cluster closes; with ``False`` they return ``False`` instead.
    scheduler_file
        also write the scheduler's address to this file.
    scheduler_port
        port of the scheduler (0: any free port).
    log_level
        level of the ``distributed`` loggers on every rank; ``None`` keeps
        dask's logging configuration (``"info"`` shows dask's usual messages).
    failure_timeout
        seconds a rank waits for a peer that went away before it ends the job.
    shutdown_timeout
        seconds the whole shutdown may take before the job is ended.

    Returns
    -------
    bool
        ``True`` on the client rank; ``False`` on the others when ``exit=False``.

    Raises
    ------
    WorldTooSmallError
        with fewer than three ranks.
    """
    options = check_options(
        ClusterOptions(
            interface=interface,
            nthreads=nthreads,
            local_directory=local_directory,
            memory_limit=memory_limit,
            nanny=nanny,
            dashboard=dashboard,
            dashboard_address=dashboard_address,
            protocol=protocol,
            worker_class=worker_class,
            worker_options=dict(worker_options or {}),
            scheduler_file=scheduler_file,
            scheduler_port=scheduler_port,
            log_level=log_level,
            failure_timeout=failure_timeout,
            shutdown_timeout=shutdown_timeout,
        )
    )
    if _in_worker_subprocess():
        # A nanny's worker process re-imports the main script: it must not join.
        return False
    if _client_launcher is not None:
        # the script runs under `hpcdask-mpi run` (or called this twice): this is
        # the client rank of a cluster that is already up
        return True
    launcher = _Launcher(options, comm, with_client=True)
    if launcher.rank == Roles.CLIENT:
        launcher.start_client()
        atexit.register(launcher.finish_client_at_exit)
        return True
    code = launcher.serve()
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
    cluster_options = check_options(ClusterOptions(**options))
    launcher = _Launcher(cluster_options, comm, with_client=True)
    if launcher.rank == Roles.CLIENT:
        launcher.start_client()
        code = call_as_script(function, *args)
        code = launcher.finish_client(code)
    else:
        code = launcher.serve()
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
    cluster_options = check_options(ClusterOptions(**options))
    return _Launcher(cluster_options, comm, with_client=False).serve()


def call_as_script(function: Callable[..., object], *args: object) -> int:
    """Call ``function`` as Python runs a script: the exit code it would have.

    Only the frames of the function and below appear in a traceback.
    """
    try:
        result = function(*args)
    except SystemExit as e:
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
        return exit_code_of(e)
    except BaseException as e:  # the script's own failure: report it like Python
        print_user_traceback(e)
        return 1
    if isinstance(result, int) and not isinstance(result, bool):
        return result & 0xFF
    return 0


def _launcher_files() -> frozenset[str]:
    """Files whose frames are the launcher's, not the user's, atop a traceback."""
    import runpy

    here = os.path.dirname(os.path.abspath(__file__))
    return frozenset(
        {
            os.path.join(here, "mpi.py"),
            os.path.join(here, "mpi_cli.py"),
            os.path.abspath(runpy.__file__),
            "<frozen runpy>",
        }
    )


def print_user_traceback(exc: BaseException) -> None:
    """Print ``exc`` as Python would, without the launcher's frames on top."""
    tb: TracebackType | None = exc.__traceback__
    skip = _launcher_files()
    while tb is not None and (
        os.path.abspath(tb.tb_frame.f_code.co_filename) in skip
        or tb.tb_frame.f_code.co_filename in skip
    ):
        tb = tb.tb_next
    sys.stderr.flush()
    traceback.print_exception(type(exc), exc, tb, file=sys.stderr)
    sys.stderr.flush()


# -- the launcher --------------------------------------------------------------------


def _in_worker_subprocess() -> bool:
    """Whether this is a process multiprocessing started (a nanny's worker)."""
    import multiprocessing

    return multiprocessing.parent_process() is not None


def _set_log_level(level: str | None) -> None:
    if not logger.handlers and not logging.getLogger().handlers:
        # the launcher's own messages look like dask's
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s")
        )
        logger.addHandler(handler)
        logger.propagate = False
    if level is None:
        return
    logging.getLogger("distributed").setLevel(level.upper())
    # a nanny's worker process configures logging from dask config at import
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", level.lower())


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Keep multiprocessing from re-running the main script in new processes.

    A nanny starts its worker with the ``spawn`` method, which imports the
    parent's main module again; that module is the user's script, which must run
    on the client rank only.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved: dict[str, Any] = {
        k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__
    }
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


#: the launcher of this process when it is the client rank of a running cluster
_client_launcher: _Launcher | None = None


class _Launcher:
    """One rank's part: start its role, take part in the shutdown, exit code."""

    def __init__(
        self, options: ClusterOptions, comm: Intracomm | None, with_client: bool
    ) -> None:
        from mpi4py import MPI

        world = comm if comm is not None else MPI.COMM_WORLD
        self.roles = Roles(world.Get_size(), with_client=with_client)
        self.options = options
        _set_log_level(options.log_level)
        self.control = Control(world)
        self.rank = self.control.rank
        self._finished = False
        self._script_failed = False

    # -- every rank but the client ----------------------------------------------------

    def serve(self) -> int:
        """Run this rank's scheduler or worker until the cluster closes.

        Any failure here ends the whole job: a rank that exits on its own would
        leave the others waiting for it in ``MPI_Finalize``.
        """
        try:
            if self.rank == Roles.SCHEDULER:
                return asyncio.run(self._run_scheduler())
            address = self._receive_address()
            with _main_module_hidden():
                code = asyncio.run(self._run_worker(address))
            self.control.flush(self.options.failure_timeout)
            return code
        except BaseException:
            logger.exception(
                "the %s on MPI rank %d failed; ending the MPI job",
                self.roles.role(self.rank),
                self.rank,
            )
            self.control.abort(1)

    def _receive_address(self) -> str:
        """The scheduler's address from rank 0; then the private communicator."""
        control = self.control
        message: dict[str, str] = control.world.bcast(None, root=Roles.SCHEDULER)
        if "error" in message:
            # rank 0 has reported it and is ending the job
            control.abort(1)
        control.connect()
        return message["address"]

    async def _run_scheduler(self) -> int:
        from distributed import Scheduler

        options = self.options
        control = self.control
        try:
            scheduler = await Scheduler(**options.scheduler_kwargs())
        except Exception as e:
            # release the other ranks from the broadcast before ending the job
            control.world.bcast({"error": repr(e)}, root=Roles.SCHEDULER)
            raise
        scheduler.add_plugin(_ShutdownPlugin(scheduler, control, self.roles, options))
        await scheduler.register_worker_plugin(
            None, pickle.dumps(_QuietClose()), _QuietClose.name, idempotent=True
        )
        control.world.bcast({"address": scheduler.address}, root=Roles.SCHEDULER)
        control.connect()

        code = 0
        client = self.roles.client
        if client is not None:
            mailbox = Mailbox(control, client)
            done = mailbox.future(_TAG_DONE)
            closed = asyncio.ensure_future(scheduler.finished())
            # The script may shut the scheduler down itself and still run on.
            await asyncio.wait({done, closed}, return_when=asyncio.FIRST_COMPLETED)
            code = int(await done)
            mailbox.close()
            closed.cancel()
            await scheduler.close(reason="hpcdask-mpi: the client script ended")
        else:
            await scheduler.finished()
        for rank in range(1, self.roles.size):
            control.send(rank, _TAG_EXIT, code)
        control.flush(options.failure_timeout)
        return code

    async def _run_worker(self, address: str) -> int:
        options = self.options
        control = self.control
        cls, kwargs = options.worker_spec(self.rank)
        mailbox = Mailbox(control, Roles.SCHEDULER)
        stop = mailbox.future(_TAG_STOP)
        exit_ = mailbox.future(_TAG_EXIT)
        try:
            try:
                worker = await cls(address, **kwargs)
            except Exception:
                if stop.done():  # the cluster closed while this worker started
                    return await self._exit_code(exit_)
                logger.exception("the worker on MPI rank %d failed to start", self.rank)
                control.abort(1)

            finished = asyncio.ensure_future(worker.finished())
            await asyncio.wait(
                {finished, stop, exit_}, return_when=asyncio.FIRST_COMPLETED
            )
            if not finished.done():
                # STOP (or EXIT): this rank closes its own worker
                await self._close_worker(worker, finished)
            elif not stop.done():
                # Left without a STOP: give a STOP in flight a moment to arrive.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(
                        asyncio.shield(stop), options.failure_timeout
                    )
                if not stop.done():
                    logger.error(
                        "the worker on MPI rank %d closed before the cluster shut "
                        "down (lost its scheduler?); ending the MPI job",
                        self.rank,
                    )
                    control.abort(1)
            return await self._exit_code(exit_)
        finally:
            mailbox.close()

    async def _close_worker(self, worker: Any, finished: asyncio.Future[Any]) -> None:
        """Close this rank's worker (or nanny) the way its owner should.

        A nanny is closed through itself, so it stops its worker process with a
        message rather than the process closing under it; a worker closed from
        the scheduler's side would race with its nanny's stop-queue thread.
        """
        timeout = self.options.shutdown_timeout / 2
        await asyncio.wait_for(
            worker.close(timeout=timeout, reason="hpcdask-mpi-shutdown"),
            self.options.shutdown_timeout,
        )
        await asyncio.wait_for(finished, self.options.shutdown_timeout)

    async def _exit_code(self, exit_: asyncio.Future[Any]) -> int:
        try:
            code = await asyncio.wait_for(
                asyncio.shield(exit_), self.options.shutdown_timeout
            )
        except asyncio.TimeoutError:
            logger.error(
                "rank %d: the scheduler did not finish the shutdown within %gs; "
                "ending the MPI job",
                self.rank,
                self.options.shutdown_timeout,
            )
            self.control.abort(1)
        return int(code)

    # -- the client rank --------------------------------------------------------------

    def start_client(self) -> None:
        """Point ``distributed.Client()`` at the scheduler."""
        import dask.config

        global _client_launcher
        _client_launcher = self
        address = self._receive_address()
        dask.config.set({"scheduler-address": address})
        previous = sys.excepthook

        def note_failure(
            kind: type[BaseException],
            value: BaseException,
            tb: TracebackType | None,
        ) -> None:
            self._script_failed = True
            previous(kind, value, tb)

        sys.excepthook = note_failure

    def finish_client_at_exit(self) -> None:
        """The ``atexit`` end of a script that called :func:`initialize`."""
        if not self._finished:
            self.finish_client(1 if self._script_failed else 0)

    def finish_client(self, code: int) -> int:
        """Close the script's clients, shut the cluster down, return ``code``."""
        if self._finished:
            return code
        self._finished = True
        _close_clients(self.options.shutdown_timeout)
        control = self.control
        control.send(Roles.SCHEDULER, _TAG_DONE, code)
        got, final = control.wait_blocking(
            Roles.SCHEDULER, _TAG_EXIT, self.options.shutdown_timeout
        )
        if not got:
            logger.error(
                "the cluster did not shut down within %gs; ending the MPI job",
                self.options.shutdown_timeout,
            )
            control.abort(code or 1)
        control.flush(self.options.failure_timeout)
        return int(final)


def _close_clients(timeout: float) -> None:
    """Close the clients the script left open, before their scheduler goes."""
    if "distributed.client" not in sys.modules:
        return
    from distributed import Client

    clients: list[Any] = list(Client._instances)
    for client in clients:
        if client.status in ("closed", "closing") or client.asynchronous:
            continue
        try:
            client.close(timeout=timeout)
        except Exception as e:
            logger.warning("could not close %s before shutdown: %r", client, e)


class _ShutdownPlugin(SchedulerPlugin):
    """Scheduler-side part: close workers before the scheduler, watch worker ranks."""

    name = "hpcdask-mpi"

    def __init__(
        self,
        scheduler: Scheduler,
        control: Control,
        roles: Roles,
        options: ClusterOptions,
    ) -> None:
        self.scheduler = scheduler
        self.control = control
        self.roles = roles
        self.options = options
        self.watch = RankWatch(options.failure_timeout)
        self.closing = False
        self._ranks: dict[str, int] = {}

    def add_worker(self, scheduler: Scheduler, worker: str) -> None:
        ws = scheduler.workers.get(worker)
        rank = rank_of(ws.name) if ws is not None else None
        if rank is not None and rank in self.roles.workers:
            self._ranks[worker] = rank
            self.watch.joined(rank)

    def remove_worker(self, scheduler: Scheduler, worker: str, **kwargs: Any) -> None:
        rank = self._ranks.pop(worker, None)
        if rank is None or self.closing:
            return
        self.watch.left(rank, time.monotonic())
        asyncio.get_running_loop().call_later(
            self.options.failure_timeout + _POLL_INTERVAL, self._check_lost
        )

    def _check_lost(self) -> None:
        lost = self.watch.overdue(time.monotonic())
        if lost and not self.closing:
            logger.error(
                "the worker(s) on MPI rank(s) %s left the scheduler and did not "
                "come back within %gs; ending the MPI job",
                ", ".join(map(str, lost)),
                self.options.failure_timeout,
            )
            self.control.abort(1)

    async def before_close(self) -> None:
        """Quiesce the workers, have their ranks close them, wait until all left.

        Each worker rank closes its own worker (or nanny) when it gets STOP;
        workers that no rank owns (connected from elsewhere) are asked by the
        scheduler.
        """
        self.closing = True
        scheduler = self.scheduler
        addresses = list(scheduler.workers)
        # no heartbeat may be on its way when a worker closes its connections
        await asyncio.gather(*(self._quiesce(a) for a in addresses))
        for rank in self.roles.workers:
            self.control.send(rank, _TAG_STOP, None)
        for address in addresses:
            if address not in self._ranks:
                scheduler.close_worker(address)
        timeout = self.options.shutdown_timeout / 2
        deadline = time.monotonic() + timeout
        while scheduler.workers and time.monotonic() < deadline:
            await asyncio.sleep(_POLL_INTERVAL)
        if scheduler.workers:
            logger.warning(
                "%d worker(s) did not close within %gs; closing the scheduler anyway",
                len(scheduler.workers),
                timeout,
            )

    async def _quiesce(self, address: str) -> None:
        rpc: Any = self.scheduler.rpc(address)
        try:
            await asyncio.wait_for(
                rpc.hpcdask_mpi_quiesce(), self.options.shutdown_timeout / 4
            )
        except Exception as e:  # the worker will be closed all the same
            logger.warning(
                "could not quiesce worker %s before closing it: %r", address, e
            )


class _QuietClose(WorkerPlugin):
    """Worker-side: stop calling the scheduler before the worker is closed.

    A worker closing its connections while a heartbeat is on its way logs
    "Failed to communicate with scheduler during heartbeat" with a traceback, a
    race of :meth:`distributed.Worker.close`. The scheduler rank first asks each
    worker to stop its heartbeats and waits for the last one, so nothing is in
    flight when the worker closes.
    """

    name = "hpcdask-mpi-quiet-close"

    def setup(self, worker: Worker) -> None:
        self.worker = worker
        self.in_flight: set[asyncio.Future[Any]] = set()
        heartbeat: Any = worker.periodic_callbacks.get("heartbeat")
        if heartbeat is not None:
            beat = heartbeat.callback

            async def tracked_heartbeat() -> None:
                task = asyncio.ensure_future(beat())
                self.in_flight.add(task)
                try:
                    await task
                finally:
                    self.in_flight.discard(task)

            heartbeat.callback = tracked_heartbeat
        worker.handlers["hpcdask_mpi_quiesce"] = self.quiesce

    async def quiesce(self) -> str:
        """Stop the periodic calls to the scheduler; wait for one in flight."""
        for name in ("heartbeat", "keep-alive"):
            callback: Any = self.worker.periodic_callbacks.get(name)
            if callback is not None:
                callback.stop()
        if self.in_flight:
            await asyncio.wait(set(self.in_flight))
        return "OK"
