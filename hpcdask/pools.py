"""Worker pools: several job shapes in one cluster.

A cluster is made with one pool, the default pool (its constructor's job
options). ``cluster.add_pool("gpu", queue="gpu", cores=4, memory="32GB",
gpus=1)`` (or ``pools={"gpu": {...}}``, or a profile's ``pools``) adds another:
its jobs have their own options, and take from the cluster's those that say
how jobs run rather than what they hold (python, prologue, account, walltime,
log directory, interface, ...). What a job holds is the pool's own:
:data:`SHAPE_OPTIONS` are never taken from the default pool.

Each pool has its own :class:`~hpcdask.fleet.Fleet` (its wanted jobs, named
``<name>-<pool>-<n>``) and, when adaptive, its own policy loop; the job table,
the poll loop, the tag and the scheduler are the cluster's. Which pool a task
needs, and so how each pool is sized, is :mod:`hpcdask.demand`'s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dask.utils import parse_bytes

from hpcdask.adaptive import AdaptiveJobs
from hpcdask.config import (
    AdaptArguments,
    AdaptiveSettings,
    adaptive_settings,
    resolve_job_options,
)
from hpcdask.cost import job_resources
from hpcdask.demand import Offer
from hpcdask.errors import InvalidOptionError
from hpcdask.fleet import Fleet, SchedulerActions
from hpcdask.jobs import JobTable, worker_suffixes
from hpcdask.models import ClusterTag
from hpcdask.options import JobOptions
from hpcdask.poolnames import (
    DEFAULT_POOL,
    check_pool_name,
    checked_pools,
    pool_key,
    pool_label,
)

__all__ = [
    "DEFAULT_POOL",
    "SHAPE_OPTIONS",
    "Pool",
    "check_pool_name",
    "checked_pools",
    "pool_key",
    "pool_label",
    "pool_options",
    "pool_settings",
]

#: what a job holds: a pool gives its own, or config's, never the default pool's
SHAPE_OPTIONS = frozenset(
    {
        "cores", "memory", "processes", "gpus", "resources", "nodes", "job_cpu",
        "job_mem", "resource_spec", "job_extra_directives", "name",
        "job_name",
    }
)  # fmt: skip


def pool_options(
    system: str,
    cluster_kwargs: Mapping[str, Any],
    default: JobOptions,
    pool: str,
    overrides: Mapping[str, Any],
) -> JobOptions:
    """The job options of ``pool``: ``overrides``, then the cluster's arguments
    except :data:`SHAPE_OPTIONS`, then config. Its jobs are named after the
    default pool's: ``<name>-<pool>``."""
    kwargs = {k: v for k, v in cluster_kwargs.items() if k not in SHAPE_OPTIONS}
    kwargs |= {
        "name": f"{default.name}-{pool}",
        "job_name": f"{default.job_name}-{pool}",
    }
    kwargs |= overrides
    try:
        return resolve_job_options(system, **kwargs)
    except InvalidOptionError as e:
        why = e.why
        if e.option in SHAPE_OPTIONS and e.option not in overrides:
            why += "; a pool's job shape is its own, not the default pool's"
        raise InvalidOptionError(f"pools.{pool}.{e.option}", e.value, why) from e


