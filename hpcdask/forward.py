"""A local port that forwards to a scheduler job's dashboard.

A scheduler job's dashboard listens on its compute node. jupyter-server-proxy
and JupyterLab's Dask sidebar (dask-labextension 7.0.0, whose proxy allows only
``localhost`` and ``127.0.0.1``) reach dashboards on the machine they run on, so
a handle (:mod:`hpcdask.handle`) forwards a port on 127.0.0.1 of its own machine
to the dashboard and links to that. Bytes are copied both ways, websockets
included; the forward ends with the handle.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["DashboardForward"]


class DashboardForward:
    """Forward ``127.0.0.1:<port>`` (chosen free) to ``host:port``."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _connect(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                *self.target
            )
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            _copy(reader, upstream_writer), _copy(upstream_reader, writer)
        )


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()
