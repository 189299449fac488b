"""Which worker pool a task needs, and how many workers each pool is worth.

Pure: the scheduler's tasks and workers arrive here as plain numbers
(:class:`Work`, :class:`PoolMemory`), read by :mod:`hpcdask.pooldemand`.

A cluster with several pools (:mod:`hpcdask.pools`) sizes each one from the
tasks that can only run there. Distributed's worker resources decide it: a task
annotated ``resources={"GPU": 1}`` runs only on workers that advertise at least
one ``GPU``. So:

* a task with resource restrictions belongs to the cheapest pool whose workers
  offer all of them (cost: cores, plus :data:`GPU_COST` cores per GPU, per
  worker), pools in the order they were added breaking ties; a task no pool can
  run belongs to none (the scheduler keeps it waiting, and the cluster says so);
* a task without restrictions belongs to the default pool: the pool the
  cluster was made with. It may still run on any worker that is free (the
  scheduler places it), but it never grows another pool.

Each pool's target is then reckoned as the scheduler reckons its adaptive
target, over that pool's own work: seconds of work waiting and running, over
the target duration, in threads, at most one thread per task, in whole
workers (a worker running as many tasks of a kind at once as its threads and
its resources allow: one ``{"GPU": 1}`` task at a time on a ``GPU=1``
worker), at least one while a task waits; twice the pool's workers when their
memory is more than 60% used; and, as the scheduler keeps workers when it
scales down, enough to hold the data the pool's workers keep (twice its size
in memory) unless other pools' workers have room for it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from hpcdask.models import PolicyParams

__all__ = [
    "GPU_COST",
    "Offer",
    "PoolMemory",
    "Work",
    "pool_targets",
    "pool_task_durations",
    "route",
    "share_of_maximum",
]

#: a GPU costs as much as this many cores when pools are compared for a task
#: (core-hour rates of GPU nodes are typically tens of times a core's)
GPU_COST = 32.0


@dataclass(frozen=True)
class Offer:
    """What one worker of a pool offers."""

    pool: str
    resources: Mapping[str, float]
    threads: int
    cores: float
    gpus: float = 0.0

    @property
    def cost(self) -> float:
        return self.cores + GPU_COST * self.gpus

    def runs(self, restrictions: Mapping[str, float]) -> bool:
        """Whether a task with these resource restrictions can run here."""
        return all(self.resources.get(k, 0.0) >= v for k, v in restrictions.items())

    def at_once(self, restrictions: Mapping[str, float]) -> int:
        """How many tasks with these restrictions one worker runs at once: a
        thread each, and no more than its resources hold (a worker of 8
        threads offering ``GPU=1`` runs one ``{"GPU": 1}`` task at a time)."""
        fits = [
            math.floor(self.resources.get(k, 0.0) / v + 1e-9)
            for k, v in restrictions.items()
            if v > 0
        ]
        return max(1, min([max(self.threads, 1), *fits]))


@dataclass(frozen=True)
class Work:
    """Tasks that share their resource restrictions: waiting for a worker, or
    running (their expected run time left, as the scheduler's occupancy)."""

    restrictions: Mapping[str, float]
    tasks: int
    seconds: float
    #: the longest average run time of the timed kinds among them (0: none)
    longest: float = 0.0


@dataclass(frozen=True)
class PoolMemory:
    """A pool's connected workers and their memory."""

    workers: int = 0
    used: float = 0.0
    limit: float = 0.0


def route(
    restrictions: Mapping[str, float], offers: Sequence[Offer], default: str
) -> str | None:
    """The pool a task with these restrictions belongs to (see the module's
    docstring); ``None`` when no pool's workers can run it."""
    if not restrictions:
        return default
    fitting = [o for o in offers if o.runs(restrictions)]
    if not fitting:
        return None
    return min(fitting, key=lambda o: o.cost).pool  # min keeps the first of ties


def pool_targets(
    waiting: Iterable[Work],
    running: Iterable[Work],
    memory: Mapping[str, PoolMemory],
    offers: Sequence[Offer],
    default: str,
    target_duration: float,
) -> tuple[dict[str, int], int]:
    """Workers each pool is worth, and how many waiting tasks no pool can run.

    Running tasks count for the pool they belong to, not for the worker that
    runs them: a task without restrictions running on a GPU worker keeps the
    default pool, not the GPU pool, busy.
    """
    # in worker-seconds and workers' worth of tasks: a group's tasks share a
    # worker as far as its threads and resources let them (Offer.at_once)
    seconds = {o.pool: 0.0 for o in offers}
    tasks = {o.pool: 0.0 for o in offers}
    waiting_tasks = {o.pool: 0 for o in offers}
    by_pool = {o.pool: o for o in offers}
    stranded = 0
    for group, is_waiting in [
        *((w, True) for w in waiting),
        *((r, False) for r in running),
    ]:
        pool = route(group.restrictions, offers, default)
        if pool is None:
            stranded += group.tasks if is_waiting else 0
            continue
        at_once = by_pool[pool].at_once(group.restrictions)
        seconds[pool] += group.seconds / at_once
        tasks[pool] += group.tasks / at_once
        waiting_tasks[pool] += group.tasks if is_waiting else 0
    targets = {}
    for offer in offers:
        # the scheduler's rule: work over the target duration, a thread per
        # task at most, in whole workers (the epsilon absorbs float sums)
        worth = min(seconds[offer.pool] / target_duration, tasks[offer.pool])
        workers = math.ceil(worth - 1e-9)
        if waiting_tasks[offer.pool] and workers == 0:
            workers = 1
        own = memory.get(offer.pool, PoolMemory())
        if own.limit > 0 and own.used > 0.6 * own.limit:
            workers = max(workers, 2 * own.workers)
        workers = max(workers, _keepers(offer.pool, memory))
        targets[offer.pool] = workers
    return targets, stranded


def pool_task_durations(
    work: Iterable[Work], offers: Sequence[Offer], default: str
) -> dict[str, float]:
    """The longest average run time of the kinds of tasks each pool has to run
    (0: none timed): a pool's jobs drain ahead of their walltime by their own
    tasks' time, not by another pool's longer ones."""
    longest = {o.pool: 0.0 for o in offers}
    for group in work:
        pool = route(group.restrictions, offers, default)
        if pool is not None:
            longest[pool] = max(longest[pool], group.longest)
    return longest


def _keepers(pool: str, memory: Mapping[str, PoolMemory]) -> int:
    """Workers ``pool`` keeps for the data its workers hold, as the scheduler
    keeps workers on scale-down (memory at least twice the data): none when the
    other pools' workers have room for it, else as many as hold it."""
    own = memory.get(pool, PoolMemory())
    if own.used <= 0 or own.workers == 0:
        return 0
    room = sum(m.limit - 2 * m.used for p, m in memory.items() if p != pool)
    if room >= 2 * own.used:
        return 0
    per_worker = own.limit / own.workers
    return min(own.workers, max(1, math.ceil(2 * own.used / per_worker)))


def share_of_maximum(
    params: PolicyParams, cluster_maximum: int | None, jobs_elsewhere: int
) -> PolicyParams:
    """One pool's policy knobs under a cluster-wide ``maximum_jobs``: at most
    what the other pools' live jobs leave of it (and never below the pool's
    own minimum, which the user asked for)."""
    if cluster_maximum is None:
        return params
    room = max(cluster_maximum - jobs_elsewhere, params.minimum_jobs)
    if room >= params.maximum_jobs:
        return params
    return replace(params, maximum_jobs=room)
