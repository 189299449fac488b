"""A worker rank: one Dask worker (or nanny), closed by its own rank on STOP."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sys
from collections.abc import Awaitable, Iterator
from typing import TYPE_CHECKING, Any

from hpcdask.mpi.logs import logger
from hpcdask.mpi.roles import Tag

if TYPE_CHECKING:
    from hpcdask.mpi.control import ControlPlane, Mailbox
    from hpcdask.mpi.options import ClusterOptions
    from hpcdask.mpi.roles import Roles
    from hpcdask.mpi.servers import DaskServer

__all__ = ["WorkerRank", "main_module_hidden"]

_REASON = "hpcdask-mpi-shutdown"


class WorkerRank:
    """Start this rank's worker; close it on STOP; return EXIT's code.

    A worker that leaves without a STOP (its scheduler died, say) ends the job
    after ``failure_timeout``; so does a worker that cannot start, unless the
    cluster was closing anyway. On the scheduler's own rank the scheduler gives
    the code; with a scheduler elsewhere (no scheduler rank), the worker serves
    until that scheduler closes it, and the code is 0.
    """

    def __init__(
        self,
        control: ControlPlane,
        roles: Roles,
        options: ClusterOptions,
        mailbox: Mailbox | None,
    ) -> None:
        self.control = control
        self.roles = roles
        self.options = options
        self.mailbox = mailbox  # None: no scheduler rank, no messages
        self.rank = control.rank

    async def run(self, address: Awaitable[str]) -> int:
        """Serve until the cluster closes; return this rank's exit code."""
        if self.mailbox is None:
            # a scheduler elsewhere: serve until it closes this worker
            worker = await self._start(await address, None)
            if worker is not None:
                await worker.finished()
            return 0
        stop = self.mailbox.future(Tag.STOP)
        exit_ = self.mailbox.future(Tag.EXIT)
        worker = await self._start(await address, stop)
        if worker is not None:
            await self._serve(worker, stop, exit_)
        if self.rank == self.roles.scheduler:
            return 0
        return await self._exit_code(exit_)

    async def _serve(
        self, worker: DaskServer, stop: asyncio.Future[int], exit_: asyncio.Future[int]
    ) -> None:
        """Until STOP, then close the worker; or end the job if it leaves alone."""
        finished = asyncio.ensure_future(worker.finished())
        events: list[asyncio.Future[Any]] = [finished, stop, exit_]
        await asyncio.wait(events, return_when=asyncio.FIRST_COMPLETED)
        if not finished.done():
            # STOP (or EXIT): this rank closes its own worker
            await self._close(worker, finished)
            return
        if not stop.done():
            # Left without a STOP: give a STOP in flight a moment to arrive.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    asyncio.shield(stop), self.options.failure_timeout
                )
        if not stop.done():
            logger.error(
                "the worker on rank %d closed before the cluster shut down "
                "(lost its scheduler?); ending the %s",
                self.rank,
                self.control.job,
            )
            self.control.abort(1)

    async def _start(
        self, address: str, stop: asyncio.Future[int] | None
    ) -> DaskServer | None:
        """This rank's worker, started; ``None`` if the cluster closed first."""
        cls, kwargs = self.options.worker_spec(self.rank)
        try:
            with main_module_hidden():
                worker: DaskServer = cls(address, **kwargs)
                # the object itself: awaiting dask-cuda's worker gives None
                await worker
        except Exception:
            if stop is not None and stop.done():
                return None
            logger.exception("the worker on rank %d failed to start", self.rank)
            self.control.abort(1)
        return worker

    async def _close(self, worker: DaskServer, finished: asyncio.Future[None]) -> None:
        """Close this rank's worker (or nanny) the way its owner should.

        A nanny is closed through itself, so it stops its worker process with a
        message rather than the process closing under it; a worker closed from
        the scheduler's side would race with its nanny's stop-queue thread.
        """
        timeout = self.options.shutdown_timeout
        parameters = inspect.signature(worker.close).parameters
        if "reason" in parameters:
            closing = worker.close(timeout=timeout / 2, reason=_REASON)
        else:  # dask-cuda's worker closes its nannies without a reason
            closing = worker.close(timeout=timeout / 2)
        await asyncio.wait_for(closing, timeout)
        await asyncio.wait_for(finished, timeout)

    async def _exit_code(self, exit_: asyncio.Future[int]) -> int:
        try:
            return await asyncio.wait_for(
                asyncio.shield(exit_), self.options.shutdown_timeout
            )
        except asyncio.TimeoutError:
            logger.error(
                "rank %d: the scheduler did not finish the shutdown within %gs; "
                "ending the %s",
                self.rank,
                self.options.shutdown_timeout,
                self.control.job,
            )
            self.control.abort(1)


@contextlib.contextmanager
def main_module_hidden() -> Iterator[None]:
    """Keep multiprocessing from re-running the main script in new processes.

    A nanny starts its worker with the ``spawn`` method, which imports the
    parent's main module again; that module is the user's script, which must run
    on the client rank only.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    names = ("__file__", "__spec__")
    saved: dict[str, object] = {
        n: main.__dict__[n] for n in names if n in main.__dict__
    }
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)
