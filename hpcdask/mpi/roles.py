"""Which rank does what, and the words of the shutdown: pure, no MPI, no processes.

The launcher's shutdown is three messages, each carrying an exit code:

1. DONE, client rank -> scheduler rank: the script ended with this code;
2. STOP, scheduler rank -> worker ranks: your worker is about to be closed,
   close it yourself;
3. EXIT, scheduler rank -> every other rank: the scheduler is closed, exit
   with this code.

A fourth, ABORT (any rank -> every rank: end now with this code), is how the
control plane of Slurm tasks ends a step, as ``MPI_Abort`` ends an MPI job.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from hpcdask.errors import WorldTooSmallError

__all__ = [
    "MIN_RANKS",
    "POLL_INTERVAL",
    "RankWatch",
    "Roles",
    "Tag",
    "exit_code_of",
    "rank_of",
    "worker_name",
]

#: ranks needed with a client rank: scheduler, client, one worker.
MIN_RANKS = 3

#: seconds between checks for control messages
POLL_INTERVAL = 0.02


class Tag(enum.IntEnum):
    """The launcher's own messages (MPI tags on its private communicator)."""

    DONE = 1
    STOP = 2
    EXIT = 3
    ABORT = 4


#: how each launcher names its processes and starts more of them
_LAUNCHERS = {"mpirun": ("MPI ranks", "mpirun -np"), "srun": ("Slurm tasks", "srun -n")}


@dataclass(frozen=True)
class Roles:
    """Which rank does what among ``size`` ranks.

    ``scheduler`` is the scheduler's rank, or ``None`` when the workers join a
    scheduler that runs elsewhere; ``client`` is the client's rank, or ``None``
    for none. With ``exclusive_workers`` a worker runs on every other rank;
    without, on every rank, beside the scheduler and the client. ``launcher``
    (``"mpirun"`` or ``"srun"``) only words the error for too few ranks.
    """

    size: int
    scheduler: int | None = 0
    client: int | None = 1
    exclusive_workers: bool = True
    launcher: str = "mpirun"

    def __post_init__(self) -> None:
        for name in ("scheduler", "client"):
            rank = getattr(self, name)
            if rank is not None and (
                isinstance(rank, bool) or not isinstance(rank, int) or rank < 0
            ):
                raise ValueError(f"{name} rank must be an integer >= 0, not {rank!r}")
        if self.size < self.needed:
            unit, start = _LAUNCHERS[self.launcher]
            raise WorldTooSmallError(
                self.size, self.needed, self.describe(), unit=unit, start=start
            )

    @property
    def taken(self) -> frozenset[int]:
        """The ranks of the scheduler and the client."""
        return frozenset(r for r in (self.scheduler, self.client) if r is not None)

    @property
    def needed(self) -> int:
        """The fewest ranks these roles run on, with at least one worker."""
        highest = max(self.taken, default=-1) + 1
        if self.exclusive_workers:
            return max(highest, len(self.taken) + 1)
        return max(highest, 1)

    @property
    def workers(self) -> tuple[int, ...]:
        """The ranks that run a worker."""
        skip = self.taken if self.exclusive_workers else frozenset()
        return tuple(r for r in range(self.size) if r not in skip)

    def duties(self, rank: int) -> tuple[str, ...]:
        """What ``rank`` runs: some of ``"scheduler"``, ``"client"``, ``"worker"``."""
        duties = [
            name
            for name, ranks in (
                ("scheduler", (self.scheduler,)),
                ("client", (self.client,)),
                ("worker", self.workers),
            )
            if rank in ranks
        ]
        return tuple(duties)

    def role(self, rank: int) -> str:
        """``rank``'s duties in words, e.g. ``"scheduler"`` or ``"client+worker"``."""
        return "+".join(self.duties(rank)) or "nothing"

    def describe(self) -> str:
        """The roles in words, for messages."""
        parts = []
        if self.scheduler is not None:
            parts.append(f"a scheduler on rank {self.scheduler}")
        if self.client is not None:
            parts.append(f"a client on rank {self.client}")
        where = "on a rank of its own" if self.exclusive_workers else "anywhere"
        return ", ".join([*parts, f"at least one worker {where}"])


@dataclass
class RankWatch:
    """Which worker ranks have left the scheduler for longer than ``timeout``.

    A worker behind a nanny may leave and come back (a restart); a worker that
    stays away means its rank is gone. The clock is an argument.
    """

    timeout: float
    connected: set[int] = field(default_factory=set)
    left_at: dict[int, float] = field(default_factory=dict)

    def joined(self, rank: int) -> None:
        self.connected.add(rank)
        self.left_at.pop(rank, None)

    def left(self, rank: int, now: float) -> None:
        if rank in self.connected:
            self.connected.discard(rank)
            self.left_at[rank] = now

    def overdue(self, now: float) -> list[int]:
        """Ranks whose worker left at least ``timeout`` ago and is still away."""
        return sorted(r for r, t in self.left_at.items() if now - t >= self.timeout)


def exit_code_of(exc: SystemExit) -> int:
    """The process exit code Python gives for ``SystemExit(exc.code)``."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, bool):
        return int(code)
    if isinstance(code, int):
        return code & 0xFF
    return 1


def worker_name(rank: int, prefix: str | None = None) -> int | str:
    """The name of the worker on ``rank``: the rank, or ``"<prefix>-<rank>"``."""
    return rank if prefix is None else f"{prefix}-{rank}"


def rank_of(name: object, prefix: str | None = None) -> int | None:
    """The rank a worker's name stands for (see :func:`worker_name`), or
    ``None`` for other names."""
    if isinstance(name, bool):
        return None
    if prefix is None and isinstance(name, int):
        return name
    if not isinstance(name, str):
        return None
    if prefix is not None:
        head, _, name = name.rpartition("-")
        if head != prefix:
            return None
    return int(name) if name.isdigit() else None
