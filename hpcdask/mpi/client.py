"""The client rank: the user's script, and the start of the shutdown."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from hpcdask.mpi.control import wait_for
from hpcdask.mpi.logs import logger
from hpcdask.mpi.roles import Roles, Tag

if TYPE_CHECKING:
    from hpcdask.mpi.control import ControlPlane
    from hpcdask.mpi.options import ClusterOptions

__all__ = ["ClientRank", "close_clients"]


class OpenClient(Protocol):
    """What :func:`close_clients` uses of a :class:`distributed.Client`."""

    @property
    def status(self) -> str: ...

    @property
    def asynchronous(self) -> bool: ...

    def close(self, timeout: float) -> object: ...


class ClientRank:
    """Point ``distributed.Client()`` at the scheduler; when the script ends,
    send DONE with its code and wait for the scheduler rank's EXIT."""

    def __init__(self, control: ControlPlane, options: ClusterOptions) -> None:
        self.control = control
        self.options = options
        self.finished = False
        self._script_failed = False

    def start(self) -> None:
        """Wait for the scheduler's address and make it dask's default."""
        import dask.config

        address = self.control.receive_address(Roles.SCHEDULER)
        if address is None:
            # the scheduler rank has reported its failure and ends the job
            self.control.abort(1)
        dask.config.set({"scheduler-address": address})
        previous = sys.excepthook

        def note_failure(
            kind: type[BaseException],
            value: BaseException,
            tb: TracebackType | None,
        ) -> None:
            self._script_failed = True
            previous(kind, value, tb)

        sys.excepthook = note_failure

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
        close_clients(self.options.shutdown_timeout)
        control = self.control
        control.send(Roles.SCHEDULER, Tag.DONE, code)
        final = wait_for(control, Tag.EXIT, self.options.shutdown_timeout)
        if final is None:
            logger.error(
                "the cluster did not shut down within %gs; ending the MPI job",
                self.options.shutdown_timeout,
            )
            control.abort(code or 1)
        control.flush(self.options.failure_timeout)
        return final


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
