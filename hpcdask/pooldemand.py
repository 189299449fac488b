"""The scheduler's work as :mod:`hpcdask.demand` reckons it, pool by pool.

Reads the in-process scheduler (no I/O): tasks waiting for a worker (queued,
unrunnable, or assigned to a worker whose threads are all busy) and tasks
running, grouped by their resource restrictions, with their expected run time;
and each pool's workers and memory. At most ``limit`` waiting tasks are looked
at per tick; the rest are counted as the ones looked at.

A kind of task that never ran is sized at ``target_duration``, so that each
such task asks a thread of its own (the scheduler's guess for them, 0.5 s, is
made for local workers that arrive within a second; see
:func:`hpcdask.probe.unmeasured_tasks`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from hpcdask.demand import PoolMemory, Work

if TYPE_CHECKING:
    from distributed.scheduler import Scheduler, TaskState

__all__ = ["read_work"]


def read_work(
    scheduler: Scheduler,
    pool_of_worker: Callable[[str], str | None],
    target_duration: float,
    limit: int = 10_000,
) -> tuple[list[Work], list[Work], dict[str, PoolMemory]]:
    """(waiting, running, memory by pool) of ``scheduler``'s tasks and workers;
    ``pool_of_worker`` maps a worker's name to its pool (``None``: not ours)."""

    def duration(ts: TaskState) -> float:
        average = float(ts.prefix.duration_average)
        if average < 0 and ts.prefix.max_exec_time <= 0:
            return target_duration  # never timed: a thread of its own
        return average if average >= 0 else float(scheduler.UNKNOWN_TASK_DURATION)

    waiting: Iterable[TaskState] = itertools.chain(
        scheduler.queued, scheduler.unrunnable
    )
    running: list[TaskState] = []
    memory: dict[str, PoolMemory] = {}
    for ws in scheduler.workers.values():
        assigned = list(ws.processing)
        running += assigned[: ws.nthreads]
        waiting = itertools.chain(waiting, assigned[ws.nthreads :])
        pool = pool_of_worker(str(ws.name))
        if pool is not None:
            before = memory.get(pool, PoolMemory())
            memory[pool] = PoolMemory(
                before.workers + 1,
                before.used + ws.nbytes,
                before.limit + ws.memory_limit,
            )
    total = len(scheduler.queued) + len(scheduler.unrunnable)
    total += sum(
        max(len(ws.processing) - ws.nthreads, 0) for ws in scheduler.workers.values()
    )
    looked_at = list(itertools.islice(waiting, limit))
    scale = total / len(looked_at) if looked_at else 1.0
    return (
        _grouped(looked_at, duration, scale),
        _grouped(running, duration, 1.0),
        memory,
    )


def _grouped(
    tasks: Iterable[TaskState], duration: Callable[[TaskState], float], scale: float
) -> list[Work]:
    """Tasks with the same restrictions as one :class:`Work` (``scale``: how
    many tasks each one stands for)."""
    groups: dict[tuple[tuple[str, float], ...], list[float]] = {}
    for ts in tasks:
        key = _key(ts.resource_restrictions or {})
        counted = groups.setdefault(key, [0.0, 0.0, 0.0])
        counted[0] += 1
        counted[1] += duration(ts)
        counted[2] = max(counted[2], float(ts.prefix.duration_average))
    return [
        Work(dict(key), round(n * scale), seconds * scale, longest)
        for key, (n, seconds, longest) in groups.items()
    ]


def _key(restrictions: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((str(k), float(v)) for k, v in restrictions.items()))