class Pool:
    """One pool of a cluster: its options, what one job holds, its fleet and
    (when adaptive) its policy loop."""

    def __init__(
        self,
        pool: str,
        opts: JobOptions,
        table: JobTable,
        scheduler: SchedulerActions,
        tag: ClusterTag | None,
        render: Callable[[JobOptions, list[str], float | None], str],
    ) -> None:
        self.name = pool
        self.options = opts
        self.resources = job_resources(opts, table.backend.system)
        self.fleet = Fleet(
            table,
            lambda names, walltime: render(opts, names, walltime),
            opts.name,
            worker_suffixes(opts),
            scheduler,
            tag,
            pool=pool,
            options=opts,
        )
        self.adaptive: AdaptiveJobs | None = None

    @property
    def label(self) -> str:
        return pool_label(self.name)

    def offer(self) -> Offer:
        """What each worker of this pool offers tasks (see
        :mod:`hpcdask.demand`)."""
        opts = self.options
        return Offer(
            self.name,
            opts.worker_resources,
            opts.threads_per_worker,
            cores=opts.cores / opts.processes,
            gpus=opts.gpus / opts.processes,
        )

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
            wanted = max(wanted, math.ceil(n / opts.workers_per_job))
        if memory is not None:
            wanted = max(wanted, math.ceil(parse_bytes(memory) / opts.memory_per_job))
        if cores is not None:
            wanted = max(wanted, math.ceil(cores / opts.cores_per_job))
        return wanted

    def stop_adaptive(self) -> None:
        """Stop this pool's policy loop; its ended jobs are replaced again."""
        if self.adaptive is not None:
            self.adaptive.stop()
            self.adaptive = None
        self.fleet.replace_ended = True


#: adapt()'s bounds other than maximum_jobs: the default pool's only
_DEFAULT_POOL_BOUNDS = (
    "minimum", "maximum", "minimum_jobs", "minimum_cores", "maximum_cores",
    "minimum_memory", "maximum_memory",
)  # fmt: skip


def pool_settings(
    options: Mapping[str, JobOptions], arguments: AdaptArguments
) -> tuple[dict[str, AdaptiveSettings], int | None]:
    """Each pool's adaptive settings, and the cluster-wide ``maximum_jobs``.

    ``arguments`` are ``adapt()``'s: ``pools={"gpu": (0, 2), ...}`` bounds
    pools in jobs (``"default"`` for the default pool); the other bounds are
    the default pool's, as in a cluster of one pool; ``maximum_jobs`` also
    caps the jobs of all pools together; the other knobs hold for every pool.
    A pool without bounds scales from 0 to that cap.
    """
    bounds = dict(arguments.get("pools") or {})
    cluster_maximum = arguments.get("maximum_jobs")
    knobs: dict[str, Any] = {
        k: v for k, v in arguments.items() if k not in (*_DEFAULT_POOL_BOUNDS, "pools")
    }
    settings = {}
    for pool, opts in options.items():
        given = bounds.pop(pool_label(pool), None)
        if given is None and pool == DEFAULT_POOL:
            settings[pool] = adaptive_settings(opts, **arguments)
            continue
        if pool == DEFAULT_POOL and set(_DEFAULT_POOL_BOUNDS) & set(arguments):
            why = (
                "the default pool's bounds are given twice (pools= and minimum/maximum)"
            )
            raise InvalidOptionError("adapt", dict(arguments), why)
        low, high = _bounds(pool_label(pool), given)
        if cluster_maximum is not None:
            high = min(high, cluster_maximum) if high is not None else cluster_maximum
        knobs_of_pool = {**knobs, "minimum_jobs": low, "maximum_jobs": high}
        settings[pool] = adaptive_settings(opts, **knobs_of_pool)
    if bounds:
        known = ", ".join(pool_label(p) for p in options)
        why = f"no such pool(s): {', '.join(bounds)} (pools: {known})"
        raise InvalidOptionError("adapt(pools=...)", dict(bounds), why)
    return settings, cluster_maximum


def _bounds(label: str, given: Sequence[int] | None) -> tuple[int, int | None]:
    """A pool's ``(minimum_jobs, maximum_jobs)``; none given: 0 and no maximum."""
    if given is None:
        return 0, None
    if (
        isinstance(given, (str, bytes))
        or not isinstance(given, Sequence)
        or len(given) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in given)
    ):
        why = "expected (minimum_jobs, maximum_jobs), two whole numbers"
        raise InvalidOptionError(f"adapt(pools={{{label!r}: ...}})", given, why)
    return given[0], given[1]
