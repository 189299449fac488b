"""A worker rank: one Dask worker (or nanny), closed by its own rank on STOP."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from hpcdask.mpi.control import Mailbox
from hpcdask.mpi.logs import logger
from hpcdask.mpi.roles import Tag

if TYPE_CHECKING:
    from hpcdask.mpi.control import ControlPlane
    from hpcdask.mpi.options import ClusterOptions

__all__ = ["WorkerRank", "main_module_hidden"]


class DaskServer(Protocol):
    """What the launcher uses of a scheduler, worker or nanny (or dask-cuda's
    worker): typed here, as distributed leaves these methods unannotated."""

    async def finished(self) -> None: ...

    async def close(self, timeout: float, reason: str) -> object: ...


class WorkerRank:
    """Start this rank's worker; close it on STOP; exit with EXIT's code.

    A worker that leaves without a STOP (its scheduler died, say) ends the job
    after ``failure_timeout``; so does a worker that cannot start, unless the
    cluster was closing anyway.
    """

    def __init__(self, control: ControlPlane, options: ClusterOptions) -> None:
        self.control = control
        self.options = options
        self.rank = control.rank

    async def run(self, address: str) -> int:
        """Serve until the scheduler rank sends EXIT; return its code."""
        options = self.options
        mailbox = Mailbox(self.control)
        stop = mailbox.future(Tag.STOP)
        exit_ = mailbox.future(Tag.EXIT)
        try:
            worker = await self._start(address, stop)
            if worker is None:  # the cluster closed while this worker started
                return await self._exit_code(exit_)
            finished = asyncio.ensure_future(worker.finished())
            events: list[asyncio.Future[Any]] = [finished, stop, exit_]
            await asyncio.wait(events, return_when=asyncio.FIRST_COMPLETED)
            if not finished.done():
                # STOP (or EXIT): this rank closes its own worker
                await self._close(worker, finished)
            elif not stop.done():
                # Left without a STOP: give a STOP in flight a moment to arrive.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(
                        asyncio.shield(stop), options.failure_timeout
                    )
                if not stop.done():
                    logger.error(
                        "the worker on MPI rank %d closed before the cluster shut "
                        "down (lost its scheduler?); ending the MPI job",
                        self.rank,
                    )
                    self.control.abort(1)
            return await self._exit_code(exit_)
        finally:
            mailbox.close()

    async def _start(
        self, address: str, stop: asyncio.Future[int]
    ) -> DaskServer | None:
        cls, kwargs = self.options.worker_spec(self.rank)
        try:
            worker: DaskServer = await cls(address, **kwargs)
        except Exception:
            if stop.done():
                return None
            logger.exception("the worker on MPI rank %d failed to start", self.rank)
            self.control.abort(1)
        return worker

    async def _close(self, worker: DaskServer, finished: asyncio.Future[None]) -> None:
        """Close this rank's worker (or nanny) the way its owner should.

        A nanny is closed through itself, so it stops its worker process with a
        message rather than the process closing under it; a worker closed from
        the scheduler's side would race with its nanny's stop-queue thread.
        """
        timeout = self.options.shutdown_timeout
        await asyncio.wait_for(
            worker.close(timeout=timeout / 2, reason="hpcdask-mpi-shutdown"), timeout
        )
        await asyncio.wait_for(finished, timeout)

    async def _exit_code(self, exit_: asyncio.Future[int]) -> int:
        try:
            return await asyncio.wait_for(
                asyncio.shield(exit_), self.options.shutdown_timeout
            )
        except asyncio.TimeoutError:
            logger.error(
                "rank %d: the scheduler did not finish the shutdown within %gs; "
                "ending the MPI job",
                self.rank,
                self.options.shutdown_timeout,
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
