"""The job manager: everything a cluster does with batch jobs, in one object.

:class:`JobManager` puts the parts together for one cluster: the backend and job
table (queue I/O), the fleet (the wanted jobs), the probe (what the scheduler
says), adaptive scaling, the poll loop, the cost meter and the view. It knows
the scheduler only as an object to read and an rpc to call, handed to
:meth:`JobManager.start`; the cluster class (:mod:`hpcdask.cluster`) is the thin
``SpecCluster`` around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from dask.utils import parse_bytes

from hpcdask.adaptive import AdaptiveJobs
from hpcdask.config import AdaptiveSettings, ClusterSettings
from hpcdask.cost import Usage, job_resources, measure_usage
from hpcdask.errors import JobFailedError
from hpcdask.fleet import Fleet
from hpcdask.jobs import JobTable
from hpcdask.noise import SchedulerNoise
from hpcdask.options import JobOptions
from hpcdask.probe import ClusterScaling, SchedulerProbe
from hpcdask.script import render_job_script
from hpcdask.systems import make_backend
from hpcdask.view import ClusterView, build_view, copied

__all__ = ["JobManager"]

logger = logging.getLogger(__name__)


class JobManager:
    """The batch jobs of one cluster.

    Parameters
    ----------
    opts
        the cluster's resolved job options.
    settings
        the cluster-wide settings (poll interval, ...).
    security_args
        the workers' TLS arguments (file paths).
    workdir
        where the workers start (the client's directory).
    """

    def __init__(
        self,
        opts: JobOptions,
        settings: ClusterSettings,
        security_args: Sequence[str] = (),
        workdir: str | None = None,
    ) -> None:
        self.options = opts
        self.settings = settings
        self.security_args = list(security_args)
        self.workdir = workdir
        self.backend = make_backend(opts)
        self.resources = job_resources(opts, self.backend.system)
        self.table = JobTable(self.backend, opts, settings.pending_report_after)
        #: the scheduler's log records about workers this cluster retires
        self.noise = SchedulerNoise()
        self.probe = SchedulerProbe(
            self.table, opts.walltime, opts.threads_per_worker, self.noise.add
        )
        self.fleet = Fleet(
            self.table, self.render, opts.name, opts.processes, self.probe
        )
        self.adaptive: AdaptiveJobs | None = None
        self.scheduler_address = ""
        self._poll_task: asyncio.Task[None] | None = None
        self._failures_reported = 0

    # -- life ------------------------------------------------------------------

    def start(self, scheduler: Any, rpc: Any, address: str) -> None:
        """The scheduler exists: read it, and start polling the queue."""
        self.probe.attach(scheduler, rpc)
        self.scheduler_address = address
        if self._poll_task is None:
            self._poll_task = asyncio.ensure_future(self._poll_loop())

    async def stop(self) -> None:
        """Before the cluster closes: no more polls or adaptive decisions; jobs
        that go now are waited for, not retired."""
        self.stop_adaptive()
        if self._poll_task is not None:
            self._poll_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poll_task
        self.noise.closing = True
        self.fleet.closing = True

    # -- scaling ---------------------------------------------------------------

    def jobs_for(
        self,
        n: int | None = None,
        memory: str | int | None = None,
        cores: int | None = None,
        jobs: int = 0,
    ) -> int:
        """Whole jobs for ``n`` workers, ``cores`` or ``memory``, at least ``jobs``."""
        opts = self.options
        wanted = jobs
        if n is not None:
            wanted = max(wanted, math.ceil(n / opts.processes))
        if memory is not None:
            wanted = max(wanted, math.ceil(parse_bytes(memory) / opts.memory))
        if cores is not None:
            wanted = max(wanted, math.ceil(cores / opts.cores))
        return wanted

    def scale_to(self, jobs: int) -> None:
        """Want ``jobs`` jobs; adaptive scaling, if on, stops."""
        if self.adaptive is not None:
            logger.info("scale() called: adaptive scaling stops")
            self.stop_adaptive()
        self.fleet.set_target(jobs)

    def adapt(self, settings: AdaptiveSettings) -> AdaptiveJobs:
        """Adaptive scaling with ``settings`` (from
        :func:`hpcdask.config.adaptive_settings`), to be started in the event
        loop."""
        self.stop_adaptive()
        self.fleet.replace_ended = False  # the policy decides
        scaling = ClusterScaling(
            self.probe,
            self.fleet,
            settings.target_duration,
            settings.params.maximum_workers,
        )
        self.adaptive = AdaptiveJobs(scaling, settings.params, settings.interval)
        return self.adaptive

    def stop_adaptive(self) -> None:
        if self.adaptive is not None:
            self.adaptive.stop()
            self.adaptive = None
        self.fleet.replace_ended = True

    # -- the queue -------------------------------------------------------------

    async def _poll_loop(self) -> None:
        interval = delay = self.settings.poll_interval
        while True:
            await asyncio.sleep(delay)
            try:
                await self.poll()
            except Exception:  # keep polling whatever one round did
                logger.exception("polling the queue failed")
            if self.table.controller_error:
                # back off while the controller does not answer (it may be
                # restarting under load): twice the wait each time, at most
                # 8 polls' worth or a minute
                delay = min(2 * delay, max(interval, min(8 * interval, 60.0)))
            else:
                delay = interval

    async def poll(self) -> None:
        """Ask the queue once about all live jobs and act on jobs that ended."""
        for record in await self.table.poll():
            self.fleet.job_ended(record)

    def next_failure(self) -> JobFailedError | None:
        """The first failed start not yet reported by this call, if any."""
        failures = self.table.failures
        if self._failures_reported < len(failures):
            failure = failures[self._failures_reported]
            self._failures_reported = len(failures)
            return failure
        return None

    # -- what is shown ---------------------------------------------------------

    def render(self, names: list[str]) -> str:
        """The job script for the jobs ``names`` (an array for several)."""
        assert self.scheduler_address, "the cluster has not started"
        return render_job_script(
            self.options,
            self.backend.system,
            self.scheduler_address,
            names,
            self.security_args,
            workdir=self.workdir,
        )

    def usage(self, now: float | None = None) -> Usage:
        """What the jobs have been charged up to ``now`` (see ``cluster.usage``)."""
        records = list(self.table.records.values())
        return measure_usage(
            records, self.resources, time.time() if now is None else now
        )

    def view(
        self,
        cluster_type: str,
        name: str,
        workers: Mapping[str, Mapping[str, Any]],
        planned: int,
        dashboard_link: str,
        now: float | None = None,
    ) -> ClusterView:
        """The view of the cluster; safe from any thread (it copies memory the
        event loop keeps current and never waits on the loop or the queue)."""
        adaptive = self.adaptive
        return build_view(
            now=time.time() if now is None else now,
            cluster_type=cluster_type,
            name=name,
            opts=self.options,
            records=copied(lambda: list(self.table.records.values())),
            shown=self.table.shown_status,
            workers=copied(lambda: list(workers.values())),
            planned=planned,
            adaptive=None if adaptive is None else adaptive.params,
            resources=self.resources,
            dashboard_link=dashboard_link,
            failures=self.table.failures,
            controller_error=self.table.controller_error,
        )
