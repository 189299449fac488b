"""Plain data shared by every layer: job states, job status, job records.

Nothing here does I/O. The queue's vocabulary (squeue letters, qstat states) is
translated into :class:`JobState` by the system adapters; everything above them
speaks only this enum.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class JobState(enum.Enum):
    """The state of one batch job, as the queue reports it.

    ``UNKNOWN`` means the controller did not answer: the job keeps its last known
    state in the job table and is never treated as dead because of it. ``GONE``
    means the queue no longer knows the job id (purged from its memory): the job
    has ended, without a final state the queue would tell.
    """

    SUBMITTING = "submitting"
    PENDING = "pending"
    HELD = "held"
    RUNNING = "running"
    COMPLETING = "completing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    NODE_FAIL = "node_fail"
    GONE = "gone"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        """Whether a job in this state has ended (it is in ``TERMINAL``)."""
        return self in TERMINAL


#: States after which a job never runs again.
TERMINAL: frozenset[JobState] = frozenset(
    {
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.TIMEOUT,
        JobState.NODE_FAIL,
        JobState.GONE,
    }
)


@dataclass(frozen=True)
class JobStatus:
    """What one status query said about one job.

    Times are POSIX timestamps (seconds) or ``None`` where the queue gave none.
    """

    state: JobState
    reason: str = ""
    node: str = ""
    submit_time: float | None = None
    start_time: float | None = None
    end_time: float | None = None
    time_limit: float | None = None
    exit_code: str = ""


@dataclass
class JobRecord:
    """One batch job in the cluster's job table.

    ``name`` is the cluster's spec name for the job (one name per job; a job of
    several worker processes has workers ``name-0``, ``name-1``...).
    """

    name: str
    job_id: str = ""
    state: JobState = JobState.SUBMITTING
    reason: str = ""
    node: str = ""
    submit_time: float | None = None
    start_time: float | None = None
    end_time: float | None = None
    time_limit: float | None = None
    exit_code: str = ""
    workers: set[str] = field(default_factory=set)
    workers_seen: int = 0
    cancel_requested: bool = False
    connected_time: float | None = None
    stdout_path: str = ""
    stderr_path: str = ""

    def apply(self, status: JobStatus) -> None:
        """Take a status query's answer; ``UNKNOWN`` keeps the last known state."""
        if status.state is JobState.UNKNOWN:
            return
        self.state = status.state
        self.reason = status.reason
        for attr in ("node", "submit_time", "start_time", "end_time", "time_limit"):
            value = getattr(status, attr)
            if value:
                setattr(self, attr, value)
        if status.exit_code:
            self.exit_code = status.exit_code

    @property
    def failed_start(self) -> bool:
        """Ended before any of its workers connected, and not because we asked."""
        return (
            self.state.is_terminal
            and self.workers_seen == 0
            and not self.cancel_requested
            and self.state is not JobState.CANCELLED
        )

    def walltime_left(self, now: float) -> float | None:
        if self.start_time is None or self.time_limit is None:
            return None
        if self.state.is_terminal:
            return 0.0
        return max(0.0, self.start_time + self.time_limit - now)


# -- adaptive scaling: what the policy sees, remembers and decides -------------------


_QUEUED = frozenset({JobState.SUBMITTING, JobState.PENDING, JobState.HELD})


@dataclass(frozen=True)
class JobView:
    """One live job as the scaling policy sees it.

    ``idle`` means the job has connected workers and none of them has a task to
    run; ``retiring`` that a retirement was already asked for.
    """

    name: str
    state: JobState
    submit_time: float
    start_time: float | None = None
    time_limit: float | None = None
    workers: int = 0
    idle: bool = False
    reason: str = ""
    retiring: bool = False

    @property
    def is_pending(self) -> bool:
        """Waiting in the queue. A job that started but whose workers have not
        connected yet is not pending: it is charged already and nearly there."""
        return self.workers == 0 and self.state in _QUEUED


@dataclass(frozen=True)
class ClusterSnapshot:
    """Everything :func:`hpcdask.policy.decide` needs, gathered in one tick.

    ``target_workers`` is the scheduler's ``adaptive_target()``; ``jobs`` are the
    live jobs; ``failed_starts`` lists when jobs ended before their workers
    connected, and ``last_start`` is when a job last had its first worker connect.
    """

    target_workers: int
    jobs: tuple[JobView, ...]
    failed_starts: tuple[float, ...] = ()
    last_start: float | None = None
    #: the longest average run time (s) of the kinds of tasks still to run; 0
    #: when none has been timed yet
    task_duration: float = 0.0


@dataclass(frozen=True)
class ScaleDecision:
    """What one tick does: submit ``submit`` new jobs (one submission), cancel the
    jobs named in ``cancel`` (not yet running workers), retire the workers of the
    jobs in ``retire`` (their data handed over) before cancelling those, and give
    no new task to the workers of the jobs in ``drain`` (too close to their end
    to finish one)."""

    submit: int = 0
    cancel: tuple[str, ...] = ()
    retire: tuple[str, ...] = ()
    drain: tuple[str, ...] = ()
    reason: str = ""

    @property
    def is_noop(self) -> bool:
        return not (self.submit or self.cancel or self.retire or self.drain)
