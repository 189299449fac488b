"""Which rank does what, and the words of the shutdown: pure, no MPI, no processes.

The launcher's shutdown is three messages, each carrying an exit code:

1. DONE, client rank -> scheduler rank: the script ended with this code;
2. STOP, scheduler rank -> worker ranks: your worker is about to be closed,
   close it yourself;
3. EXIT, scheduler rank -> every other rank: the scheduler is closed, exit
   with this code.
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


@dataclass(frozen=True)
class Roles:
    """Which rank does what in a communicator of ``size`` ranks."""

    size: int
    with_client: bool = True

    SCHEDULER = 0
    CLIENT = 1

    def __post_init__(self) -> None:
        needed = MIN_RANKS if self.with_client else MIN_RANKS - 1
        if self.size < needed:
            roles = (
                "a scheduler, a client and at least one worker"
                if self.with_client
                else "a scheduler and at least one worker"
            )
            raise WorldTooSmallError(self.size, needed, roles)

    @property
    def client(self) -> int | None:
        """The client's rank, if there is one."""
        return self.CLIENT if self.with_client else None

    @property
    def workers(self) -> range:
        """The ranks that run a worker."""
        return range(2 if self.with_client else 1, self.size)

    def role(self, rank: int) -> str:
        """``"scheduler"``, ``"client"`` or ``"worker"``."""
        if rank == self.SCHEDULER:
            return "scheduler"
        if rank == self.client:
            return "client"
        return "worker"


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


def rank_of(name: object) -> int | None:
    """The rank a worker's name stands for, or ``None`` for other names."""
    if isinstance(name, bool):
        return None
    if isinstance(name, int):
        return name
    if isinstance(name, str) and name.isdigit():
        return int(name)
    return None
