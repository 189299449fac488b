"""Cluster classes: a Dask scheduler here, Dask workers in batch jobs.

This module is wiring: options come resolved from :mod:`hpcdask.config`, scripts
from :mod:`hpcdask.script`, queue I/O from :mod:`hpcdask.jobs`. The job table, not
the scheduler, is the truth about which jobs exist: a job that ends while wanted
is replaced, a job that ends before its workers connect is a failed start that is
reported (and not resubmitted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Iterable
from typing import Any, ClassVar, TypeVar

import dask.config
from dask.utils import parse_bytes
from distributed.comm.addressing import get_address_host
from distributed.core import Status
from distributed.deploy.spec import ProcessInterface, SpecCluster
from distributed.exceptions import WorkerStartTimeoutError
from distributed.scheduler import Scheduler
from distributed.security import Security
from distributed.utils import NoOpAwaitable
from tornado.ioloop import IOLoop

from hpcdask.adaptive import AdaptiveJobs
from hpcdask.config import JobOptions, cluster_setting, resolve_job_options
from hpcdask.cost import Usage, job_resources, measure_usage
from hpcdask.dashboard import HPCDashboard
from hpcdask.errors import JobFailedError
from hpcdask.jobs import Backend, CommandBackend, JobTable, wait_until_ended
from hpcdask.models import JobRecord
from hpcdask.policy import PolicyParams
from hpcdask.profiles import load_profile
from hpcdask.runner import SubprocessRunner
from hpcdask.script import render_job_script, worker_lifetime
from hpcdask.security import (
    CredentialFiles,
    credentials_directory,
    resolve_security,
    secure_job_options,
    worker_security_args,
)
from hpcdask.systems.local import LocalBackend
from hpcdask.systems.pbs import PBS
from hpcdask.systems.slurm import Slurm
from hpcdask.validation import check_seconds
from hpcdask.widget import (
    cluster_view,
    cluster_widget,
    dashboard_link_for,
    hpc_page_link,
    render_html,
)

logger = logging.getLogger(__name__)

_Cluster = TypeVar("_Cluster", bound="HPCCluster")

__all__ = ["HPCCluster", "LocalBatchCluster", "PBSCluster", "SLURMCluster"]


def make_backend(opts: JobOptions) -> Backend:
    """The backend for ``opts.system``; no I/O happens here."""
    if opts.system == "slurm":
        return CommandBackend(Slurm(), SubprocessRunner())
    if opts.system == "pbs":
        return CommandBackend(PBS(), SubprocessRunner())
    return LocalBackend(walltime=opts.walltime)


class SchedulerNoise(logging.Filter):
    """Drops two scheduler log records that say nothing is wrong:

    - the warning about a heartbeat from a worker that this cluster has just
      retired and whose job it cancelled (its last heartbeat was on its way);
    - the traceback of a cancelled worker stream while the cluster closes (a
      cancelled job's worker may still be exiting when the scheduler stops).

    Everything else passes, other workers' warnings included.
    """

    HEARTBEAT = "Received heartbeat from unregistered worker"

    def __init__(self, keep_for: float = 60.0) -> None:
        super().__init__()
        self.keep_for = keep_for
        self.closing = False
        self._retired: dict[str, float] = {}  # address -> when retired

    def add(self, addresses: Iterable[str]) -> None:
        now = time.monotonic()
        self._retired = {
            a: t for a, t in self._retired.items() if now - t < self.keep_for
        }
        self._retired.update(dict.fromkeys(addresses, now))

    def filter(self, record: logging.LogRecord) -> bool:
        if self.closing and record.exc_info:
            return not isinstance(record.exc_info[1], asyncio.CancelledError)
        if not self._retired or not str(record.msg).startswith(self.HEARTBEAT):
            return True
        message = record.getMessage()
        return not any(f"'{address}'" in message for address in self._retired)


class BatchJob(ProcessInterface):
    """SpecCluster's handle on one batch job; the job table does the queue I/O."""

    def __init__(self, record: JobRecord) -> None:
        super().__init__()
        self.record = record
        self.name = record.name
        self.status = Status.running

    def __repr__(self) -> str:
        record = self.record
        return f"<BatchJob {self.name} job_id={record.job_id} {record.state.value}>"


class HPCCluster(SpecCluster):
    """A Dask cluster whose workers run in batch jobs.

    Takes dask-jobqueue's arguments with the same meaning (``cores``, ``memory``,
    ``processes``, ``walltime``, ``queue``, ``account``, ``job_extra_directives``,
    ... see :data:`hpcdask.config.DEFAULTS`), read from dask config
    ``hpcdask.<system>.*`` or ``jobqueue.<system>.*`` when not given.

    Parameters
    ----------
    system
        ``"slurm"``, ``"pbs"`` or ``"local"`` (set by the subclasses).
    n_workers
        workers to start with (rounded up to whole jobs).
    security
        TLS is on by default: ``None`` (config ``hpcdask.security``, default
        true) or ``True`` make a self-signed certificate for this cluster alone;
        a :class:`distributed.security.Security` is used as given; ``False``
        turns TLS off, with a logged warning. See :mod:`hpcdask.security`.
    asynchronous, loop
        as for every Dask cluster.
    shared_temp_directory
        where in-memory TLS credentials are written for the workers, on a file
        system the jobs see (default: ``security/`` beside the log directory).
    **job_kwargs
        job options, see :func:`hpcdask.config.resolve_job_options`; among them
        ``shared_temp_directory``, where the workers' TLS files are written
        (default: ``security/`` beside the log directory).
    """

    system: ClassVar[str] = ""

    def __init__(
        self,
        *,
        system: str | None = None,
        n_workers: int = 0,
        security: Security | bool | None = None,
        asynchronous: bool = False,
        loop: Any = None,
        **job_kwargs: Any,
    ) -> None:
        system = system or self.system
        opts = resolve_job_options(system, **job_kwargs)
        security = resolve_security(security)
        self.job_options = opts = secure_job_options(opts, security)
        self.backend = make_backend(opts)
        self.table = JobTable(self.backend, opts)
        self.poll_interval = check_seconds(
            "poll-interval", cluster_setting("poll-interval", "5s")
        )
        self._failures: list[JobFailedError] = []
        #: records of the jobs that ended before their workers connected
        self.failed_records: list[JobRecord] = []
        #: jobs being retired or cancelled by adaptive scaling
        self.retiring: set[str] = set()
        #: where workers start: this process's directory, as with dask-jobqueue
        #: (jobs are submitted from the log directory, where the batch system
        #: writes its own files)
        self.workdir = os.getcwd()
        self._adaptive: AdaptiveJobs | None = None
        self._failures_reported = 0  # how many _wait_for_workers has raised
        self._initial_jobs = math.ceil(n_workers / opts.processes) if n_workers else 0
        self._poll_task: asyncio.Task[None] | None = None
        #: the workers' TLS arguments and the private files they name
        self.credentials = (
            worker_security_args(security, credentials_directory(opts))
            if security is not None
            else CredentialFiles([], None)
        )

        scheduler_options: dict[str, Any] = {
            "dashboard_address": ":8787",
            "protocol": opts.protocol,
            "security": security,
        }
        if opts.interface:
            scheduler_options["interface"] = opts.interface
        scheduler_options.update(opts.scheduler_options)
        # the dashboard's /hpc page and its history (hpcdask.dashboard)
        self._dashboard = HPCDashboard(self, scheduler_options.get("http_prefix"))
        self._scheduler_noise = SchedulerNoise()
        logging.getLogger("distributed.scheduler").addFilter(self._scheduler_noise)
        scheduler_options["plugins"] = [
            *scheduler_options.get("plugins", ()),
            self._dashboard,
        ]
        worker_template: dict[str, Any] = {"cls": BatchJob, "options": {}}
        if opts.processes > 1:
            worker_template["group"] = [f"-{i}" for i in range(opts.processes)]
        try:
            super().__init__(
                scheduler={"cls": Scheduler, "options": scheduler_options},
                worker=worker_template,
                asynchronous=asynchronous,
                loop=loop,
                security=security,
                name=opts.name,
            )
        except BaseException:
            self.credentials.remove()
            raise

    # -- what users call --------------------------------------------------------

    def job_script(self) -> str:
        """The script the next job would be submitted with."""
        return self._render([self._next_job_name()])

    def jobs(self) -> Any:
        """The cluster's jobs as a pandas DataFrame, like ``squeue`` for it."""
        return self.table.frame()

    @property
    def failures(self) -> list[JobFailedError]:
        """Jobs that ended before their workers connected, oldest first."""
        return list(self._failures)

    def usage(self, now: float | None = None) -> Usage:
        """What the cluster's jobs have been charged so far, and the burn rate.

        Each job is charged from the start time the queue reported to its end
        time, or to ``now`` while it runs, for the cores, nodes and GPUs its
        directives ask for; jobs that never started cost nothing.

        Parameters
        ----------
        now
            POSIX time to charge running jobs up to; the current time if omitted.

        Returns
        -------
        hpcdask.cost.Usage
            ``core_hours``, ``node_hours``, ``gpu_hours``, the resources running
            jobs hold now (``cores_in_use``, the burn rate in core-hours per
            hour) and a charge per job.
        """
        records = list(self.table.records.values())
        resources = job_resources(self.job_options, self.backend.system)
        return measure_usage(records, resources, time.time() if now is None else now)

    @classmethod
    def from_profile(cls: type[_Cluster], name: str, **kwargs: Any) -> _Cluster:
        """A cluster from the site profile ``hpcdask.profiles.<name>`` in dask config.

        ``HPCCluster.from_profile`` picks the class from the profile's ``system``;
        ``SLURMCluster.from_profile`` refuses a profile for another system.

        Parameters
        ----------
        name
            the profile's name (``hpcdask profiles`` lists them).
        **kwargs
            constructor arguments that override the profile's values.

        Raises
        ------
        hpcdask.InvalidOptionError
            for an unknown profile, or a profile with an unknown key or system.
        """
        profile = load_profile(name)
        system = profile.system_for(cls.system)
        target = cls if cls.system else _CLUSTER_CLASSES[system]
        cluster = target(**profile.cluster_kwargs(**kwargs))
        assert isinstance(cluster, cls)
        return cluster

    @property
    def dashboard_link(self) -> str:
        """The dashboard's address as the user's browser reaches it.

        Formatted from ``distributed.dashboard.link``; in a JupyterHub session
        (``JUPYTERHUB_SERVICE_PREFIX`` set) the default link is replaced by
        jupyter-server-proxy's ``{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status``.
        """
        try:
            port = self.scheduler_info["services"]["dashboard"]
            host = get_address_host(self.scheduler_address)
        except (KeyError, ValueError):  # not started, or not connected yet
            return ""
        return dashboard_link_for(host, port)

    @property
    def hpc_dashboard_link(self) -> str:
        """The link to the dashboard's hpcdask page (jobs, workers and
        core-hours over time)."""
        return hpc_page_link(self.dashboard_link)

    def _repr_html_(self, cluster_status: Any = None) -> str:
        return render_html(cluster_view(self))

    def _widget(self) -> Any:
        """A live ipywidgets view (None without ipywidgets); see hpcdask.widget."""
        try:
            return self._cached_widget
        except AttributeError:
            self._cached_widget = cluster_widget(self)
            return self._cached_widget

    def scale(
        self,
        n: int | None = None,
        memory: str | int | None = None,
        cores: int | None = None,
        *,
        jobs: int = 0,
    ) -> Any:
        """Ask for ``n`` workers, ``jobs`` jobs, or enough for ``cores``/``memory``.

        Whole jobs only: with ``processes=4``, ``scale(6)`` asks for two jobs.
        Called from a user's thread, it waits until the jobs are submitted and
        raises the queue's error if a submission is refused.
        """
        opts = self.job_options
        wanted = jobs
        if n is not None:
            wanted = max(wanted, math.ceil(n / opts.processes))
        if memory is not None:
            wanted = max(wanted, math.ceil(parse_bytes(memory) / opts.memory))
        if cores is not None:
            wanted = max(wanted, math.ceil(cores / opts.cores))
        if self._adaptive is not None and self.status == Status.running:
            logger.info("scale() called: adaptive scaling stops")
            self._io_loop.add_callback(self._adaptive.stop)
            self._adaptive = None
        self._set_target_jobs(wanted)
        if self.asynchronous:
            return self._correct_state()
        if self.called_from_running_loop or self.status != Status.running:
            self._io_loop.add_callback(self._correct_state)
            return NoOpAwaitable()
        return self.sync(self._correct_state)

    def adapt(  # type: ignore[override]
        self,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
        minimum_jobs: int | None = None,
        maximum_jobs: int | None = None,
        minimum_cores: int | None = None,
        maximum_cores: int | None = None,
        minimum_memory: str | int | None = None,
        maximum_memory: str | int | None = None,
        interval: str | float = "1s",
        idle_timeout: str | float | None = None,
        max_pending_jobs: int | None = None,
        target_duration: str | float | None = None,
        wait_count: int | None = None,
        **kwargs: Any,
    ) -> AdaptiveJobs:
        """Scale with the scheduler's load, in whole jobs, aware of the queue.

        Bounds may be given in workers (``minimum``/``maximum``), jobs, cores or
        memory, as dask-jobqueue accepts; each is rounded to whole jobs and the
        tightest applies. See :mod:`hpcdask.policy` for the rules.

        Parameters
        ----------
        interval
            time between decisions.
        idle_timeout
            how long all of a job's workers must be idle before it is given back
            (config ``hpcdask.adaptive.idle-timeout``).
        max_pending_jobs
            the most jobs waiting in the queue at once
            (config ``hpcdask.adaptive.max-pending-jobs``).
        target_duration
            the shortest time the scheduler's backlog is sized to finish in
            (``distributed.adaptive.target-duration``); it grows to twice the
            observed time a new job takes to bring a worker.
        wait_count
            as for distributed's ``Adaptive``: a surplus must last this many
            intervals before queued jobs are cancelled (default: 2 s worth).
        """
        if kwargs:
            raise TypeError(f"unexpected argument(s): {', '.join(sorted(kwargs))}")
        opts = self.job_options
        lows = [minimum_jobs or 0]
        highs = [maximum_jobs if maximum_jobs is not None else 2**31]
        if minimum is not None:
            lows.append(math.ceil(minimum / opts.processes))
        if maximum is not None:
            highs.append(maximum // opts.processes)
        if minimum_cores is not None:
            lows.append(math.ceil(minimum_cores / opts.cores))
        if maximum_cores is not None:
            highs.append(maximum_cores // opts.cores)
        if minimum_memory is not None:
            lows.append(math.ceil(parse_bytes(minimum_memory) / opts.memory))
        if maximum_memory is not None:
            highs.append(parse_bytes(maximum_memory) // opts.memory)
        walltime = opts.walltime
        margin = walltime - worker_lifetime(walltime)
        params = PolicyParams(
            minimum_jobs=max(lows),
            maximum_jobs=min(highs),
            workers_per_job=opts.processes,
            max_pending_jobs=max_pending_jobs
            if max_pending_jobs is not None
            else cluster_setting("adaptive.max-pending-jobs", 100),
            idle_timeout=check_seconds(
                "idle_timeout",
                idle_timeout
                if idle_timeout is not None
                else cluster_setting("adaptive.idle-timeout", "3s"),
            ),
            # replacements start this long before a worker's lifetime ends
            scale_down_delay=(
                2.0
                if wait_count is None
                else wait_count * check_seconds("interval", interval)
            ),
            replace_ahead=margin + cluster_setting("adaptive.startup-allowance", 15),
            lifetime_margin=margin,
        )
        if self._adaptive is not None:
            self._io_loop.add_callback(self._adaptive.stop)
        self._adaptive = AdaptiveJobs(
            self,
            params,
            check_seconds("interval", interval),
            check_seconds(
                "target_duration",
                target_duration
                if target_duration is not None
                else dask.config.get("distributed.adaptive.target-duration", "5s"),
            ),
        )
        self._io_loop.add_callback(self._adaptive.start)
        return self._adaptive

    async def sync_jobs(self) -> None:
        """Submit and cancel until the queue holds the jobs of the worker spec."""
        await self._correct_state()

    async def scale_down(self, workers: Any) -> None:
        """Remove the jobs of ``workers`` (names or addresses), whole jobs only."""
        info = self.scheduler_info.get("workers", {})
        names = {str(info[w]["name"]) if w in info else str(w) for w in workers}
        for name in names:
            record = self.table.job_of_worker(name)
            job_name = record.name if record else name
            self.worker_spec.pop(job_name, None)
        await self._correct_state()

    # -- SpecCluster hooks ----------------------------------------------------------

    @property
    def _io_loop(self) -> IOLoop:
        loop = self.loop
        assert loop is not None, "cluster has no event loop"
        return loop

    @property
    def _scheduler_rpc(self) -> Any:
        assert self.scheduler_comm is not None, "cluster has not started"
        return self.scheduler_comm

    def _new_worker_name(self, worker_number: int) -> str:
        return f"{self._name}-{worker_number}"

    def _next_job_name(self) -> str:
        """The next job name never used by this cluster (names are not reused:
        a replacement's workers must not collide with a dying job's)."""
        while (name := self._new_worker_name(self._i)) in self.worker_spec or (
            name in self.table.records
        ):
            self._i += 1
        return name

    def new_worker_spec(self) -> dict[str, Any]:
        name = self._next_job_name()
        self._i += 1
        return {name: self.new_spec}

    async def _start(self) -> None:
        await super()._start()
        if self._poll_task is None:
            self._poll_task = asyncio.ensure_future(self._poll_loop())
        if self._initial_jobs:
            self._set_target_jobs(self._initial_jobs)
            self._initial_jobs = 0

    def _set_target_jobs(self, wanted: int) -> None:
        """Edit the worker spec to hold ``wanted`` jobs.

        On the way down, jobs without connected workers go first (newest first),
        then the newest running ones.
        """
        names = list(self.worker_spec)
        if len(names) > wanted:

            def has_workers(name: str) -> bool:
                record = self.table.records.get(name)
                return bool(record and record.workers)

            order = [n for n in reversed(names) if not has_workers(n)]
            order += [n for n in reversed(names) if has_workers(n)]
            for name in order[: len(names) - wanted]:
                del self.worker_spec[name]
        if self.status not in (Status.closing, Status.closed):
            while len(self.worker_spec) < wanted:
                self.worker_spec.update(self.new_worker_spec())

    async def _correct_state_internal(self) -> None:
        async with self._lock:
            self._correct_state_waiting = None
            # submit first: new jobs queue while old ones hand their data over
            to_open = [n for n in self.worker_spec if n not in self.workers]
            to_close = [n for n in self.workers if n not in self.worker_spec]
            try:
                if to_open:
                    await self._start_jobs(to_open)
            finally:
                if to_close:
                    await self._stop_jobs(to_close)

    async def _start_jobs(self, names: list[str]) -> None:
        """Submit jobs for ``names``: one job array where the system has them."""
        if self.backend.system.supports_arrays and len(names) > 1:
            batches = [names]
        else:
            batches = [[name] for name in names]
        results = await asyncio.gather(
            *(self.table.submit(batch, self._render(batch)) for batch in batches),
            return_exceptions=True,
        )
        errors: list[BaseException] = []
        for batch, result in zip(batches, results, strict=True):
            if isinstance(result, BaseException):
                for name in batch:
                    self.worker_spec.pop(name, None)
                errors.append(result)
                continue
            for record in result:
                self.workers[record.name] = BatchJob(record)
            ids = ", ".join(r.job_id for r in result)
            logger.info("submitted %d job(s): %s", len(result), ids)
        if errors:
            raise errors[0]

    async def _stop_jobs(self, names: list[str]) -> None:
        records = [self.table.records[n] for n in names if n in self.table.records]
        if self.status == Status.running:
            # hand the workers' data over before their jobs go
            worker_names = [w for r in records for w in r.workers]
            if worker_names and self.scheduler is not None:
                wanted = set(worker_names)
                self._scheduler_noise.add(
                    ws.address
                    for ws in self.scheduler.workers.values()
                    if str(ws.name) in wanted
                )
            if worker_names:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        self._scheduler_rpc.retire_workers(
                            names=worker_names, close_workers=True, remove=True
                        ),
                        timeout=60,
                    )
        await self.table.cancel(records)
        for name in names:
            job = self.workers.pop(name, None)
            if job is not None:
                await job.close()
        if self.status == Status.closing:
            await wait_until_ended(self.table, records, timeout=15)

    def _update_worker_status(self, op: str, msg: Any) -> None:
        # The queue, not the worker list, decides when a job is gone: skip
        # SpecCluster's "close the job when its worker leaves".
        if op == "add":
            for info in msg.get("workers", {}).values():
                self.table.note_worker(str(info.get("name")), connected=True)
        elif op == "remove":
            info = self.scheduler_info.get("workers", {}).get(msg)
            if info is not None:
                self.table.note_worker(str(info.get("name")), connected=False)
        super(SpecCluster, self)._update_worker_status(op, msg)

    async def _close(self) -> None:
        if self._poll_task is not None:
            self._poll_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poll_task
        self._scheduler_noise.closing = True
        try:
            await super()._close()
        finally:
            self.credentials.remove()
            logging.getLogger("distributed.scheduler").removeFilter(
                self._scheduler_noise
            )

    async def _wait_for_workers(
        self, n_workers: int = 0, timeout: float | None = None
    ) -> None:
        """Wait for ``n_workers``; raise at once if a job fails to start."""
        clock = asyncio.get_running_loop().time
        deadline = None if timeout is None else clock() + float(timeout)
        while True:
            if self._failures_reported < len(self._failures):
                failure = self._failures[self._failures_reported]
                self._failures_reported = len(self._failures)
                raise failure
            identity = await self._scheduler_rpc.identity()
            running = sum(
                1
                for w in identity["workers"].values()
                if w.get("status") == Status.running.name
            )
            if running >= n_workers:
                return
            if deadline is not None and clock() > deadline:
                raise WorkerStartTimeoutError(running, n_workers, float(timeout or 0))
            await asyncio.sleep(0.2)

    # -- the poll loop ----------------------------------------------------------------

    async def _poll_loop(self) -> None:
        delay = self.poll_interval
        while self.status in (Status.created, Status.starting, Status.running):
            await asyncio.sleep(delay)
            try:
                await self.poll()
            except Exception:  # keep polling whatever one round did
                logger.exception("polling the queue failed")
            if self.table.controller_error:
                # back off while the controller does not answer (it may be
                # restarting under load): twice the wait each time, at most
                # 8 polls' worth or a minute
                limit = max(self.poll_interval, min(8 * self.poll_interval, 60.0))
                delay = min(2 * delay, limit)
            else:
                delay = self.poll_interval

    async def poll(self) -> None:
        """Ask the queue once about all live jobs and act on jobs that ended."""
        for record in await self.table.poll():
            self._job_ended(record)

    def _job_ended(self, record: JobRecord) -> None:
        if record.cancel_requested:
            return
        job = self.workers.pop(record.name, None)
        if job is not None:
            job.status = Status.closed
        if record.failed_start:
            failure = self.table.failure(record)
            self._failures.append(failure)
            self.failed_records.append(record)
            self.worker_spec.pop(record.name, None)
            logger.error("%s", failure)
            return
        if self._adaptive is not None:
            # adaptive scaling decides whether a replacement is wanted
            self.worker_spec.pop(record.name, None)
            return
        if record.name in self.worker_spec and self.status == Status.running:
            logger.warning(
                "job %s (%s) ended: %s%s; submitting a replacement",
                record.job_id,
                record.name,
                record.state.value,
                f" ({record.reason})" if record.reason else "",
            )
            del self.worker_spec[record.name]
            self.worker_spec.update(self.new_worker_spec())
            self._io_loop.add_callback(self._correct_state)

    # -- rendering ------------------------------------------------------------------

    def _render(self, names: list[str]) -> str:
        scheduler = self.scheduler
        assert scheduler is not None, "cluster has not started"
        address = getattr(scheduler, "contact_address", None) or scheduler.address
        return render_job_script(
            self.job_options,
            self.backend.system,
            address,
            names,
            self.credentials.args,
            workdir=self.workdir,
        )

    def mpi_job_script(
        self,
        script: str,
        *args: str,
        nodes: int = 1,
        ntasks: int | None = None,
        **options: Any,
    ) -> str:
        """The batch script of a non-interactive MPI run of ``script`` with this
        cluster's job options; see :func:`hpcdask.mpi.script.render_mpi_job_script`.
        """
        from hpcdask.mpi.script import render_mpi_job_script

        return render_mpi_job_script(
            self.job_options,
            self.backend.system,
            script,
            args,
            nodes=nodes,
            ntasks=ntasks,
            **options,
        )


class SLURMCluster(HPCCluster):
    """Dask workers in Slurm jobs (``sbatch`` / ``squeue`` / ``scancel``)."""

    system = "slurm"


class PBSCluster(HPCCluster):
    """Dask workers in PBS jobs (``qsub`` / ``qstat`` / ``qdel``); PBS Pro,
    OpenPBS, Torque, and Slurm's Torque-compatible commands."""

    system = "pbs"


class LocalBatchCluster(HPCCluster):
    """The same job scripts run as plain processes here: for laptops and
    machines without a batch system."""

    system = "local"


_CLUSTER_CLASSES: dict[str, type[HPCCluster]] = {
    cls.system: cls for cls in (SLURMCluster, PBSCluster, LocalBatchCluster)
}
