"""The client rank: the user's script, and the start of the shutdown."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from hpcdask.mpi.control import wait_for
from hpcdask.mpi.logs import logger
from hpcdask.mpi.roles import Tag, worker_name
from hpcdask.mpi.servers import connect_client

if TYPE_CHECKING:
    from hpcdask.mpi.control import ControlPlane
    from hpcdask.mpi.options import ClusterOptions
    from hpcdask.mpi.roles import Roles
    from hpcdask.mpi.servers import OpenClient

__all__ = ["ClientRank", "close_clients", "current_client"]


class Services(Protocol):
    """The scheduler or worker that runs beside the client on its rank (in
    another thread: :class:`hpcdask.mpi.ranks.ServiceThread`)."""

    def address(self) -> str:
        """The scheduler's address, once known."""

    def post(self, dest: int, tag: Tag, code: int) -> None:
        """Send a message as the services send theirs."""

    def join(self, timeout: float) -> int | None:
        """The services' exit code once they end; ``None`` after ``timeout``."""


#: the client rank of this process's cluster, once it is up
_current: ClientRank | None = None


def current_client() -> ClientRank | None:
    """This process's client rank, if it is the client of a running cluster."""
    return _current


class ClientRank:
    """Point ``distributed.Client()`` at the scheduler; when the script ends,
    send DONE with its code and wait for the scheduler rank's EXIT.

    ``services`` runs this rank's scheduler or worker beside the client (in
    another thread), when the rank has one.
    """

    def __init__(
        self,
        control: ControlPlane,
        roles: Roles,
        options: ClusterOptions,
        services: Services | None = None,
    ) -> None:
        self.control = control
        self.roles = roles
        self.options = options
        self.services = services
        self.address = ""
        self.finished = False
        self._script_failed = False

    @classmethod
    def start(
        cls,
        control: ControlPlane,
        roles: Roles,
        options: ClusterOptions,
        services: Services | None = None,
        address: str | None = None,
    ) -> ClientRank:
        """This process's client rank, connected: ``distributed.Client()``
        finds the scheduler; ``address`` is the scheduler's if it is elsewhere."""
        import dask.config

        global _current
        client = _current = cls(control, roles, options, services)
        if address is None:
            address = client._receive_address()
        client.address = address
        dask.config.set({"scheduler-address": address})
        previous = sys.excepthook

        def note_failure(
            kind: type[BaseException], value: BaseException, tb: TracebackType | None
        ) -> None:
            client._script_failed = True
            previous(kind, value, tb)

        sys.excepthook = note_failure
        return client

    def _receive_address(self) -> str:
        if self.services is not None:
            return self.services.address()
        assert self.roles.scheduler is not None, "no scheduler rank, no address"
        address = self.control.receive_address(self.roles.scheduler)
        if address is None:
            # the scheduler rank has reported its failure and ends the job
            self.control.abort(1)
        return address

    def finish_at_exit(self) -> None:
        """The ``atexit`` end of a script that called ``initialize()``."""
        if not self.finished:
            self.finish(1 if self._script_failed else 0)

    def finish(self, code: int) -> int:
        """Close the script's clients, shut the cluster down, return the code
        every rank exits with."""
        if self.finished:
            return code
        self.finished = True
        timeout = self.options.shutdown_timeout
        close_clients(timeout)
        if self.roles.scheduler is None:
            return self._leave(code)
        if self.services is not None:
            self.services.post(self.roles.scheduler, Tag.DONE, code)
            final = self.services.join(timeout)
        else:
            self.control.send(self.roles.scheduler, Tag.DONE, code)
            final = wait_for(self.control, Tag.EXIT, timeout)
        if final is None:
            logger.error(
                "the cluster did not shut down within %gs; ending the %s",
                timeout,
                self.control.job,
            )
            self.control.abort(code or 1)
        self.control.flush(self.options.failure_timeout)
        self.control.close()
        return final

    def _leave(self, code: int) -> int:
        """With the scheduler elsewhere: retire this run's workers from it (it
        closes them, their ranks end) and leave it running."""
        names = [worker_name(r, self.options.worker_name) for r in self.roles.workers]
        client = connect_client(self.address, self.options.shutdown_timeout)
        try:
            client.retire_workers(names=names)
        finally:
            client.close(timeout=self.options.shutdown_timeout)
        if self.services is not None:
            self.services.join(self.options.shutdown_timeout)
        self.control.close()
        return code


def close_clients(timeout: float) -> None:
    """Close the clients the script left open, before their scheduler goes."""
    if "distributed.client" not in sys.modules:
        return
    from distributed import Client

    for instance in list(Client._instances):
        client: OpenClient = instance  # Client.close has no annotations
        if client.status in ("closed", "closing") or client.asynchronous:
            continue
        try:
            client.close(timeout=timeout)
        except Exception as e:
            logger.warning("could not close %s before shutdown: %r", client, e)
