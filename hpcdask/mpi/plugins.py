"""The scheduler's and the workers' parts of an orderly shutdown.

:class:`ShutdownPlugin` (on the scheduler) has every worker rank close its own
worker before the scheduler closes, and ends the job when a worker rank is lost.
:class:`QuietClose` (on each worker) stops the worker's calls to the scheduler
before it is closed, so no call is in flight when connections close.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from distributed.diagnostics.plugin import SchedulerPlugin, WorkerPlugin

from hpcdask.mpi.logs import logger
from hpcdask.mpi.roles import POLL_INTERVAL, RankWatch, Roles, Tag, rank_of

if TYPE_CHECKING:
    from distributed import Scheduler, Worker

    from hpcdask.mpi.control import ControlPlane
    from hpcdask.mpi.options import ClusterOptions

__all__ = ["QuietClose", "ShutdownPlugin"]


class ShutdownPlugin(SchedulerPlugin):
    """Close workers before the scheduler; watch that worker ranks stay."""

    name = "hpcdask-mpi"

    def __init__(
        self,
        scheduler: Scheduler,
        control: ControlPlane,
        roles: Roles,
        options: ClusterOptions,
    ) -> None:
        self.scheduler = scheduler
        self.control = control
        self.roles = roles
        self.options = options
        self.watch = RankWatch(options.failure_timeout)
        self.closing = False
        self._ranks: dict[str, int] = {}

    def add_worker(self, scheduler: Scheduler, worker: str) -> None:
        ws = scheduler.workers.get(worker)
        rank = rank_of(ws.name, self.options.worker_name) if ws is not None else None
        if rank is not None and rank in self.roles.workers:
            self._ranks[worker] = rank
            self.watch.joined(rank)

    def remove_worker(self, scheduler: Scheduler, worker: str, **kwargs: Any) -> None:
        rank = self._ranks.pop(worker, None)
        if rank is None or self.closing:
            return
        self.watch.left(rank, time.monotonic())
        asyncio.get_running_loop().call_later(
            self.options.failure_timeout + POLL_INTERVAL, self._check_lost
        )

    def _check_lost(self) -> None:
        lost = self.watch.overdue(time.monotonic())
        if lost and not self.closing:
            logger.error(
                "the worker(s) on rank(s) %s left the scheduler and did not "
                "come back within %gs; ending the %s",
                ", ".join(map(str, lost)),
                self.options.failure_timeout,
                self.control.job,
            )
            self.control.abort(1)

    async def before_close(self) -> None:
        """Quiesce the workers, have their ranks close them, wait until all left.

        Each worker rank closes its own worker (or nanny) when it gets STOP;
        workers that no rank owns (connected from elsewhere) are asked by the
        scheduler.
        """
        self.closing = True
        scheduler = self.scheduler
        addresses = list(scheduler.workers)
        # no heartbeat may be on its way when a worker closes its connections
        await asyncio.gather(*(self._quiesce(a) for a in addresses))
        for rank in self.roles.workers:
            self.control.send(rank, Tag.STOP, 0)
        for address in addresses:
            if address not in self._ranks:
                scheduler.close_worker(address)
        timeout = self.options.shutdown_timeout / 2
        deadline = time.monotonic() + timeout
        while scheduler.workers and time.monotonic() < deadline:
            await asyncio.sleep(POLL_INTERVAL)
        if scheduler.workers:
            logger.warning(
                "%d worker(s) did not close within %gs; closing the scheduler anyway",
                len(scheduler.workers),
                timeout,
            )

    async def _quiesce(self, address: str) -> None:
        rpc: Any = self.scheduler.rpc(address)
        try:
            await asyncio.wait_for(
                rpc.hpcdask_mpi_quiesce(), self.options.shutdown_timeout / 4
            )
        except Exception as e:  # the worker will be closed all the same
            logger.warning(
                "could not quiesce worker %s before closing it: %r", address, e
            )


class QuietClose(WorkerPlugin):
    """Stop calling the scheduler before the worker is closed.

    A worker closing its connections while a heartbeat is on its way logs
    "Failed to communicate with scheduler during heartbeat" with a traceback, a
    race of :meth:`distributed.Worker.close`. The scheduler rank first asks each
    worker to stop its heartbeats and waits for the last one, so nothing is in
    flight when the worker closes.
    """

    name = "hpcdask-mpi-quiet-close"

    def setup(self, worker: Worker) -> None:
        self.worker = worker
        self.in_flight: set[asyncio.Future[object]] = set()
        heartbeat = worker.periodic_callbacks.get("heartbeat")
        if heartbeat is not None:
            beat = heartbeat.callback

            async def tracked_heartbeat() -> None:
                call = beat()
                if call is None:
                    return
                task: asyncio.Future[object] = asyncio.ensure_future(call)
                self.in_flight.add(task)
                try:
                    await task
                finally:
                    self.in_flight.discard(task)

            heartbeat.callback = tracked_heartbeat
        worker.handlers["hpcdask_mpi_quiesce"] = self.quiesce

    async def quiesce(self) -> str:
        """Stop the periodic calls to the scheduler; wait for one in flight."""
        for name in ("heartbeat", "keep-alive"):
            callback = self.worker.periodic_callbacks.get(name)
            if callback is not None:
                callback.stop()
        if self.in_flight:
            await asyncio.wait(set(self.in_flight))
        return "OK"
