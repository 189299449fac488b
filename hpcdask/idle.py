"""When an abandoned scheduler-job cluster ends: the idle clock.

A scheduler job (``scheduler_in="job"``) outlives its notebook on purpose, so it
needs its own reason to end: no client connected and no task to run for
``idle_timeout`` seconds (config ``hpcdask.scheduler-job.idle-timeout``, default
30 minutes). A handle (``from_name``) is a remote control, not a user of the
cluster: it does not keep it alive; a ``Client`` does. Pure: the keeper
(:mod:`hpcdask.keeper`) feeds it what the scheduler says, with the time.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["IdleClock"]


@dataclass
class IdleClock:
    """How long a cluster has been idle, from observations in time order."""

    timeout: float
    #: when the cluster was last seen becoming idle (None: busy now)
    since: float | None = None

    def observe(self, clients: int, busy: bool, now: float) -> bool:
        """Note ``clients`` connected and whether any task is ``busy`` (queued,
        processing or unrunnable) at ``now``; return whether the cluster has
        been idle for ``timeout`` seconds."""
        if clients or busy:
            self.since = None
            return False
        if self.since is None:
            self.since = now
        return now - self.since >= self.timeout

    def idle_for(self, now: float) -> float:
        """Seconds idle at ``now`` (0 when busy)."""
        return 0.0 if self.since is None else now - self.since
