"""The MPI control plane: the launcher's own messages between ranks.

:class:`MPIControl` carries the scheduler's address (a broadcast on the
communicator) and the shutdown's messages (:class:`~hpcdask.mpi.roles.Tag`) on a
private duplicate of the communicator, so they never mix with a script's own
messages. Everything after the broadcast is non-blocking or polled, so a dead
peer turns into a timeout rather than a hang. :class:`Mailbox` and
:func:`wait_for` wait for messages in and outside an event loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, NoReturn, Protocol

from hpcdask.mpi.logs import flush_logs, logger
from hpcdask.mpi.roles import POLL_INTERVAL, Tag

if TYPE_CHECKING:
    from mpi4py.MPI import Intracomm, Request

__all__ = ["ControlPlane", "MPIControl", "Mailbox", "wait_for"]


class ControlPlane(Protocol):
    """What the rank roles need from the ranks' control channel."""

    #: this process's rank, and how many ranks there are
    rank: int
    size: int
    #: what an abort ends, for messages: "MPI job", "job step"
    job: str

    def publish_address(self, address: str) -> None:
        """On the scheduler rank: give every other rank the scheduler's address."""

    def publish_failure(self, error: str) -> None:
        """On the scheduler rank: tell every other rank there is no scheduler."""

    def receive_address(self, root: int) -> str | None:
        """On the other ranks: the address rank ``root`` published, ``None`` if
        its scheduler failed to start."""

    def send(self, dest: int, tag: Tag, code: int) -> None:
        """Send ``tag`` with an exit code to rank ``dest`` without waiting."""

    def receive(self) -> tuple[Tag, int] | None:
        """The next message to this rank, if one has arrived (``None`` also
        before the scheduler's address is shared)."""

    def flush(self, timeout: float) -> None:
        """Wait (bounded) until the messages this rank sent are delivered."""

    def abort(self, code: int) -> NoReturn:
        """End every rank of the job now."""

    def close(self) -> None:
        """This rank is done: release what the control plane holds."""


class MPIControl:
    """:class:`ControlPlane` over an MPI communicator (``mpi4py``).

    The private duplicate is made after the address broadcast: making it is
    collective, and rank 0 starts its scheduler while the other ranks are still
    importing.
    """

    job = "MPI job"

    def __init__(self, world: Intracomm) -> None:
        self.world = world
        self.rank: int = world.Get_rank()
        self.size: int = world.Get_size()
        self._comm: Intracomm | None = None
        self._sends: list[Request] = []

    def publish_address(self, address: str) -> None:
        self.world.bcast({"address": address}, root=self.rank)
        self._comm = self.world.Dup()

    def publish_failure(self, error: str) -> None:
        # releases the other ranks from the broadcast before the job is ended
        self.world.bcast({"error": error}, root=self.rank)

    def receive_address(self, root: int) -> str | None:
        message: dict[str, str] = self.world.bcast(None, root=root)
        if "error" in message:
            return None
        self._comm = self.world.Dup()
        return message["address"]

    @property
    def comm(self) -> Intracomm:
        assert self._comm is not None, "the scheduler's address is not shared yet"
        return self._comm

    def send(self, dest: int, tag: Tag, code: int) -> None:
        self._sends.append(self.comm.isend(code, dest=dest, tag=int(tag)))

    def receive(self) -> tuple[Tag, int] | None:
        from mpi4py import MPI

        if self._comm is None:  # nothing can arrive before the address is shared
            return None
        status = MPI.Status()
        if not self.comm.iprobe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status):
            return None
        tag = status.Get_tag()
        code = self.comm.recv(source=status.Get_source(), tag=tag)
        return Tag(tag), int(code)

    def flush(self, timeout: float) -> None:
        from mpi4py import MPI

        deadline = time.monotonic() + timeout
        while self._sends and not MPI.Request.Testall(self._sends):
            if time.monotonic() >= deadline:
                return
            time.sleep(POLL_INTERVAL)
        self._sends.clear()

    def abort(self, code: int) -> NoReturn:
        flush_logs()
        self.world.Abort(code or 1)
        raise AssertionError("unreachable: MPI_Abort returned")

    def close(self) -> None:
        # The duplicate stays: freeing it is collective, and a script may go on
        # with its own communicator (initialize(exit=False), execute()).
        pass


class Mailbox:
    """The messages to this rank, as futures by tag, for code in an event loop.

    One task polls for all tags, so an idle rank wakes up once per poll
    interval however many messages it waits for.
    """

    def __init__(self, control: ControlPlane) -> None:
        self.control = control
        self._futures: dict[Tag, asyncio.Future[int]] = {}
        self._task = asyncio.ensure_future(self._poll())

    def future(self, tag: Tag) -> asyncio.Future[int]:
        """Resolves to the exit code of the first message with ``tag``."""
        if tag not in self._futures:
            self._futures[tag] = asyncio.get_running_loop().create_future()
        return self._futures[tag]

    async def _poll(self) -> None:
        try:
            while True:
                while (message := self.control.receive()) is not None:
                    tag, code = message
                    future = self.future(tag)
                    if not future.done():
                        future.set_result(code)
                await asyncio.sleep(POLL_INTERVAL)
        except Exception:
            # a rank that can no longer hear the others would wait forever
            logger.exception("rank %d cannot receive messages", self.control.rank)
            self.control.abort(1)

    def close(self) -> None:
        self._task.cancel()


def wait_for(control: ControlPlane, tag: Tag, timeout: float | None) -> int | None:
    """The code of the next ``tag`` message, for code outside an event loop;
    ``None`` after ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        message = control.receive()
        if message is not None and message[0] == tag:
            return message[1]
        if message is None:
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(POLL_INTERVAL)
