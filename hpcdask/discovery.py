"""dask-ctl's discovery of hpcdask clusters (entry point ``dask_cluster_discovery``).

dask-ctl (``dask cluster list``, ``dask_ctl.get_cluster(name)``) asks every
registered discovery function for ``(name, class)`` pairs, then calls
``class.from_name(name)``: here, the running scheduler-job clusters of the
registry (:mod:`hpcdask.lookup`, stale entries removed) and
:class:`~hpcdask.handle.ClusterHandle`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from hpcdask.config import scheduler_job_config
from hpcdask.handle import ClusterHandle
from hpcdask.jobmode import registry_root
from hpcdask.lookup import live_clusters

__all__ = ["discover"]


async def discover() -> AsyncIterator[tuple[str, type[ClusterHandle]]]:
    """The running scheduler-job clusters of this user, with the class that
    connects to each by name."""
    root = registry_root(scheduler_job_config()[2])
    for entry in await live_clusters(root):
        if entry.running:
            yield entry.name, ClusterHandle
