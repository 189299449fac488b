"""The adaptive loop: gather a snapshot, call :func:`hpcdask.policy.decide`, apply.

Only the loop lives here; what to do is the policy's, how to do it the cluster's.
Ticks never overlap: the next one starts ``interval`` after the last one ended.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from dask.utils import parse_timedelta

from hpcdask.config import cluster_setting
from hpcdask.models import ClusterSnapshot, JobState, JobView, ScaleDecision
from hpcdask.policy import PolicyParams, PolicyState, decide

if TYPE_CHECKING:
    from hpcdask.cluster import HPCCluster

logger = logging.getLogger(__name__)


class AdaptiveJobs:
    """Queue-aware adaptive scaling of an :class:`~hpcdask.cluster.HPCCluster`.

    Created by ``cluster.adapt(...)``; ``minimum``/``maximum`` are in workers,
    as for distributed's ``Adaptive``.
    """

    def __init__(
        self,
        cluster: HPCCluster,
        params: PolicyParams,
        interval: float,
        target_duration: float = 5.0,
    ) -> None:
        self.cluster = cluster
        self.params = params
        self.interval = interval
        self.base_target_duration = target_duration
        self.state = PolicyState(failures_forgiven_until=time.time())
        self.last_decision = ScaleDecision()
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None
        self._pending_reported: set[str] = set()

    @property
    def minimum(self) -> int:
        return self.params.minimum_jobs * self.params.workers_per_job

    @property
    def maximum(self) -> int:
        return self.params.maximum_jobs * self.params.workers_per_job

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad tick must not end adaptivity
                logger.exception("adaptive tick failed")
            await asyncio.sleep(self.interval)

    async def tick(self) -> ScaleDecision:
        """One round: snapshot, decide, apply."""
        now = time.time()
        snapshot = build_snapshot(
            self.cluster,
            now,
            self.target_duration(),
            unmeasured_limit=min(
                self.maximum * self.cluster.job_options.threads_per_worker,
                UNMEASURED_SCAN_LIMIT,
            ),
        )
        decision, self.state = decide(snapshot, self.state, now, self.params)
        self.ticks += 1
        if decision.reason and decision.reason != self.last_decision.reason:
            logger.info("adaptive: %s", decision.reason)
        self.last_decision = decision
        self._report_long_pending(now)
        if not decision.is_noop:
            await apply(self.cluster, decision)
        return decision

    def target_duration(self) -> float:
        """How soon the scheduler's backlog should be done, in seconds.

        A worker is worth starting when the backlog keeps it busy at least as
        long as its start-up is charged, so the backlog is sized over the
        observed time from a job's start to its connected worker, and never
        under the configured ``distributed.adaptive.target-duration``. Queue
        wait is not charged and does not count: jobs asked for in vain are
        cancelled while still queued.
        """
        return max(self.base_target_duration, startup_time(self.cluster))

    def _report_long_pending(self, now: float) -> None:
        """Say once per job when it has been pending for long, and why
        (``hpcdask.adaptive.pending-report-after``, 60 s)."""
        after = float(
            parse_timedelta(cluster_setting("adaptive.pending-report-after", 60))
        )
        for record in self.cluster.table.live():
            if (
                record.name not in self._pending_reported
                and record.workers_seen == 0
                and record.submit_time is not None
                and now - record.submit_time > after
            ):
                self._pending_reported.add(record.name)
                logger.warning(
                    "job %s pending for %.0f s: %s",
                    record.job_id,
                    now - record.submit_time,
                    record.reason or record.state.value,
                )


def startup_time(cluster: HPCCluster, recent: int = 20) -> float:
    """Median charged start-up of recent jobs: job start to connected worker."""
    times = sorted(
        r.connected_time - r.start_time
        for r in list(cluster.table.records.values())[-recent:]
        if r.connected_time is not None and r.start_time is not None
    )
    return times[len(times) // 2] if times else 0.0


#: the most waiting tasks one tick looks at to count unmeasured work
UNMEASURED_SCAN_LIMIT = 10_000


def unmeasured_tasks(scheduler: Any, limit: int) -> int:
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
    waiting: Any = itertools.chain(scheduler.queued, scheduler.unrunnable)
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


def build_snapshot(
    cluster: HPCCluster,
    now: float,
    target_duration: float = 5.0,
    unmeasured_limit: int = 0,
) -> ClusterSnapshot:
    """What the policy needs, from the in-process scheduler and the job table.

    The target is the scheduler's ``adaptive_target``, raised to a thread per
    waiting task that was never timed (:func:`unmeasured_tasks`, at most
    ``unmeasured_limit`` of them).
    """
    scheduler = cluster.scheduler
    assert scheduler is not None, "cluster has not started"
    target = int(scheduler.adaptive_target(target_duration=target_duration))
    if unmeasured_limit > 0:
        unmeasured = unmeasured_tasks(scheduler, unmeasured_limit)
        threads = cluster.job_options.threads_per_worker
        target = max(target, math.ceil(unmeasured / threads))
    # the scheduler's own worker list, not the (event-fed) job table, says which
    # workers exist and what they do right now
    workers_of: dict[str, list[Any]] = {}
    for ws in scheduler.workers.values():
        owner = cluster.table.job_of_worker(str(ws.name))
        if owner is not None:
            workers_of.setdefault(owner.name, []).append(ws)
    default_limit = float(cluster.job_options.walltime)
    views = []
    for record in cluster.table.live():
        workers = workers_of.get(record.name, [])
        idle = bool(workers) and all(
            not ws.processing and ws.status.name == "running" for ws in workers
        )
        state = record.state
        if state is JobState.PENDING and workers:
            state = JobState.RUNNING
        views.append(
            JobView(
                name=record.name,
                state=state,
                submit_time=record.submit_time or now,
                start_time=record.start_time or record.connected_time,
                time_limit=record.time_limit or default_limit,
                workers=len(workers),
                idle=idle,
                reason=record.reason,
                retiring=record.name in cluster.retiring,
            )
        )
    failed = tuple(f.end_time or now for f in cluster.failed_records)
    starts = [
        r.connected_time for r in cluster.table.records.values() if r.connected_time
    ]
    return ClusterSnapshot(
        target_workers=target,
        jobs=tuple(views),
        failed_starts=failed,
        last_start=max(starts) if starts else None,
    )


async def apply(cluster: HPCCluster, decision: ScaleDecision) -> None:
    """Make the cluster's job list follow ``decision`` (one submission for all
    new jobs, one cancel command for all jobs that go)."""
    for name in (*decision.cancel, *decision.retire):
        if cluster.worker_spec.pop(name, None) is not None:
            cluster.retiring.add(name)
    for _ in range(decision.submit):
        cluster.worker_spec.update(cluster.new_worker_spec())
    try:
        await cluster.sync_jobs()
    finally:
        cluster.retiring.difference_update(
            name for name in list(cluster.retiring) if name not in cluster.workers
        )
