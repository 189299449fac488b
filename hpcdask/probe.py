"""The cluster's link with its in-process Dask scheduler.

:class:`SchedulerProbe` reads what the scheduler knows (its adaptive target, its
workers and what they run, the tasks' durations) and joins it with the job table
into the :class:`~hpcdask.models.ClusterSnapshot` the adaptive policy decides
on. It also does the two things the fleet asks of the scheduler: retire workers
(their data handed over) and drain them (no new task).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING

from hpcdask.config import AdaptiveSettings
from hpcdask.fleet import Fleet
from hpcdask.jobs import JobTable
from hpcdask.models import (
    ClusterSnapshot,
    JobState,
    JobView,
    PolicyParams,
    ScaleDecision,
)
from hpcdask.startprobe import StartProbe, start_probe, with_forecast

__all__ = [
    "UNMEASURED_SCAN_LIMIT",
    "ClusterScaling",
    "SchedulerProbe",
    "task_duration",
    "unmeasured_tasks",
]

if TYPE_CHECKING:
    from distributed.core import rpc
    from distributed.scheduler import Scheduler, TaskState, WorkerState

logger = logging.getLogger(__name__)

#: the most waiting tasks one tick looks at to count unmeasured work
UNMEASURED_SCAN_LIMIT = 10_000


class SchedulerProbe:
    """Reads (and, for the fleet, retires and drains) a cluster's workers.

    Parameters
    ----------
    table
        the cluster's job table.
    default_time_limit
        the walltime of a job whose limit the queue has not reported yet.
    threads_per_worker
        threads of each worker.
    note_retired
        told the addresses of workers about to be retired.
    """

    def __init__(
        self,
        table: JobTable,
        default_time_limit: float,
        threads_per_worker: int,
        note_retired: Callable[[Iterable[str]], None] = lambda addresses: None,
    ) -> None:
        self.table = table
        self.default_time_limit = default_time_limit
        self.threads_per_worker = threads_per_worker
        self.note_retired = note_retired
        self._scheduler: Scheduler | None = None
        self._rpc: rpc | None = None
        #: removals of workers of jobs that are gone, under way
        self._forgetting: set[asyncio.Future[None]] = set()

    def attach(self, scheduler: Scheduler, rpc: rpc) -> None:
        """The scheduler (in this process) and an rpc to it, once they exist."""
        self._scheduler = scheduler
        self._rpc = rpc

    @property
    def scheduler(self) -> Scheduler:
        assert self._scheduler is not None, "the cluster has not started"
        return self._scheduler

    def snapshot(
        self,
        now: float,
        target_duration: float = 5.0,
        unmeasured_limit: int = 0,
        leaving: Collection[str] = (),
        pool: str | None = None,
        target: int | None = None,
        time_limit: float | None = None,
    ) -> ClusterSnapshot:
        """What the policy needs, from the scheduler and the job table; the
        jobs in ``leaving`` are being retired or cancelled.

        The target is the scheduler's ``adaptive_target``, raised to a thread per
        waiting task that was never timed (:func:`unmeasured_tasks`, at most
        ``unmeasured_limit`` of them). For one ``pool`` of several, its jobs
        only, with its ``target`` (:mod:`hpcdask.demand`) and walltime.
        """
        scheduler = self.scheduler
        if target is None:
            target = int(scheduler.adaptive_target(target_duration=target_duration))
            if unmeasured_limit > 0:
                unmeasured = unmeasured_tasks(scheduler, unmeasured_limit)
                target = max(target, math.ceil(unmeasured / self.threads_per_worker))
        limit = time_limit or self.default_time_limit
        return ClusterSnapshot(
            target_workers=target,
            jobs=tuple(self._job_views(now, leaving, pool, limit)),
            failed_starts=self.table.failed_start_times(pool),
            last_start=self.table.last_start(pool),
            task_duration=task_duration(scheduler),
        )

    def _workers_of_jobs(self) -> dict[str, list[WorkerState]]:
        """Job name -> the scheduler's worker states of its workers."""
        workers_of: dict[str, list[WorkerState]] = {}
        for ws in self.scheduler.workers.values():
            owner = self.table.job_of_worker(str(ws.name))
            if owner is not None:
                workers_of.setdefault(owner.name, []).append(ws)
        return workers_of

    def _job_views(
        self, now: float, leaving: Collection[str], pool: str | None, limit: float
    ) -> Iterable[JobView]:
        # the scheduler's own worker list, not the (event-fed) job table, says
        # which workers exist and what they do right now
        workers_of = self._workers_of_jobs()
        for record in self.table.live():
            if pool is not None and record.pool != pool:
                continue
            workers = workers_of.get(record.name, [])
            idle = bool(workers) and all(
                not ws.processing and ws.status.name in ("running", "paused")
                for ws in workers
            )
            status = record.status
            state = status.state
            if state is JobState.PENDING and workers:
                state = JobState.RUNNING
            yield JobView(
                name=record.name,
                state=state,
                submit_time=status.submit_time or now,
                start_time=status.start_time or record.connected_time,
                time_limit=status.time_limit or limit,
                workers=len(workers),
                idle=idle,
                reason=status.reason,
                retiring=record.name in leaving,
            )

    def drain(self, job_names: Iterable[str]) -> None:
        """Give no new task to the workers of these jobs: the scheduler sees them
        as paused (as when a worker pauses itself under memory pressure). They
        finish what they run; the policy retires them once idle, data handed
        over."""
        scheduler = self.scheduler
        names = set(job_names)
        for ws in list(scheduler.workers.values()):
            owner = self.table.job_of_worker(str(ws.name))
            if owner is None or owner.name not in names or ws.status.name != "running":
                continue
            logger.info("draining worker %s of job %s", ws.name, owner.job_id)
            scheduler.handle_worker_status_change(
                "paused", ws, stimulus_id=f"hpcdask-drain-{time.time()}"
            )

    def forget(self, worker_names: list[str]) -> None:
        """Remove these workers from the scheduler now, in the background: their
        job ended or was requeued, they cannot hand anything over."""
        forgetting = asyncio.ensure_future(self._forget(worker_names))
        self._forgetting.add(forgetting)
        forgetting.add_done_callback(self._forgetting.discard)

    async def _forget(self, worker_names: list[str]) -> None:
        if self._scheduler is None:
            return
        wanted = set(worker_names)
        addresses = [
            ws.address
            for ws in self._scheduler.workers.values()
            if str(ws.name) in wanted
        ]
        self.note_retired(addresses)
        for address in addresses:
            logger.warning("removing worker %s: its job ended or was requeued", address)
            try:
                await self._scheduler.remove_worker(
                    address, stimulus_id=f"hpcdask-job-ended-{time.time()}"
                )
            except Exception:  # the worker may have left meanwhile
                logger.exception("removing worker %s failed", address)

    async def retire(self, worker_names: list[str]) -> None:
        """Retire these workers through the scheduler (data handed over, at most
        a minute); a failure leaves them to be cancelled with their jobs."""
        wanted = set(worker_names)
        found = []
        if self._scheduler is not None:
            found = [
                ws.address
                for ws in self._scheduler.workers.values()
                if str(ws.name) in wanted
            ]
            self.note_retired(found)
        if self._rpc is None:
            return
        retired: object = None
        with contextlib.suppress(Exception):
            retired = await asyncio.wait_for(
                self._rpc.retire_workers(
                    names=worker_names, close_workers=True, remove=True
                ),
                timeout=60,
            )
        if isinstance(retired, dict) and len(retired) < len(found):
            logger.warning(
                "%d of %d workers could not hand their data over (no other worker "
                "to take it): it is computed again when needed. Jobs ended before "
                "their replacements started (a busy queue; with short jobs chosen "
                "to start sooner, adapt(job_shapes=False) keeps the full walltime)",
                len(found) - len(retired),
                len(found),
            )


