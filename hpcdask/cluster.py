"""Cluster classes: a Dask scheduler here, Dask workers in batch jobs.

This module is wiring, on distributed's ``SpecCluster``: options and settings come
resolved from :mod:`hpcdask.config`, queue I/O goes through the job table
(:mod:`hpcdask.jobs`), the wanted jobs are the fleet's (:mod:`hpcdask.fleet`),
what the scheduler says is read by the probe (:mod:`hpcdask.probe`), adaptive
scaling is a loop (:mod:`hpcdask.adaptive`) over the pure policy, and every
display renders one view (:mod:`hpcdask.view`). The job table, not the
scheduler, is the truth about which jobs exist: a job that ends while wanted is
replaced, a job that ends before its workers connect is a failed start that is
reported (and not resubmitted).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from distributed.scheduler import Scheduler
from distributed.security import Security
from tornado.ioloop import IOLoop

from hpcdask.adaptive import AdaptiveJobs
from hpcdask.compat import DEPRECATION, DummyJob
from hpcdask.config import (
    AdaptArguments,
    cluster_settings,
    resolve_job_options,
    scheduler_job_config,
)
from hpcdask.dashboard import HPCDashboard
from hpcdask.deploy import JobSpecCluster
from hpcdask.errors import InvalidOptionError
from hpcdask.handle import ClusterHandle
from hpcdask.jobmode import resolve_scheduler_in
from hpcdask.manager import JobManager
from hpcdask.noise import LOGGERS
from hpcdask.pools import (
    check_pool_name,
    checked_pools,
    pool_key,
    pool_options,
    pool_settings,
)
from hpcdask.profiles import load_profile
from hpcdask.schedulerargs import scheduler_options
from hpcdask.security import (
    CredentialFiles,
    credentials_directory,
    resolve_security,
    secure_job_options,
    worker_security_args,
)
from hpcdask.view import (
    dashboard_host,
)

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from typing_extensions import Unpack

_Cluster = TypeVar("_Cluster", bound="HPCCluster")

__all__ = [
    "CLUSTER_CLASSES",
    "HPCCluster",
    "LocalBatchCluster",
    "PBSCluster",
    "SGECluster",
    "SLURMCluster",
]


class HPCCluster(JobSpecCluster):
    """A Dask cluster whose workers run in batch jobs.

    Takes dask-jobqueue's arguments with the same meaning (``cores``, ``memory``,
    ``processes``, ``walltime``, ``queue``, ``account``, ``job_extra_directives``,
    ... see :data:`hpcdask.options.DEFAULTS`), read from dask config
    ``hpcdask.<system>.*`` or ``jobqueue.<system>.*`` when not given.

    Parameters
    ----------
    system
        ``"slurm"``, ``"pbs"``, ``"sge"`` or ``"local"`` (set by the subclasses).
    n_workers
        workers to start with (rounded up to whole jobs).
    scheduler_in
        ``"here"`` (default, config ``hpcdask.scheduler-in``): the scheduler
        runs in this process; ``"job"``: in a batch job of its own that
        outlives it, and the call returns a :class:`~hpcdask.handle.ClusterHandle`
        (``scheduler_job`` and ``cluster_name`` then apply: docs/long-lived.md).
    security
        TLS is on by default: ``None`` (config ``hpcdask.security``, default
        true) or ``True`` make a self-signed certificate for this cluster alone;
        a :class:`distributed.security.Security` is used as given; ``False``
        turns TLS off, with a logged warning. See :mod:`hpcdask.security`.
    asynchronous, loop
        as for every Dask cluster.
    pools
        more worker pools, by name: each a mapping of job options, as for
        :meth:`add_pool`.
    **job_kwargs
        job options, see :func:`hpcdask.config.resolve_job_options`; among them
        ``shared_temp_directory``, where the workers' TLS files are written
        (default: ``security/`` beside the log directory).
    """

    system: ClassVar[str] = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> HPCCluster:
        where = resolve_scheduler_in(
            kwargs.get("scheduler_in"), scheduler_job_config()[0]
        )
        if where == "job":  # not an HPCCluster: a handle on one in a job
            return ClusterHandle.launching(cls.system, kwargs)  # type: ignore[return-value]
        return super().__new__(cls)

    def __init__(
        self,
        *,
        system: str | None = None,
        n_workers: int = 0,
        security: Security | bool | None = None,
        asynchronous: bool = False,
        loop: IOLoop | None = None,
        scheduler_in: str | None = None,
        scheduler_job: dict[str, object] | None = None,
        cluster_name: str | None = None,
        pools: Mapping[str, Mapping[str, Any]] | None = None,
        **job_kwargs: object,
    ) -> None:
        # scheduler_in="job" made a handle in __new__ instead
        if scheduler_job is not None or cluster_name is not None:
            given = "scheduler_job" if scheduler_job is not None else "cluster_name"
            raise InvalidOptionError(given, "...", 'only with scheduler_in="job"')
        opts = resolve_job_options(system or self.system, **job_kwargs)
        settings = cluster_settings()
        security = resolve_security(security, settings.security)
        self.job_options = opts = secure_job_options(opts, security)
        self.poll_interval = settings.poll_interval
        #: the workers' TLS arguments and the private files they name
        self.credentials = (
            worker_security_args(security, credentials_directory(opts))
            if security is not None
            else CredentialFiles([], None)
        )
        #: where workers start: this process's directory, as with dask-jobqueue
        #: (jobs are submitted from the log directory, where the batch system
        #: writes its own files)
        self.manager = JobManager(opts, settings, self.credentials.args, os.getcwd())
        self.backend = self.manager.backend
        self.table = self.manager.table
        self._initial_jobs = self.manager.jobs_for(n_workers)
        self._job_kwargs, self._security = dict(job_kwargs), security
        self._adapt_arguments: AdaptArguments | None = None
        for pool, pool_kwargs in checked_pools(pools).items():
            self.add_pool(pool, **pool_kwargs)
        # the dashboard's /hpc page and its history (hpcdask.dashboard)
        prefix = opts.scheduler_options.get("http_prefix")
        self._dashboard = HPCDashboard(self.view, str(prefix) if prefix else None)
        options = scheduler_options(opts, security, self._dashboard)
        #: the dashboard's host in its link: the address it listens on, or the
        #: scheduler's when it listens on every interface
        self.dashboard_host = dashboard_host(str(options["dashboard_address"]))
        for name in LOGGERS:
            logging.getLogger(name).addFilter(self.manager.noise)
        try:
            super().__init__(  # type: ignore[no-untyped-call]
                scheduler={"cls": Scheduler, "options": options},
                asynchronous=asynchronous,
                loop=loop,
                security=security,
                name=opts.name,
            )
        except BaseException:
            self.credentials.remove()
            raise

    # -- what users call --------------------------------------------------------

    def add_pool(self, name: str, **options: Any) -> None:
        """Add a worker pool: jobs of their own shape in this cluster.

        ``options`` are job options (``queue``, ``cores``, ``memory``,
        ``processes``, ``gpus``, ``resources``, ``walltime``, ...); what a job
        holds comes from them or config, the rest from the cluster's own
        arguments (see :mod:`hpcdask.pools`). Tasks that ask for resources only
        this pool's workers offer (``client.submit(f, resources={"GPU": 1})``)
        run there, and adaptive scaling grows this pool for them.
        """
        pool = check_pool_name(name)
        opts = pool_options(
            self.job_options.system, self._job_kwargs, self.job_options, pool, options
        )
        self.manager.pools.add(pool, secure_job_options(opts, self._security))
        if self.manager.adaptive is not None and self._adapt_arguments is not None:
            self.adapt(**self._adapt_arguments)  # the new pool joins

    @property
    def _dummy_job(self) -> DummyJob:
        """dask-jobqueue's job object, for code written for it (deprecated)."""
        warnings.warn(DEPRECATION, FutureWarning, stacklevel=2)
        return DummyJob(self.job_options, self.backend.system, self.job_script)

    @classmethod
    def from_profile(cls: type[_Cluster], name: str, **kwargs: object) -> _Cluster:
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
        target = cls if cls.system else CLUSTER_CLASSES[system]
        # a ClusterHandle when the profile puts the scheduler in a job
        return target(**profile.cluster_kwargs(**kwargs))  # type: ignore[return-value]

    @classmethod
    def from_name(  # type: ignore[override]  # a handle, not a ProcessInterface
        cls, name: str, asynchronous: bool = False
    ) -> ClusterHandle:
        """A handle on the running scheduler-job cluster ``name`` (``hpcdask
        list`` shows them); see :meth:`hpcdask.handle.ClusterHandle.from_name`."""
        return ClusterHandle.from_name(name, cls.system or None, asynchronous)

    def scale(  # type: ignore[override]
        self,
        n: int | None = None,
        memory: str | int | None = None,
        cores: int | None = None,
        *,
        jobs: int = 0,
        pool: str | None = None,
    ) -> Awaitable[None] | None:
        """Ask for ``n`` workers, ``jobs`` jobs, or enough for ``cores``/``memory``
        (of ``pool``; default: the default pool).

        Whole jobs only: with ``processes=4``, ``scale(6)`` asks for two jobs.
        Called from a user's thread, it waits until the jobs are submitted and
        raises the queue's error if a submission is refused.
        """
        key = pool_key(pool)
        self.manager.scale_to(self.manager.jobs_for(n, memory, cores, jobs, key), key)
        return self._sync_jobs()

    def adapt(  # type: ignore[override]
        self, **arguments: Unpack[AdaptArguments]
    ) -> AdaptiveJobs:
        """Scale with the scheduler's load, in whole jobs, aware of the queue.

        Bounds may be given in workers (``minimum``/``maximum``), jobs
        (``minimum_jobs``/``maximum_jobs``), cores or memory, as dask-jobqueue
        accepts; each is rounded to whole jobs and the tightest applies. See
        :class:`hpcdask.config.AdaptArguments` for every argument and the config
        that stands in for those not given, and :mod:`hpcdask.policy` for the
        rules.
        """
        unknown = set(arguments) - set(AdaptArguments.__annotations__)
        if unknown:
            raise TypeError(f"unexpected argument(s): {', '.join(sorted(unknown))}")
        pools = self.manager.pools
        options = {key: pool.options for key, pool in pools.items()}
        settings, cluster_maximum = pool_settings(options, arguments)
        adaptive = pools.adapt(settings, cluster_maximum)
        self._adapt_arguments = arguments
        self._io_loop.add_callback(pools.start_adaptive)
        return adaptive

    async def _close(self) -> None:
        try:
            await super()._close()
        finally:
            self.credentials.remove()
            for name in LOGGERS:
                logging.getLogger(name).removeFilter(self.manager.noise)

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


