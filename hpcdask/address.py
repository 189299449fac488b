"""``hpcdask://NAME``: a scheduler address that carries the credentials lookup.

A Dask ``Client("hpcdask://NAME")``, in any process of the user, connects to the
running scheduler-job cluster ``NAME``: this comm backend (registered with
distributed as the ``hpcdask`` scheme, entry point ``distributed.comm.backends``)
reads the cluster's TLS address and credentials from its private registry entry
(:mod:`hpcdask.registry`) and connects over TLS with them, whatever TLS settings
the process's own dask config has. That is what makes the code JupyterLab's Dask
sidebar inserts, ``Client("<scheduler_address>")``, work against an hpcdask
cluster. Another user cannot: the entry is readable by its owner only.

Only connecting is supported: nothing listens on an ``hpcdask://`` address.
"""

from __future__ import annotations

import os
from typing import Any

from distributed.comm.addressing import get_address_host, parse_host_port
from distributed.comm.core import Comm, Connector
from distributed.comm.registry import Backend, get_backend

from hpcdask.config import scheduler_job_config
from hpcdask.errors import InvalidOptionError
from hpcdask.jobmode import check_cluster_name, registry_root
from hpcdask.registry import entry_security, read_entry

__all__ = ["SCHEME", "RegistryBackend", "resolve"]

SCHEME = "hpcdask"


def resolve(name: str) -> tuple[str, dict[str, Any]]:
    """The TLS address of the running cluster ``name`` and the client's
    connection arguments (its credentials).

    Raises
    ------
    hpcdask.InvalidOptionError
        when no cluster ``name`` is registered, or it has not started.
    """
    _, _, configured_root = scheduler_job_config()
    directory = os.path.join(registry_root(configured_root), check_cluster_name(name))
    entry = read_entry(directory)
    if not entry.running:
        raise InvalidOptionError(
            "address", f"{SCHEME}://{name}", "no running cluster of that name "
            "(see `hpcdask list`)"
        )  # fmt: skip
    security = entry_security(directory)
    args: dict[str, Any] = security.get_connection_args("client")  # type: ignore[no-untyped-call]
    return entry.address, args


def _tls_location(name: str) -> str:
    address, _ = resolve(name)
    return address.split("://", 1)[1]


class _RegistryConnector(Connector):
    async def connect(
        self, address: str, deserialize: bool = True, **connection_args: Any
    ) -> Comm:
        tls_address, args = resolve(address)
        scheme, location = tls_address.split("://", 1)
        connector = get_backend(scheme).get_connector()  # type: ignore[no-untyped-call]
        comm: Comm = await connector.connect(location, deserialize=deserialize, **args)
        return comm


class RegistryBackend(Backend):
    """distributed's comm backend for ``hpcdask://NAME`` (connect only)."""

    def get_connector(self) -> Connector:
        return _RegistryConnector()

    def get_listener(
        self, loc: str, handle_comm: Any, deserialize: bool, **kw: Any
    ) -> Any:
        raise ValueError(f"nothing listens on {SCHEME}://{loc}: it names a cluster")

    def get_address_host(self, loc: str) -> str:
        return str(get_address_host("tls://" + _tls_location(loc)))

    def get_address_host_port(self, loc: str) -> tuple[str, int]:
        host, port = parse_host_port(_tls_location(loc))
        return str(host), int(port)

    def resolve_address(self, loc: str) -> str:
        return loc

    def get_local_address_for(self, loc: str) -> str:
        backend = get_backend("tls")
        local = backend.get_local_address_for(_tls_location(loc))  # type: ignore[no-untyped-call]
        return str(local)
