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
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from hpcdask.adaptive import AdaptiveJobs
from hpcdask.config import ClusterSettings
from hpcdask.cost import JobResources, Usage, total_usage
from hpcdask.errors import JobFailedError
from hpcdask.fleet import Fleet, cancel_unknown
from hpcdask.jobs import JobTable, cancel_strays
from hpcdask.models import ClusterTag
from hpcdask.network import workers_address
from hpcdask.noise import SchedulerNoise
from hpcdask.options import JobOptions
from hpcdask.pools import DEFAULT_POOL
from hpcdask.poolset import PoolSet
from hpcdask.probe import SchedulerProbe
from hpcdask.runner import host_name, process_started
from hpcdask.script import render_job_script
from hpcdask.systems import make_backend
from hpcdask.view import ClusterView, build_view, copied

__all__ = ["JobManager"]

logger = logging.getLogger(__name__)

#: hosts a server listening on all interfaces reports


_UNTAGGED = (
    "the job comment is the user's own (--comment in job_extra_directives): this "
    "cluster's jobs carry no hpcdask tag, so `hpcdask jobs` and `hpcdask cancel` do "
    "not know them, and a submission that times out cannot be looked for in the queue"
)


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
        #: stored with every job in the queue: `hpcdask jobs` and `hpcdask
        #: cancel` find the cluster's jobs by it, and so does a submission that
        #: timed out
        self.tag = new_tag()
        self.backend = make_backend(opts, settings.command_timeout)
        if not self.backend.system.can_tag(opts):
            logger.warning(_UNTAGGED)
        self.table = JobTable(
            self.backend,
            opts,
            settings.pending_report_after,
            on_ended=lambda record: self.pools.get(record.pool).fleet.job_ended(record),
            on_requeued=lambda r: self.pools.get(r.pool).fleet.job_requeued(r),
        )
        #: the scheduler's log records about workers this cluster retires
        self.noise = SchedulerNoise()
        self.probe = SchedulerProbe(
            self.table, opts.walltime, opts.threads_per_worker, self.noise.add
        )
        #: the worker pools (:mod:`hpcdask.pools`), the default one first
        self.pools = PoolSet(self.table, self.probe, self.tag, self.render_for)
        self.pools.add(DEFAULT_POOL, opts)
        self.scheduler_address = ""
        self._poll_task: asyncio.Task[None] | None = None
        self._failures_reported = 0

    @property
    def fleet(self) -> Fleet:
        """The default pool's fleet."""
        return self.pools.default.fleet

    @property
    def resources(self) -> JobResources:
        """What one job of the default pool holds."""
        return self.pools.default.resources

    @property
    def adaptive(self) -> AdaptiveJobs | None:
        """The default pool's adaptive loop (each pool has its own)."""
        return self.pools.default.adaptive

    # -- life ------------------------------------------------------------------

    def start(self, scheduler: Any, rpc: Any, address: str) -> None:
        """The scheduler exists: read it, and start polling the queue."""
        self.probe.attach(scheduler, rpc)
        self.scheduler_address = address
        if self._poll_task is None:
            self._poll_task = asyncio.ensure_future(self._poll_loop())

    async def workers_address(self, scheduler: Any) -> str:
        """The scheduler's address as the workers are given it
        (:func:`hpcdask.network.workers_address`)."""
        return await workers_address(
            scheduler, self.backend.controller_host, self.options.system != "local"
        )

    async def stop(self) -> None:
        """Before the cluster closes: no more polls or adaptive decisions; jobs
        that go now are waited for, not retired."""
        self.pools.stop_adaptive()
        if self._poll_task is not None:
            self._poll_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poll_task
        self.noise.closing = True
        for fleet in self.pools.fleets():
            fleet.closing = True

    async def release(self) -> None:
        """Cancel every job of the cluster as it closes, within
        ``hpcdask.close-timeout``: submissions under way finish first, workers
        are not retired (the cluster closes), and a job whose submission was
        not confirmed is found by the cluster's tag. What cannot be cancelled is
        logged with its ids and the command that will cancel it; nothing here
        raises."""
        for fleet in self.pools.fleets():
            fleet.set_target(0)
        try:
            await asyncio.wait_for(self._release(), self.settings.close_timeout)
        except Exception as e:
            problem = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        else:
            problem = ""
        finally:
            for fleet in self.pools.fleets():
                fleet.forget_all()
        left = sorted(r.job_id for r in self.table.live() if r.job_id)
        if left or problem:
            logger.error(
                "could not cancel every job of this cluster%s; left in the queue: "
                "%s; cancel them with: hpcdask cancel --cluster %s",
                f" ({problem})" if problem else "",
                ", ".join(left) or "none known",
                self.tag,
            )

    async def _release(self) -> None:
        fleets = self.pools.fleets()
        await asyncio.gather(*(fleet.submissions_done() for fleet in fleets))
        await asyncio.gather(*(fleet.sync() for fleet in fleets))
        if any(fleet.unconfirmed for fleet in fleets):
            await cancel_unknown(self.table, self.tag)
        await cancel_strays(self.table)

    # -- scaling ---------------------------------------------------------------

    def jobs_for(
        self,
        n: int | None = None,
        memory: str | int | None = None,
        cores: int | None = None,
        jobs: int = 0,
        pool: str = DEFAULT_POOL,
    ) -> int:
        """Whole jobs of ``pool`` for ``n`` workers, ``cores`` or ``memory``,
        at least ``jobs``."""
        return self.pools.get(pool).jobs_for(n, memory, cores, jobs)

    def scale_to(self, jobs: int, pool: str = DEFAULT_POOL) -> None:
        """Want ``jobs`` jobs of ``pool``; adaptive scaling, if on, stops."""
        self.pools.scale_to(jobs, pool)

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
        """Ask the queue once about all live jobs; the fleet hears of those that
        ended (``JobTable.on_ended``)."""
        await self.table.poll()

    def next_failure(self) -> JobFailedError | None:
        """The first failed start not yet reported by this call, if any."""
        failures = self.table.failures
        if self._failures_reported < len(failures):
            failure = failures[self._failures_reported]
            self._failures_reported = len(failures)
            return failure
        return None

    # -- what is shown ---------------------------------------------------------

    def render(self, names: list[str], walltime: float | None = None) -> str:
        """The job script for the default pool's jobs ``names`` (an array for
        several), of ``walltime`` seconds when given (else the pool's)."""
        return self.render_for(self.options, names, walltime)

    def render_for(
        self, opts: JobOptions, names: list[str], walltime: float | None = None
    ) -> str:
        """The job script for the jobs ``names`` with options ``opts``, of
        ``walltime`` seconds when given (else that of ``opts``)."""
        assert self.scheduler_address, "the cluster has not started"
        if walltime is not None:
            opts = replace(opts, walltime=int(walltime))
        return render_job_script(
            opts,
            self.backend.system,
            self.scheduler_address,
            names,
            self.security_args,
            workdir=self.workdir,
            tag=self.tag,
        )

    def usage(self, now: float | None = None) -> Usage:
        """What the jobs have been charged up to ``now`` (see ``cluster.usage``)."""
        when = time.time() if now is None else now
        return total_usage(self.pools.usage_by_pool(when).values())

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
        when = time.time() if now is None else now
        records = copied(lambda: list(self.table.records.values()))
        connected = copied(lambda: list(workers.values()))
        several = len(self.pools) > 1
        return build_view(
            now=when,
            cluster_type=cluster_type,
            name=name,
            opts=self.options,
            records=records,
            shown=self.table.shown_status,
            workers=connected,
            planned=planned,
            adaptive=None if adaptive is None else adaptive.params,
            resources=self.resources,
            dashboard_link=dashboard_link,
            failures=self.table.failures,
            controller_error=self.table.controller_error,
            usage=self.usage(when) if several else None,
            pools=self.pools.rows(records, connected, when) if several else (),
            pool_labels={k: p.label for k, p in self.pools.items()}
            if several
            else None,
            shape_reason=self.pools.shape_reason(),
        )


def new_tag() -> ClusterTag:
    """A tag for a new cluster of this process."""
    pid = os.getpid()
    started = process_started(pid) or time.time()
    return ClusterTag(host_name(), pid, int(started), secrets.token_hex(3))
