"""The scheduler job of a cluster that outlives its notebook.

``python -m hpcdask.keeper ENTRY`` is what a scheduler job runs
(``scheduler_in="job"``, see :func:`hpcdask.script.render_scheduler_script`). It
makes the whole cluster here, in the job, from the registry entry ``ENTRY``
(:mod:`hpcdask.registry`): the scheduler with its dashboard and ``/hpc`` page,
the job manager (job table, poll loop, adaptive scaling, cost meter), which
submits the workers' jobs itself. Handles in notebooks
(:class:`hpcdask.handle.ClusterHandle`) drive it over the scheduler's own TLS
comm, through the ``hpcdask_*`` handlers of :class:`KeeperService`.

It ends, cancelling every worker job first, when a handle calls ``close()``,
when no client and no task were seen for the idle timeout
(:class:`hpcdask.idle.IdleClock`), or on SIGTERM (the batch system's walltime or
``scancel``); then it removes its registry entry and the job ends.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import signal
import socket
import sys
import time
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import dask.config

from hpcdask.cluster import CLUSTER_CLASSES, HPCCluster
from hpcdask.idle import IdleClock
from hpcdask.poolnames import pool_key
from hpcdask.registry import (
    SCHEDULER,
    entry_security,
    read_spec,
    remove_entry,
    write_json,
)

__all__ = ["KeeperService", "keep", "main"]

logger = logging.getLogger("hpcdask.keeper")

#: variables of the scheduler job's own allocation: the worker jobs it submits
#: must not inherit them (sbatch reads some SLURM_* as its options)
_JOB_VARIABLES = ("SLURM_", "SBATCH_", "SALLOC_", "PBS_", "SGE_TASK", "JOB_ID")
_KEPT = ("SLURM_CONF", "SGE_ROOT", "SGE_CELL")


class KeeperService:
    """The scheduler handlers through which handles drive the cluster.

    Results travel over the cluster's TLS comm; views and usage as pickles of
    hpcdask's own dataclasses (the handle's client already trusts this
    scheduler: Dask pickles over the same comm).
    """

    def __init__(self, cluster: HPCCluster, stop: asyncio.Event) -> None:
        self.cluster = cluster
        self.stop = stop

    def install(self, handlers: dict[str, Any]) -> None:
        handlers.update(
            {
                "hpcdask_scale": self.scale,
                "hpcdask_adapt": self.adapt,
                "hpcdask_view": self.view,
                "hpcdask_usage": self.usage,
                "hpcdask_job_script": self.job_script,
                "hpcdask_add_pool": self.add_pool,
                "hpcdask_close": self.close,
            }
        )

    async def scale(
        self,
        n: int | None = None,
        memory: str | int | None = None,
        cores: int | None = None,
        jobs: int = 0,
        pool: str | None = None,
    ) -> None:
        manager = self.cluster.manager
        key = pool_key(pool)
        manager.scale_to(manager.jobs_for(n, memory, cores, jobs, key), key)
        await self.cluster.sync_jobs()

    def adapt(self, arguments: Mapping[str, Any]) -> dict[str, int]:
        adaptive = self.cluster.adapt(**arguments)
        return {"minimum": adaptive.minimum, "maximum": adaptive.maximum}

    def view(self) -> bytes:
        return pickle.dumps(self.cluster.view())

    def usage(self, pool: str | None = None) -> bytes:
        return pickle.dumps(self.cluster.usage(pool=pool))

    def job_script(self, pool: str | None = None) -> str:
        return self.cluster.job_script(pool=pool)

    def add_pool(self, name: str, options: Mapping[str, Any]) -> None:
        self.cluster.add_pool(name, **options)

    def close(self) -> None:
        logger.info("close() called by a handle: the cluster ends")
        self.stop.set()


def scheduler_busy(scheduler: Any) -> tuple[int, bool]:
    """The clients connected to ``scheduler`` (its own fire-and-forget one left
    out) and whether any task is queued, processing or unrunnable."""
    clients = sum(1 for c in scheduler.clients if c != "fire-and-forget")
    busy = bool(scheduler.queued) or bool(scheduler.unrunnable)
    busy = busy or any(ws.processing for ws in scheduler.workers.values())
    return clients, busy


async def watch_idle(scheduler: Any, clock: IdleClock, stop: asyncio.Event) -> None:
    """Set ``stop`` once the cluster has been idle for the clock's timeout."""
    interval = min(5.0, max(clock.timeout / 4, 0.5))
    while not stop.is_set():
        clients, busy = scheduler_busy(scheduler)
        if clock.observe(clients, busy, time.monotonic()):
            logger.info(
                "no client and no task for %.0f s (idle timeout): the cluster ends",
                clock.idle_for(time.monotonic()),
            )
            stop.set()
            return
        await asyncio.sleep(interval)