class SGECluster(HPCCluster):
    """Dask workers in Grid Engine jobs (``qsub`` / ``qstat`` / ``qdel`` /
    ``qacct``): Son of Grid Engine, Univa/Altair Grid Engine.

    Takes dask-jobqueue's ``SGECluster`` arguments with the same meaning:
    ``queue`` (``-q``), ``project`` (``-P``), ``resource_spec`` (``-l``, e.g.
    ``"h_vmem=4G"``; memory is not requested otherwise, as resource names
    differ between sites), ``walltime`` (``-l h_rt=``), ``job_extra_directives``;
    and ``parallel_environment`` (``-pe NAME CORES``, e.g. ``"smp"``) for jobs
    of several cores. Commands run with the environment of
    ``$SGE_ROOT/$SGE_CELL/common/settings.sh`` when ``SGE_ROOT`` is set (see
    :mod:`hpcdask.systems.sge_backend`).
    """

    system = "sge"


class LocalBatchCluster(HPCCluster):
    """The same job scripts run as plain processes here: for laptops and
    machines without a batch system."""

    system = "local"


CLUSTER_CLASSES: dict[str, type[HPCCluster]] = {
    cls.system: cls for cls in (SLURMCluster, PBSCluster, SGECluster, LocalBatchCluster)
}
