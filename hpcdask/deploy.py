"""distributed's ``SpecCluster`` with a job manager as the keeper of its jobs.

``SpecCluster`` holds ``worker_spec`` (what should run) and ``workers`` (what was
started), and ``_correct_state`` makes the second follow the first. In
:class:`JobSpecCluster` both are the fleet's (:mod:`hpcdask.fleet`), entries are
batch jobs, and ``_correct_state`` is the fleet's sync. The queue, not the
scheduler's worker list, says when a job is gone: a worker leaving does not
close its job. The repr, the widget and the dashboard link, distributed's
``Cluster`` hooks, render the manager's view. The user-facing cluster classes
are in :mod:`hpcdask.cluster`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING, Any

from distributed.comm.addressing import get_address_host
from distributed.core import Status
from distributed.deploy.spec import SpecCluster
from distributed.exceptions import WorkerStartTimeoutError
from distributed.utils import NoOpAwaitable
from tornado.ioloop import IOLoop

from hpcdask.adaptive import AdaptiveJobs
from hpcdask.config import repr_interval
from hpcdask.cost import Usage
from hpcdask.errors import JobFailedError
from hpcdask.fleet import BatchJob, JobSpec
from hpcdask.manager import JobManager
from hpcdask.pools import pool_key
from hpcdask.view import (
    ClusterView,
    copied,
    dashboard_link_for,
    hpc_page_link,
    jobs_frame,
)
from hpcdask.widget import cluster_widget, render_html

if TYPE_CHECKING:
    import pandas

__all__ = ["JobSpecCluster"]

logger = logging.getLogger(__name__)


class JobSpecCluster(SpecCluster):
    """A ``SpecCluster`` whose jobs a :class:`~hpcdask.manager.JobManager` keeps.

    Subclasses set ``manager`` (and ``_initial_jobs``) before calling this
    class's ``__init__``, which is ``SpecCluster``'s.

    distributed's SpecCluster is unannotated: calls of its methods carry
    ``type: ignore[no-untyped-call]``.
    """

    manager: JobManager
    _initial_jobs: int = 0
    #: the host the dashboard listens on (None: every interface)
    dashboard_host: str | None = None

    # SpecCluster's names for the fleet's wanted and submitted jobs, and
    # distributed's for adaptive scaling: the manager's parts are their one
    # writer (the base classes' __init__ sets them empty)

    @property
    def worker_spec(self) -> dict[str, JobSpec]:
        fleets = self.manager.pools.fleets()
        if len(fleets) == 1:
            return fleets[0].wanted
        return {k: v for fleet in fleets for k, v in fleet.wanted.items()}

    @worker_spec.setter
    def worker_spec(self, value: dict[str, JobSpec]) -> None:
        _refuse_setting("worker_spec", value)

    @property
    def workers(self) -> dict[str, BatchJob]:
        fleets = self.manager.pools.fleets()
        if len(fleets) == 1:
            return fleets[0].handles
        return {k: v for fleet in fleets for k, v in fleet.handles.items()}

    @workers.setter
    def workers(self, value: dict[str, BatchJob]) -> None:
        _refuse_setting("workers", value)

    @property
    def _adaptive(self) -> AdaptiveJobs | None:
        return self.manager.adaptive

    @_adaptive.setter
    def _adaptive(self, value: object) -> None:
        _refuse_setting("_adaptive", value)

    def view(self, now: float | None = None) -> ClusterView:
        """What the repr, the widget, the dashboard page and ``jobs()`` show;
        safe from any thread (see :meth:`hpcdask.manager.JobManager.view`)."""
        try:
            link = self.dashboard_link
        except Exception:  # a bad distributed.dashboard.link template
            link = ""
        return self.manager.view(
            type(self).__name__,
            str(self.name),
            self.scheduler_info.get("workers", {}),
            copied(lambda: len(self.plan)),
            link,
            now,
        )

    def job_script(self, pool: str | None = None) -> str:
        """The script the next job (of ``pool``, default: the default pool)
        would be submitted with."""
        chosen = self.manager.pools.get(pool_key(pool))
        return self.manager.render_for(chosen.options, [chosen.fleet.next_name()])

    def jobs(self) -> pandas.DataFrame:
        """The cluster's jobs as a pandas DataFrame, like ``squeue`` for it."""
        view = self.view()
        return jobs_frame(view.jobs, pools=bool(view.pools))

    @property
    def failures(self) -> list[JobFailedError]:
        """Jobs that ended before their workers connected, oldest first."""
        return list(self.manager.table.failures)

    def usage(self, now: float | None = None, pool: str | None = None) -> Usage:
        """What the cluster's jobs have been charged so far, and the burn rate.

        Each job is charged from the start time the queue reported to its end
        time, or to ``now`` while it runs, for the cores, nodes and GPUs its
        directives ask for; jobs that never started cost nothing.

        Parameters
        ----------
        now
            POSIX time to charge running jobs up to; the current time if omitted.
        pool
            one worker pool's charges only (``"default"`` for the default pool).

        Returns
        -------
        hpcdask.cost.Usage
            ``core_hours``, ``node_hours``, ``gpu_hours``, the resources running
            jobs hold now (``cores_in_use``, the burn rate in core-hours per
            hour) and a charge per job.
        """
        if pool is None:
            return self.manager.usage(now)
        label = self.manager.pools.get(pool_key(pool)).label
        return self.manager.pools.usage_by_pool(now or time.time())[label]

    @property
    def dashboard_link(self) -> str:
        """The dashboard's address as the user's browser reaches it.

        Formatted from ``distributed.dashboard.link``; in a JupyterHub session
        (``JUPYTERHUB_SERVICE_PREFIX`` set) the default link is replaced by
        jupyter-server-proxy's ``{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status``.
        """
        try:
            port = self.scheduler_info["services"]["dashboard"]
            host = self.dashboard_host or get_address_host(self.scheduler_address)
        except (KeyError, ValueError):  # not started, or not connected yet
            return ""
        return dashboard_link_for(host, port)

    @property
    def hpc_dashboard_link(self) -> str:
        """The link to the dashboard's hpcdask page (jobs, workers and
        core-hours over time)."""
        return hpc_page_link(self.dashboard_link)

    def _repr_html_(self, cluster_status: object = None) -> str:
        return render_html(self.view())

    def _widget(self) -> object:
        """A live ipywidgets view (None without ipywidgets); see hpcdask.widget."""
        try:
            return self._cached_widget
        except AttributeError:
            self._cached_widget = cluster_widget(
                self.view, self.loop, self.periodic_callbacks, repr_interval()
            )
            return self._cached_widget

    def _sync_jobs(self) -> Awaitable[None] | None:
        """Make the queue follow the wanted jobs: awaitable when asynchronous;
        from a user's thread, wait for the submissions (their errors raise)."""
        if self.asynchronous:
            return self._correct_state()
        if self.called_from_running_loop or self.status != Status.running:
            self._io_loop.add_callback(self._correct_state)
            return NoOpAwaitable()
        self.sync(self._correct_state)  # type: ignore[no-untyped-call]
        return None

    async def sync_jobs(self) -> None:
        """Submit and cancel until the queue holds the wanted jobs."""
        await self._correct_state()

    async def scale_down(self, workers: Iterable[str]) -> None:
        """Remove the jobs of ``workers`` (names or addresses), whole jobs only."""
        info = self.scheduler_info.get("workers", {})
        names = [str(info[w]["name"]) if w in info else str(w) for w in workers]
        for fleet in self.manager.pools.fleets():
            fleet.remove_jobs_of(names)
        await self._correct_state()

    # -- SpecCluster hooks ----------------------------------------------------------

    @property
    def _io_loop(self) -> IOLoop:
        loop = self.loop
        assert loop is not None, "cluster has no event loop"
        return loop

    async def _start(self) -> None:
        await super()._start()  # type: ignore[no-untyped-call]
        scheduler = self.scheduler
        assert scheduler is not None
        address = await self.manager.workers_address(scheduler)
        self.manager.start(scheduler, self.scheduler_comm, address)
        if self._initial_jobs:
            self.manager.fleet.set_target(self._initial_jobs)
            self._initial_jobs = 0

    def _correct_state(self) -> asyncio.Future[None]:
        fleets = self.manager.pools.fleets()
        if len(fleets) == 1:
            return fleets[0].sync()
        return asyncio.ensure_future(_all(fleet.sync() for fleet in fleets))

    def _update_worker_status(self, op: str, msg: Any) -> None:
        # The queue, not the worker list, decides when a job is gone: skip
        # SpecCluster's "close the job when its worker leaves".
        if op == "add":
            for info in msg.get("workers", {}).values():
                self.manager.table.note_worker(str(info.get("name")), connected=True)
        elif op == "remove":
            info = self.scheduler_info.get("workers", {}).get(msg)
            if info is not None:
                self.manager.table.note_worker(str(info.get("name")), connected=False)
        super(SpecCluster, self)._update_worker_status(op, msg)  # type: ignore[no-untyped-call]

    async def _close(self) -> None:
        if self.status in (Status.running, Status.failed):
            # the jobs go first, within hpcdask.close-timeout, whatever the
            # queue does; SpecCluster then closes the scheduler
            await self.manager.stop()
            await self.manager.release()
        await super()._close()  # type: ignore[no-untyped-call]

    async def _wait_for_workers(
        self, n_workers: int = 0, timeout: float | None = None
    ) -> None:
        """Wait for ``n_workers``; raise at once if a job fails to start."""
        clock = asyncio.get_running_loop().time
        deadline = None if timeout is None else clock() + float(timeout)
        while True:
            failure = self.manager.next_failure()
            if failure is not None:
                raise failure
            assert self.scheduler_comm is not None, "cluster has not started"
            identity = await self.scheduler_comm.identity()
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

    async def poll(self) -> None:
        """Ask the queue once about all live jobs and act on jobs that ended."""
        await self.manager.poll()


def _refuse_setting(name: str, value: object) -> None:
    if value:
        raise TypeError(f"{name} is the job manager's: use scale() or adapt()")


async def _all(syncs: Iterable[Awaitable[None]]) -> None:
    """Wait for every pool's sync; the first error raises, after all ended."""
    results = await asyncio.gather(*syncs, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
