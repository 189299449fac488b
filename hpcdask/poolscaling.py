"""Adaptive scaling of a cluster with several worker pools.

Each pool runs the same pure policy (:func:`hpcdask.policy.decide`) in its own
loop (:class:`~hpcdask.adaptive.AdaptiveJobs`), on a snapshot of its own jobs,
with its own target: the workers its own work is worth
(:func:`hpcdask.demand.pool_targets`, read once for all pools by
:class:`PoolDemand`). A cluster-wide ``maximum_jobs`` is shared: each pool may
grow into what the other pools' live jobs leave of it
(:func:`hpcdask.demand.share_of_maximum`). When a pool's settings choose job
shapes, its snapshots carry the queue's forecast for the pool's own jobs (its
partitions, cores, memory and walltime: :func:`hpcdask.startprobe.start_probe`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace

from hpcdask.config import AdaptiveSettings
from hpcdask.demand import Offer, pool_targets, pool_task_durations, share_of_maximum
from hpcdask.models import ClusterSnapshot, PolicyParams, ScaleDecision
from hpcdask.pooldemand import read_work
from hpcdask.pools import DEFAULT_POOL, Pool, pool_label
from hpcdask.probe import UNMEASURED_SCAN_LIMIT, SchedulerProbe
from hpcdask.startprobe import start_probe, with_forecast

__all__ = ["PoolDemand", "PoolScaling"]

logger = logging.getLogger(__name__)


class PoolDemand:
    """Every pool's target, read from the scheduler at most once per
    ``interval`` (the pools' loops tick one after the other)."""

    def __init__(
        self,
        probe: SchedulerProbe,
        pools: Mapping[str, Pool],
        target_duration: Callable[[], float],
        interval: float,
    ) -> None:
        self.probe = probe
        self.pools = pools
        self.target_duration = target_duration
        self.interval = interval
        self._read_at = float("-inf")
        self._targets: dict[str, int] = {}
        self._durations: dict[str, float] = {}
        self._stranded_said = 0

    def target(self, pool: str, now: float) -> int:
        """The workers ``pool``'s work is worth at ``now``."""
        self._refresh(now)
        return self._targets.get(pool, 0)

    def task_duration(self, pool: str, now: float) -> float:
        """The longest average run time of the tasks ``pool`` has to run."""
        self._refresh(now)
        return self._durations.get(pool, 0.0)

    def _refresh(self, now: float) -> None:
        if now - self._read_at >= self.interval / 2:
            self._read()
            self._read_at = now

    def _read(self) -> None:
        offers: list[Offer] = [p.offer() for p in self.pools.values()]
        table = self.probe.table

        def pool_of(worker: str) -> str | None:
            record = table.job_of_worker(worker)
            return None if record is None else record.pool

        duration = self.target_duration()
        waiting, running, memory = read_work(
            self.probe.scheduler, pool_of, duration, UNMEASURED_SCAN_LIMIT
        )
        targets, stranded = pool_targets(
            waiting, running, memory, offers, DEFAULT_POOL, duration
        )
        self._targets = targets
        self._durations = pool_task_durations(
            [*waiting, *running], offers, DEFAULT_POOL
        )
        if stranded and stranded != self._stranded_said:
            pools = ", ".join(
                f"{pool_label(o.pool)}: {dict(o.resources) or 'none'}" for o in offers
            )
            logger.warning(
                "%d task(s) need resources no pool's workers offer (%s): they "
                "wait; add a pool that offers them",
                stranded,
                pools,
            )
        self._stranded_said = stranded


class PoolScaling:
    """What one pool's adaptive loop sees (see
    :class:`hpcdask.adaptive.Scalable`): its jobs, its target, its share of
    the cluster-wide maximum."""

    def __init__(
        self,
        pool: Pool,
        probe: SchedulerProbe,
        demand: PoolDemand,
        settings: AdaptiveSettings,
        cluster_maximum: int | None,
        jobs_elsewhere: Callable[[], int],
    ) -> None:
        self.pool = pool
        self.probe = probe
        self.demand = demand
        self.params = settings.params
        self.cluster_maximum = cluster_maximum
        self.jobs_elsewhere = jobs_elsewhere
        self.starts = start_probe(probe.table.backend, settings)

    def snapshot(self, now: float) -> ClusterSnapshot:
        duration = max(self.demand.target_duration(), 0.0)
        snapshot = self.probe.snapshot(
            now,
            duration,
            leaving=self.pool.fleet.leaving,
            pool=self.pool.name,
            target=self.demand.target(self.pool.name, now),
            time_limit=self.pool.options.walltime,
        )
        # drain ahead of the walltime by this pool's own tasks' time
        own = self.demand.task_duration(self.pool.name, now)
        snapshot = replace(snapshot, task_duration=own)
        return with_forecast(snapshot, now, self.limits(self.params), self.starts)

    def limits(self, params: PolicyParams) -> PolicyParams:
        return share_of_maximum(params, self.cluster_maximum, self.jobs_elsewhere())

    async def apply(self, decision: ScaleDecision) -> None:
        await self.pool.fleet.apply(decision)

    def stop(self) -> None:
        """The pool's adaptive scaling stops: abandon a forecast being read."""
        if self.starts is not None:
            self.starts.stop()
