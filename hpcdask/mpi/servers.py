"""What the launcher uses of distributed's scheduler, workers and clients,
typed here: distributed leaves these methods without annotations."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Protocol

__all__ = ["DaskServer", "OpenClient", "connect_client", "default_dask_client"]


class DaskServer(Protocol):
    """What the launcher uses of a scheduler, worker or nanny (or dask-cuda's
    worker): typed here, as distributed leaves these methods unannotated."""

    def __await__(self) -> Generator[Any, None, object]: ...

    async def finished(self) -> None: ...

    async def close(self, timeout: float = ..., reason: str = ...) -> object: ...


class OpenClient(Protocol):
    """What the client rank uses of a :class:`distributed.Client`."""

    @property
    def status(self) -> str: ...

    @property
    def asynchronous(self) -> bool: ...

    def close(self, timeout: float) -> object: ...

    def retire_workers(self, *, names: list[int | str]) -> object: ...

    def shutdown(self) -> object: ...


def connect_client(address: str | None, timeout: float) -> OpenClient:
    """A :class:`distributed.Client` of ``address`` (dask's default: ``None``)."""
    from distributed import Client

    connect: Callable[..., OpenClient] = Client  # its __init__ has no annotations
    return connect(address, timeout=timeout)


def default_dask_client() -> OpenClient | None:
    """This process's current :class:`distributed.Client`, if there is one."""
    from distributed import default_client

    current: Callable[[], OpenClient] = default_client
    try:
        return current()
    except ValueError:  # no client
        return None
