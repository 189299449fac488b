"""A logging filter for the scheduler's messages that say nothing is wrong."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

__all__ = ["SchedulerNoise"]


class SchedulerNoise(logging.Filter):
    """Drops two scheduler log records that say nothing is wrong:

    - the warning about a heartbeat from a worker that this cluster has just
      retired and whose job it cancelled (its last heartbeat was on its way);
    - the traceback of a cancelled worker stream while the cluster closes (a
      cancelled job's worker may still be exiting when the scheduler stops).

    Everything else passes, other workers' warnings included.
    """

    HEARTBEAT = "Received heartbeat from unregistered worker"

    def __init__(self, keep_for: float = 60.0) -> None:
        super().__init__()
        self.keep_for = keep_for
        self.closing = False
        self._retired: dict[str, float] = {}  # address -> when retired

    def add(self, addresses: Iterable[str]) -> None:
        """These workers are being retired: their late heartbeats are noise."""
        now = time.monotonic()
        self._retired = {
            a: t for a, t in self._retired.items() if now - t < self.keep_for
        }
        self._retired.update(dict.fromkeys(addresses, now))

    def filter(self, record: logging.LogRecord) -> bool:
        if self.closing and record.exc_info:
            return not isinstance(record.exc_info[1], asyncio.CancelledError)
        if not self._retired or not str(record.msg).startswith(self.HEARTBEAT):
            return True
        message = record.getMessage()
        return not any(f"'{address}'" in message for address in self._retired)
