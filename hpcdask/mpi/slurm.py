"""The control plane of tasks that ``srun`` started, without MPI.

Inside an allocation, ``srun -n 4 hpcdask-srun run script.py`` starts four
tasks; Open MPI built without Slurm's PMI cannot start under ``srun``, so this
plane uses no MPI at all. A task's rank and the number of tasks come from
``SLURM_PROCID`` and ``SLURM_STEP_NUM_TASKS``.

The scheduler's rank is the hub. It writes a rendezvous file (the scheduler's
address, its control server's address, a random token; mode 0600) into a
directory every node sees, named after the job and step. Every other rank reads
it and connects to the hub's control server (TCP, one JSON message a line);
once all have, the hub removes the file. The shutdown's messages
(:class:`~hpcdask.mpi.roles.Tag`) then go over these connections, handled by a
thread of their own, so a busy event loop delays nothing. A connection that
drops before the hub sent that rank its EXIT means the rank is gone: the hub
sends every rank ABORT and each exits with code 1; a rank that loses the hub
before its EXIT exits with code 1 too. So the failure of any rank ends the
step, as ``MPI_Abort`` ends an MPI job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import secrets
import threading
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from hpcdask.errors import MPIClusterError
from hpcdask.mpi.logs import flush_logs, logger
from hpcdask.mpi.options import flag, parse_positive_float
from hpcdask.mpi.roles import POLL_INTERVAL, Tag

__all__ = ["Rendezvous", "SlurmStep", "SrunControl", "SrunOptions", "read_rendezvous"]

T = TypeVar("T")


@dataclass(frozen=True)
class SrunOptions:
    """Where the ranks of a step meet, and how long they wait for each other."""

    rendezvous_directory: str = field(
        default=".",
        metadata=flag(
            "directory every node sees, for the scheduler's address "
            "(default: the working directory)"
        ),
    )
    start_timeout: float = field(
        default=120.0,
        metadata=flag(
            "seconds the ranks wait for each other at start (default %(default)s)",
            parse_positive_float,
        ),
    )


@dataclass(frozen=True)
class SlurmStep:
    """This task's place in its job step, from ``srun``'s environment."""

    rank: int
    size: int
    job_id: str
    step_id: str
    restarts: str = "0"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> SlurmStep:
        """Raises :class:`MPIClusterError` outside a task ``srun`` started."""
        missing = [
            name
            for name in ("SLURM_PROCID", "SLURM_JOB_ID", "SLURM_STEP_ID")
            if name not in environ
        ]
        size = environ.get("SLURM_STEP_NUM_TASKS") or environ.get("SLURM_NTASKS")
        if missing or size is None:
            names = ", ".join(missing or ["SLURM_STEP_NUM_TASKS"])
            raise MPIClusterError(
                f"hpcdask-srun runs as the tasks of srun (e.g. `srun -n 4 "
                f"hpcdask-srun run script.py` in an allocation); {names} not set"
            )
        return cls(
            rank=int(environ["SLURM_PROCID"]),
            size=int(size),
            job_id=environ["SLURM_JOB_ID"],
            step_id=environ["SLURM_STEP_ID"],
            restarts=environ.get("SLURM_RESTART_COUNT", "0"),
        )

    def rendezvous_path(self, directory: str) -> Path:
        """The step's rendezvous file; a requeued job's run has its own."""
        name = f".hpcdask-srun-{self.job_id}.{self.step_id}.{self.restarts}.json"
        return Path(directory).absolute() / name


def encode(message: Mapping[str, object]) -> bytes:
    return json.dumps(dict(message)).encode() + b"\n"


@dataclass(frozen=True)
class Rendezvous:
    """What the hub wrote: where the scheduler and the hub listen, the token;
    or why there is no scheduler."""

    scheduler: str = ""
    host: str = ""
    port: int = 0
    token: str = ""
    error: str | None = None


def read_rendezvous(path: Path) -> Rendezvous | None:
    """The rendezvous file's content; ``None`` until it is there, complete."""
    try:
        value = json.loads(path.read_text())
        if "error" in value:
            return Rendezvous(error=str(value["error"]))
        host, port = value["control"]
        return Rendezvous(str(value["scheduler"]), str(host), int(port), value["token"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class SrunControl:
    """:class:`~hpcdask.mpi.control.ControlPlane` for the tasks of one step."""

    job = "job step"

    def __init__(self, step: SlurmStep, options: SrunOptions) -> None:
        self.rank = step.rank
        self.size = step.size
        self.path = step.rendezvous_path(options.rendezvous_directory)
        self.timeout = options.start_timeout
        self._inbox: queue.SimpleQueue[tuple[Tag, int]] = queue.SimpleQueue()
        self._peers: dict[int, asyncio.StreamWriter] = {}
        self._exit_sent: set[int] = set()  # the hub: ranks told to exit
        self._exit_received = False
        self._server: asyncio.Server | None = None
        self._all_here: asyncio.Event | None = None  # the hub: every rank connected
        self._token = ""
        self._reader: asyncio.Future[None] | None = None  # the hub's messages
        self._loop = asyncio.new_event_loop()
        threading.Thread(
            target=self._loop.run_forever, name="hpcdask-srun-control", daemon=True
        ).start()

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coroutine`` on the control thread and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    # -- the hub (the scheduler's rank) -------------------------------------------

    def publish_address(self, address: str) -> None:
        from distributed.comm.addressing import get_address_host

        host = get_address_host(address)
        self._token = secrets.token_hex(16)
        port = self._call(self._listen(host), self.timeout)
        self._write(
            {"scheduler": address, "control": [host, port], "token": self._token}
        )
        missing = self._call(self._wait_for_ranks(), self.timeout + 1)
        # every rank has read it: nothing is left behind if this one is killed
        with contextlib.suppress(OSError):
            self.path.unlink()
        if missing:
            logger.error(
                "rank(s) %s did not connect within %gs (see %s); ending the job step",
                ", ".join(map(str, missing)),
                self.timeout,
                self.path,
            )
            self.abort(1)

    def publish_failure(self, error: str) -> None:
        self._write({"error": error})

    def _write(self, content: Mapping[str, object]) -> None:
        """Write the rendezvous file whole (a reader never sees half of it)."""
        partial = self.path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(dict(content), f)
        os.replace(partial, self.path)

    async def _listen(self, host: str) -> int:
        self._all_here = asyncio.Event()
        self._server = await asyncio.start_server(self._accept, host, 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _wait_for_ranks(self) -> list[int]:
        """Wait until every other rank connected, then let them all go on (as
        MPI's collectives do: no worker calls the scheduler before every rank
        is here); the ranks that did not connect."""
        assert self._all_here is not None
        deadline = time.monotonic() + self.timeout
        while len(self._peers) < self.size - 1 and time.monotonic() < deadline:
            await asyncio.sleep(POLL_INTERVAL)
        missing = [
            r for r in range(self.size) if r != self.rank and r not in self._peers
        ]
        if not missing:
            self._all_here.set()
        return missing

    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        rank: object = None
        with contextlib.suppress(ValueError, KeyError, TypeError, asyncio.TimeoutError):
            hello = json.loads(await asyncio.wait_for(reader.readline(), self.timeout))
            if hello["token"] == self._token:
                rank = hello["rank"]
        if (
            not isinstance(rank, int)
            or not 0 <= rank < self.size
            or rank in self._peers
        ):
            logger.warning("refused a control connection: not a rank of this step")
            writer.close()
            return
        self._peers[rank] = writer
        assert self._all_here is not None
        await self._all_here.wait()
        writer.write(encode({"ok": True}))
        await self._read(rank, reader)

    # -- the other ranks ------------------------------------------------------------

    def receive_address(self, root: int) -> str | None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            info = read_rendezvous(self.path)
            if info is not None and info.error is not None:
                return None
            if info is not None:
                with contextlib.suppress(OSError):
                    # refused: a stale file the hub has not replaced yet
                    self._call(
                        self._connect(root, info.host, info.port, info.token),
                        max(deadline - time.monotonic(), 1),
                    )
                    return info.scheduler
            time.sleep(0.1)
        logger.error(
            "no scheduler from rank %d within %gs in %s: did it start, and does "
            "every node see that directory (--rendezvous-directory)? ending the "
            "job step",
            root,
            self.timeout,
            self.path,
        )
        self.abort(1)

    async def _connect(self, hub: int, host: str, port: int, token: str) -> None:
        """Connect to the hub; it answers once every rank is there (or ABORT)."""
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(encode({"rank": self.rank, "token": token}))
        answer = json.loads(await reader.readline() or b"{}")
        if answer.get("tag") == Tag.ABORT:
            await self._abort(int(answer["code"]), relay=False)
        if not answer.get("ok"):
            writer.close()
            raise OSError("the hub refused this rank")
        self._peers[hub] = writer
        self._reader = asyncio.ensure_future(self._read(hub, reader))

    # -- messages -----------------------------------------------------------------

    async def _read(self, peer: int, reader: asyncio.StreamReader) -> None:
        """Messages from ``peer`` into the inbox until it disconnects."""
        while line := await reader.readline():
            message = json.loads(line)
            tag, code = Tag(message["tag"]), int(message["code"])
            if tag is Tag.ABORT:
                await self._abort(code, relay=self._server is not None)
            if tag is Tag.EXIT:
                self._exit_received = True
            self._inbox.put((tag, code))
        self._peers.pop(peer, None)
        if peer in self._exit_sent or self._exit_received:
            return
        logger.error(
            "rank %d lost its connection to rank %d (a process ended?); ending "
            "the job step",
            self.rank,
            peer,
        )
        await self._abort(1, relay=self._server is not None)

    def send(self, dest: int, tag: Tag, code: int) -> None:
        if dest == self.rank:
            self._inbox.put((tag, code))
            return
        writer = self._peers.get(dest)
        if writer is None:
            logger.warning("rank %d is not connected; %s not sent", dest, tag.name)
            return
        if tag is Tag.EXIT:
            self._exit_sent.add(dest)
        data = encode({"tag": int(tag), "code": code})
        self._loop.call_soon_threadsafe(writer.write, data)

    def receive(self) -> tuple[Tag, int] | None:
        try:
            return self._inbox.get_nowait()
        except queue.Empty:
            return None

    def flush(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
            self._call(self._drain(), timeout)

    async def _drain(self) -> None:
        for writer in list(self._peers.values()):
            with contextlib.suppress(OSError):
                await writer.drain()

    def abort(self, code: int) -> NoReturn:
        asyncio.run_coroutine_threadsafe(self._abort(code, relay=True), self._loop)
        time.sleep(self.timeout)  # the control thread ends the process
        os._exit(code or 1)

    async def _abort(self, code: int, relay: bool) -> None:
        """End this process now; first tell the others (all, from the hub)."""
        with contextlib.suppress(OSError):
            self.path.unlink()  # the step is over: no one is to read it again
        if relay:
            for writer in list(self._peers.values()):
                writer.write(encode({"tag": int(Tag.ABORT), "code": code or 1}))
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(self._drain(), 2)
        flush_logs()
        os._exit(code or 1)

    def close(self) -> None:
        self.flush(self.timeout)
        if self._server is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
        for writer in list(self._peers.values()):
            self._loop.call_soon_threadsafe(writer.close)