class ClusterScaling:
    """What the adaptive loop sees of a cluster (see
    :class:`hpcdask.adaptive.Scalable`): snapshots from the probe, decisions
    applied by the fleet.

    The scheduler's backlog is sized over ``target_duration`` or the observed
    start-up of a job (job start to connected worker), whichever is longer: a
    worker is worth starting when the backlog keeps it busy at least as long
    as its start-up is charged. Queue wait is not charged and does not count:
    jobs asked for in vain are cancelled while still queued.

    When the policy chooses job shapes (``params.shapes``), snapshots carry
    the queue's forecast of when new jobs would start (:attr:`starts`), read
    while a scale-up may come.
    """

    def __init__(
        self, probe: SchedulerProbe, fleet: Fleet, settings: AdaptiveSettings
    ) -> None:
        self.probe = probe
        self.fleet = fleet
        self.params = params = settings.params
        self.target_duration = settings.target_duration
        self.unmeasured_limit = min(
            params.maximum_workers * probe.threads_per_worker, UNMEASURED_SCAN_LIMIT
        )
        self.starts: StartProbe | None = start_probe(probe.table.backend, settings)

    def snapshot(self, now: float) -> ClusterSnapshot:
        duration = max(self.target_duration, self.probe.table.startup_time())
        snapshot = self.probe.snapshot(
            now, duration, self.unmeasured_limit, self.fleet.leaving
        )
        return with_forecast(snapshot, now, self.params, self.starts)

    def limits(self, params: PolicyParams) -> PolicyParams:
        return params

    async def apply(self, decision: ScaleDecision) -> None:
        await self.fleet.apply(decision)

    def stop(self) -> None:
        """Adaptive scaling stops: abandon a forecast being read."""
        if self.starts is not None:
            self.starts.stop()


def unmeasured_tasks(scheduler: Scheduler, limit: int) -> int:
    """Tasks waiting for a thread whose kind (prefix) has never been timed.

    The scheduler sizes work it has never timed at
    ``distributed.scheduler.unknown-task-duration`` (0.5 s), a guess made for
    local workers that arrive within a second. A batch job arrives much later,
    so a first ramp sized on that guess makes a burst of long tasks wait for a
    second round of jobs. Until a task of their kind has run, hpcdask asks a
    thread for each waiting task: jobs asked for in vain are still queued when
    the first timings arrive, and the policy cancels queued jobs first.
    Looks at no more than ``limit`` tasks (cost per tick is bounded).
    """
    waiting: Iterable[TaskState] = itertools.chain(
        scheduler.queued, scheduler.unrunnable
    )
    for ws in scheduler.workers.values():
        if len(ws.processing) > ws.nthreads:  # assigned, no free thread yet
            waiting = itertools.chain(
                waiting, itertools.islice(ws.processing, ws.nthreads, None)
            )
    return sum(
        1
        for ts in itertools.islice(waiting, limit)
        if ts.prefix.duration_average < 0 and ts.prefix.max_exec_time <= 0
    )


def task_duration(scheduler: Scheduler) -> float:
    """The longest average run time of the kinds of tasks still to run (0: none
    timed). One pass over the task prefixes, not the tasks."""
    longest = 0.0
    for prefix in scheduler.task_prefixes.values():
        counts = prefix.state_counts
        if any(counts[s] for s in ("waiting", "no-worker", "queued", "processing")):
            longest = max(longest, float(prefix.duration_average))
    return longest
