"""The scheduler rank: the Dask scheduler, and the conductor of the shutdown."""

from __future__ import annotations

import asyncio
import pickle
from typing import TYPE_CHECKING, Any

from hpcdask.mpi.plugins import QuietClose, ShutdownPlugin
from hpcdask.mpi.roles import Tag

if TYPE_CHECKING:
    from distributed import Scheduler

    from hpcdask.mpi.control import ControlPlane, Mailbox
    from hpcdask.mpi.options import ClusterOptions
    from hpcdask.mpi.roles import Roles
    from hpcdask.mpi.servers import DaskServer

__all__ = ["SchedulerRank"]


class SchedulerRank:
    """Run the scheduler until the client's DONE (or a shutdown), then close
    the workers, the scheduler, and send every other rank EXIT with the code.

    :attr:`address` resolves to the scheduler's address once every rank can
    connect (a worker or client on this same rank waits for it).
    """

    def __init__(
        self,
        control: ControlPlane,
        roles: Roles,
        options: ClusterOptions,
        mailbox: Mailbox,
    ) -> None:
        self.control = control
        self.roles = roles
        self.options = options
        self.mailbox = mailbox
        self.address: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def run(self) -> int:
        """Serve until the cluster is closed; return the exit code of the run."""
        scheduler = await self._start()
        code = await self._serve(scheduler)
        for rank in range(self.roles.size):
            if rank != self.control.rank:
                self.control.send(rank, Tag.EXIT, code)
        self.control.flush(self.options.failure_timeout)
        return code

    async def _start(self) -> Scheduler:
        """Start the scheduler, its plugins, then tell the other ranks where."""
        from distributed import Scheduler

        control = self.control
        try:
            scheduler: Scheduler = await Scheduler(**self.options.scheduler_kwargs())
        except Exception as e:
            control.publish_failure(repr(e))
            raise
        scheduler.add_plugin(
            ShutdownPlugin(scheduler, control, self.roles, self.options)
        )
        await scheduler.register_worker_plugin(
            None, pickle.dumps(QuietClose()), QuietClose.name, idempotent=True
        )
        control.publish_address(scheduler.address)
        self.address.set_result(scheduler.address)
        return scheduler

    async def _serve(self, scheduler: Scheduler) -> int:
        """Wait for the client's DONE, or for a shutdown when there is no client."""
        server: DaskServer = scheduler  # its finished() has no annotations
        if self.roles.client is None:
            await server.finished()
            return 0
        done = self.mailbox.future(Tag.DONE)
        closed = asyncio.ensure_future(server.finished())
        # The script may shut the scheduler down itself and still run on.
        events: list[asyncio.Future[Any]] = [done, closed]
        await asyncio.wait(events, return_when=asyncio.FIRST_COMPLETED)
        code = await done
        closed.cancel()
        await scheduler.close(reason="hpcdask-mpi: the client script ended")
        return code
