"""One rank's part: its scheduler and worker in one event loop, and a client
beside them when the rank has one.

:func:`launch` is what every rank of every launcher runs; the control plane
(MPI or Slurm tasks) is its argument, so the same rank-role classes serve both.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from hpcdask.mpi.client import ClientRank
from hpcdask.mpi.control import Mailbox
from hpcdask.mpi.logs import logger
from hpcdask.mpi.roles import Tag
from hpcdask.mpi.scheduler import SchedulerRank
from hpcdask.mpi.worker import WorkerRank, main_module_hidden

if TYPE_CHECKING:
    from hpcdask.mpi.control import ControlPlane
    from hpcdask.mpi.options import ClusterOptions
    from hpcdask.mpi.roles import Roles

__all__ = ["RankServices", "ServiceThread", "launch", "serve_rank"]


class RankServices:
    """The scheduler and/or the worker of this rank, in one event loop.

    ``address`` is the scheduler's when it runs elsewhere and is known already
    (no scheduler rank); otherwise it comes from the scheduler rank.
    """

    def __init__(
        self,
        control: ControlPlane,
        roles: Roles,
        options: ClusterOptions,
        address: str | None = None,
    ) -> None:
        self.control = control
        self.roles = roles
        self.options = options
        self.loop: asyncio.AbstractEventLoop | None = None
        #: the scheduler's address, for a client on this rank (another thread)
        self.address: concurrent.futures.Future[str] = concurrent.futures.Future()
        if address is not None:
            self.address.set_result(address)

    def receive_address(self) -> None:
        """On a rank without the scheduler: wait for the scheduler's address."""
        scheduler = self.roles.scheduler
        if self.address.done() or scheduler is None or scheduler == self.control.rank:
            return
        address = self.control.receive_address(scheduler)
        if address is None:
            # the scheduler rank has reported its failure and ends the job
            self.control.abort(1)
        self.address.set_result(address)

    async def run(self) -> int:
        """Run this rank's roles until the cluster closes; the rank's exit code."""
        self.loop = asyncio.get_running_loop()
        control, roles, options = self.control, self.roles, self.options
        mailbox = Mailbox(control) if roles.scheduler is not None else None
        try:
            roles_here: list[Awaitable[int]] = []
            address: Awaitable[str] = asyncio.wrap_future(self.address)
            if mailbox is not None and control.rank == roles.scheduler:
                scheduler = SchedulerRank(control, roles, options, mailbox)
                scheduler.address.add_done_callback(
                    lambda f: self.address.set_result(f.result())
                )
                address = scheduler.address
                roles_here.append(scheduler.run())
            if control.rank in roles.workers:
                worker = WorkerRank(control, roles, options, mailbox)
                roles_here.append(worker.run(address))
            codes = await asyncio.gather(*roles_here)
            return codes[0]  # the scheduler's, when it runs here
        finally:
            if mailbox is not None:
                mailbox.close()


def serve_rank(services: RankServices, hide_main: bool = True) -> int:
    """Run ``services`` in this thread until the cluster closes; the exit code.

    Any failure here ends the whole job: a rank that exits on its own would
    leave the others waiting for it. ``hide_main`` keeps a nanny's new worker
    processes from running the main script (see :func:`main_module_hidden`).
    """
    control, roles = services.control, services.roles
    try:
        services.receive_address()
        with main_module_hidden() if hide_main else contextlib.nullcontext():
            code = asyncio.run(services.run())
        control.flush(services.options.failure_timeout)
        return code
    except BaseException:
        logger.exception(
            "the %s on rank %d failed; ending the %s",
            roles.role(control.rank),
            control.rank,
            control.job,
        )
        control.abort(1)


class ServiceThread:
    """This rank's services in a thread of their own, while the client runs in
    the main thread (a rank that is both, e.g. with inclusive workers)."""

    def __init__(self, services: RankServices) -> None:
        self.services = services
        self.code: int | None = None
        self._thread = threading.Thread(
            target=self._main, name="hpcdask-rank-services", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def _main(self) -> None:
        # the main thread runs the script: its __main__ stays as it is
        self.code = serve_rank(self.services, hide_main=False)

    def address(self) -> str:
        """The scheduler's address, once this rank's services know it."""
        return self.services.address.result()

    def post(self, dest: int, tag: Tag, code: int) -> None:
        """Send a message from the services' thread, as all of this rank's
        messages are sent."""
        loop = self.services.loop
        assert loop is not None, "the services have not started"
        loop.call_soon_threadsafe(self.services.control.send, dest, tag, code)

    def join(self, timeout: float) -> int | None:
        """The services' exit code; ``None`` if they run on after ``timeout``."""
        self._thread.join(timeout)
        return None if self._thread.is_alive() else self.code


def launch(
    control: ControlPlane,
    roles: Roles,
    options: ClusterOptions,
    client: Callable[[], int] | None = None,
    address: str | None = None,
) -> int:
    """Run this rank's roles; return its exit code (every rank gets the same).

    ``client`` is what the client rank runs (its exit code is the run's);
    ``address`` is the scheduler's when there is no scheduler rank.
    """
    rank = control.rank
    services_here = rank == roles.scheduler or rank in roles.workers
    if client is None or rank != roles.client:
        code = 0
        if services_here:
            code = serve_rank(RankServices(control, roles, options, address))
        control.close()
        return code
    thread = None
    if services_here:
        thread = ServiceThread(RankServices(control, roles, options, address))
        thread.start()
    client_rank = ClientRank.start(control, roles, options, thread, address)
    return client_rank.finish(client())
