"""A cluster's worker pools together: adding them, scaling them by hand or
adaptively, and what each has been charged.

A cluster of one pool (the default pool) scales exactly as before pools
existed: one adaptive loop on the scheduler's own adaptive target
(:class:`hpcdask.probe.ClusterScaling`). With several pools, each runs its own
loop on its own work (:mod:`hpcdask.poolscaling`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hpcdask.adaptive import AdaptiveJobs
from hpcdask.config import AdaptiveSettings
from hpcdask.cost import Usage, measure_usage
from hpcdask.errors import InvalidOptionError
from hpcdask.fleet import Fleet
from hpcdask.jobs import JobTable
from hpcdask.models import ClusterTag, JobRecord
from hpcdask.options import JobOptions
from hpcdask.pools import DEFAULT_POOL, Pool, pool_label
from hpcdask.poolscaling import PoolDemand, PoolScaling
from hpcdask.poolview import PoolRow, pool_row
from hpcdask.probe import ClusterScaling, SchedulerProbe

__all__ = ["PoolSet"]

logger = logging.getLogger(__name__)


class PoolSet:
    """The pools of one cluster, by key (``""``: the default pool)."""

    def __init__(
        self,
        table: JobTable,
        probe: SchedulerProbe,
        tag: ClusterTag | None,
        render: Callable[[JobOptions, list[str], float | None], str],
    ) -> None:
        self.table = table
        self.probe = probe
        self.tag = tag
        self.render = render
        self.pools: dict[str, Pool] = {}

    def add(self, pool: str, opts: JobOptions) -> Pool:
        """A new pool of jobs with ``opts`` (adaptive scaling, if on, knows of
        it once ``adapt`` is called again)."""
        if pool in self.pools:
            raise InvalidOptionError("pool", pool, "this cluster has that pool already")
        self.pools[pool] = added = Pool(
            pool, opts, self.table, self.probe, self.tag, self.render
        )
        return added

    def get(self, pool: str) -> Pool:
        """The pool ``pool``; an error naming the pools there are if none."""
        if pool not in self.pools:
            known = ", ".join(pool_label(p) for p in self.pools)
            raise InvalidOptionError("pool", pool, f"no such pool (pools: {known})")
        return self.pools[pool]

    @property
    def default(self) -> Pool:
        return self.pools[DEFAULT_POOL]

    def items(self) -> list[tuple[str, Pool]]:
        return list(self.pools.items())

    def fleets(self) -> list[Fleet]:
        return [p.fleet for p in self.pools.values()]

    def __len__(self) -> int:
        return len(self.pools)

    # -- scaling ---------------------------------------------------------------

    def scale_to(self, jobs: int, pool: str = DEFAULT_POOL) -> None:
        """Want ``jobs`` jobs of ``pool``; adaptive scaling, if on, stops."""
        chosen = self.get(pool)
        if any(p.adaptive is not None for p in self.pools.values()):
            logger.info("scale() called: adaptive scaling stops")
            self.stop_adaptive()
        chosen.fleet.set_target(jobs)

    def adapt(
        self,
        settings: Mapping[str, AdaptiveSettings],
        cluster_maximum: int | None = None,
    ) -> AdaptiveJobs:
        """Adaptive scaling of each pool with its ``settings`` (see
        :func:`hpcdask.pools.pool_settings`), all pools' jobs together at most
        ``cluster_maximum``; start the loops in the event loop
        (:meth:`start_adaptive`). Returns the default pool's loop."""
        self.stop_adaptive()
        default = settings[DEFAULT_POOL]
        if len(self.pools) == 1:
            scaling = ClusterScaling(self.probe, self.default.fleet, default)
            self.default.adaptive = AdaptiveJobs(
                scaling, default.params, default.interval
            )
        else:
            self._adapt_pools(settings, cluster_maximum)
        for pool in self.pools.values():
            pool.fleet.replace_ended = False  # the policy decides
        adaptive = self.default.adaptive
        assert adaptive is not None
        return adaptive

    def _adapt_pools(
        self, settings: Mapping[str, AdaptiveSettings], cluster_maximum: int | None
    ) -> None:
        table = self.table
        default = settings[DEFAULT_POOL]
        demand = PoolDemand(
            self.probe,
            self.pools,
            lambda: max(default.target_duration, table.startup_time()),
            default.interval,
        )
        for name, pool in self.pools.items():

            def elsewhere(name: str = name) -> int:
                return sum(1 for r in table.live() if r.pool != name)

            own = settings[name]
            scaling = PoolScaling(
                pool, self.probe, demand, own, cluster_maximum, elsewhere
            )
            pool.adaptive = AdaptiveJobs(scaling, own.params, own.interval, pool.label)

    def start_adaptive(self) -> None:
        """Start every pool's adaptive loop (in the event loop's thread)."""
        for pool in self.pools.values():
            if pool.adaptive is not None:
                pool.adaptive.start()

    def stop_adaptive(self) -> None:
        for pool in self.pools.values():
            pool.stop_adaptive()

    # -- what is shown ---------------------------------------------------------

    def shape_reason(self) -> str:
        """Why the latest jobs of each adaptive pool asked for their walltime
        ("" when none was chosen); with several pools, each named."""
        several = len(self.pools) > 1
        reasons = [
            f"{pool.label}: {pool.adaptive.shape_reason}"
            if several
            else pool.adaptive.shape_reason
            for pool in self.pools.values()
            if pool.adaptive is not None and pool.adaptive.shape_reason
        ]
        return "; ".join(reasons)

    def rows(
        self,
        records: Sequence[JobRecord],
        workers: Sequence[Mapping[str, Any]],
        now: float,
    ) -> list[PoolRow]:
        """One display row per pool (``workers``: the scheduler's entries)."""
        connected: Counter[str] = Counter()
        for info in workers:
            record = self.table.job_of_worker(str(info.get("name")))
            if record is not None:
                connected[record.pool] += 1
        usage = self.usage_by_pool(now)
        return [
            pool_row(
                pool.label,
                pool.options,
                [r for r in records if r.pool == key],
                connected[key],
                usage[pool.label],
                None if pool.adaptive is None else pool.adaptive.params,
            )
            for key, pool in self.pools.items()
        ]

    # -- cost ------------------------------------------------------------------

    def usage_by_pool(self, now: float) -> dict[str, Usage]:
        """Each pool's charges up to ``now``, by the pool's label."""
        records = list(self.table.records.values())
        return {
            pool.label: measure_usage(
                [r for r in records if r.pool == key], pool.resources, now
            )
            for key, pool in self.pools.items()
        }