def cluster_kwargs(spec: Mapping[str, Any], host: str) -> dict[str, Any]:
    """The cluster's arguments in the job: the notebook's, with the scheduler
    and its dashboard on this node's address (ports chosen free), reachable
    from the login node."""
    kwargs = dict(spec["kwargs"])
    options = dict(kwargs.get("scheduler_options") or {})
    if not kwargs.get("interface") and "interface" not in options:
        options.setdefault("host", host)
    options.setdefault("port", 0)
    options.setdefault("dashboard_address", f"{host}:0")
    kwargs["scheduler_options"] = options
    return kwargs


async def keep(directory: str) -> None:
    """Run the cluster of the registry entry ``directory`` until it ends."""
    from distributed.utils import get_ip

    spec = read_spec(directory)
    dask.config.set(spec["config"])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    cls = CLUSTER_CLASSES[spec["system"]]
    kwargs = cluster_kwargs(spec, get_ip())  # type: ignore[no-untyped-call]
    try:
        os.chdir(spec.get("workdir") or os.getcwd())
        cluster = cls(
            **kwargs,
            scheduler_in="here",
            security=entry_security(directory),
            asynchronous=True,
        )
        await cluster
        try:
            await _serve(cluster, spec, directory, stop)
        finally:
            logger.info("cancelling the cluster's jobs and closing its scheduler")
            await cluster.close()  # type: ignore[misc]  # awaitable: asynchronous
    finally:
        remove_entry(directory)
        logger.info("cluster %s ended; its registry entry is removed", spec["name"])


async def _serve(
    cluster: HPCCluster, spec: Mapping[str, Any], directory: str, stop: asyncio.Event
) -> None:
    scheduler = cluster.scheduler
    assert scheduler is not None
    cluster.name = spec["name"]
    KeeperService(cluster, stop).install(scheduler.handlers)
    dashboard = scheduler.services.get("dashboard")
    port = dashboard.port if dashboard is not None else 0
    write_json(
        directory,
        SCHEDULER,
        {
            "address": cluster.scheduler_address,
            "dashboard": f"{cluster.dashboard_host}:{port}" if port else "",
            "started": time.time(),
        },
    )
    logger.info(
        "cluster %s: scheduler at %s, dashboard %s, idle timeout %.0f s",
        spec["name"],
        cluster.scheduler_address,
        cluster.dashboard_link,
        spec["idle_timeout"],
    )
    clock = IdleClock(float(spec["idle_timeout"]))
    watcher = asyncio.ensure_future(watch_idle(scheduler, clock, stop))
    try:
        await stop.wait()
    finally:
        watcher.cancel()


def _clean_environment(environ: MutableMapping[str, str]) -> None:
    for key in list(environ):
        if key.startswith(_JOB_VARIABLES) and key not in _KEPT:
            del environ[key]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hpcdask.keeper ENTRY``: run the cluster; exit 0 when it ended
    cleanly."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m hpcdask.keeper REGISTRY-ENTRY", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {socket.gethostname()} %(name)s %(levelname)s %(message)s",
    )
    _clean_environment(os.environ)
    try:
        asyncio.run(keep(os.path.abspath(args[0])))
    except Exception:
        logger.exception("the cluster's scheduler job failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
