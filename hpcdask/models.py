"""Plain data shared by every layer: job states, a job's status, job records, and
what the adaptive policy sees and decides.

Nothing here does I/O. The queue's vocabulary (squeue letters, qstat states) is
translated into :class:`JobState` by the system adapters; everything above them
speaks only this enum. One job's queue status is one :class:`JobStatus`; a
:class:`JobRecord` holds it together with what the cluster knows besides.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

from hpcdask.forecast import JobShape, QueueForecast, ShapeParams


class JobState(enum.Enum):
    """The state of one batch job, as the queue reports it.

    ``UNKNOWN`` means the controller did not answer: the job keeps its last known
    state in the job table and is never treated as dead because of it. ``GONE``
    means the queue no longer knows the job id (purged from its memory): the job
    has ended, without a final state the queue would tell. ``NODE_FAIL`` and
    ``PREEMPTED`` are the site's doing (:data:`SITE_FAULTS`): a job that ends so
    is replaced when wanted, and never counts as a failed start.
    """

    SUBMITTING = "submitting"
    PENDING = "pending"
    HELD = "held"
    RUNNING = "running"
    SUSPENDED = "suspended"
    COMPLETING = "completing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    NODE_FAIL = "node_fail"
    PREEMPTED = "preempted"
    GONE = "gone"
    UNKNOWN = "unknown"

    # members are singletons compared by identity: hash them the same way, in C
    # (the job table hashes states thousands of times per poll)
    __hash__ = object.__hash__

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
        JobState.PREEMPTED,
        JobState.GONE,
    }
)
#: Waiting for resources: asked for, not yet charged.
QUEUED: frozenset[JobState] = frozenset(
    {JobState.SUBMITTING, JobState.PENDING, JobState.HELD}
)
#: Holding an allocation (a suspended job holds it, frozen).
RUNNING: frozenset[JobState] = frozenset(
    {JobState.RUNNING, JobState.SUSPENDED, JobState.COMPLETING}
)
#: Ended by a failure (of the job, its walltime, its node, or preempted).
FAILED: frozenset[JobState] = frozenset(
    {JobState.FAILED, JobState.TIMEOUT, JobState.NODE_FAIL, JobState.PREEMPTED}
)
#: Ended by the site, not by the job: never a failed start.
SITE_FAULTS: frozenset[JobState] = frozenset({JobState.NODE_FAIL, JobState.PREEMPTED})


class JobStatus(NamedTuple):
    """What the queue says about one job.

    Times are POSIX timestamps (seconds) or ``None`` where the queue gave none;
    ``time_limit`` is the walltime in seconds. A named tuple: a poll makes one
    for each of thousands of jobs, and compares it with the last.
    """

    state: JobState
    reason: str = ""
    node: str = ""
    submit_time: float | None = None
    start_time: float | None = None
    end_time: float | None = None
    time_limit: float | None = None
    exit_code: str = ""
    #: the partition (queue) the job runs or waits in
    partition: str = ""

    def updated(self, newer: JobStatus) -> JobStatus:
        """This status after the queue said ``newer``.

        ``UNKNOWN`` (the controller did not answer) keeps this status. Otherwise
        the newer state and reason win; node, times and exit code are kept where
        ``newer`` gives none (a status query may leave some of them out). A job
        queued again (requeued after a node failure or a preemption) has not
        started: its start time and node are dropped.
        """
        if newer.state is JobState.UNKNOWN or newer == self:
            return self
        queued = newer.state in QUEUED
        return JobStatus(
            state=newer.state,
            reason=newer.reason,
            node=newer.node or ("" if queued else self.node),
            submit_time=newer.submit_time or self.submit_time,
            start_time=newer.start_time or (None if queued else self.start_time),
            end_time=newer.end_time or self.end_time,
            time_limit=newer.time_limit or self.time_limit,
            exit_code=newer.exit_code or self.exit_code,
            partition=newer.partition or self.partition,
        )

    def run_seconds(self, now: float) -> float:
        """Seconds this run has held its allocation: start to end, or to ``now``."""
        if self.start_time is None:
            return 0.0
        end = self.end_time if self.end_time is not None else now
        return max(0.0, end - self.start_time)

    def walltime_left(self, now: float) -> float | None:
        """Seconds before the queue ends the job; ``None`` before it started."""
        if self.start_time is None or self.time_limit is None:
            return None
        if self.state.is_terminal:
            return 0.0
        return max(0.0, self.start_time + self.time_limit - now)


@dataclass
class JobRecord:
    """One batch job in the cluster's job table: its queue status and what the
    cluster knows besides (its workers, whether it asked for the cancel).

    ``name`` is the cluster's name for the job (one name per job; a job of
    several worker processes has workers ``name-0``, ``name-1``...).
    """

    name: str
    job_id: str = ""
    status: JobStatus = JobStatus(JobState.SUBMITTING)  # noqa: RUF009 - immutable
    workers: set[str] = field(default_factory=set)
    workers_seen: int = 0
    cancel_requested: bool = False
    connected_time: float | None = None
    stdout_path: str = ""
    stderr_path: str = ""
    #: seconds of allocation charged before the job was requeued (earlier runs)
    earlier_runs: float = 0.0
    #: how often the queue requeued the job
    requeues: int = 0
    #: the worker pool the job belongs to ("": the cluster's default pool)
    pool: str = ""
    #: why the job asks for its walltime (when the adaptive policy chose it)
    note: str = ""

    @property
    def state(self) -> JobState:
        """``status.state``, the one field everything asks about."""
        return self.status.state

    def observe(self, status: JobStatus, now: float) -> None:
        """Take what a status query said at ``now``.

        A job that had started and is queued again was requeued: the run so far
        stays charged (:attr:`earlier_runs`), the pending time is not.
        """
        updated = self.status.updated(status)
        if self.status.start_time is not None and updated.start_time is None:
            self.earlier_runs += self.status.run_seconds(now)
            self.requeues += 1
            self.connected_time = None
        self.status = updated

    def charged_seconds(self, now: float) -> float:
        """Seconds of allocation charged so far, earlier runs included."""
        return self.earlier_runs + self.status.run_seconds(now)

    @property
    def failed_start(self) -> bool:
        """Ended before any of its workers connected, not because we asked and
        not because of the site (a node failure, a preemption)."""
        return (
            self.state.is_terminal
            and self.workers_seen == 0
            and not self.cancel_requested
            and self.state is not JobState.CANCELLED
            and self.state not in SITE_FAULTS
        )


@dataclass(frozen=True)
class ClusterTag:
    """Which cluster a job belongs to, stored with the job in the queue.

    The owning process (``host``, ``pid``, and when it ``started``, so that a
    reused pid is not taken for the owner) and a ``nonce`` telling apart the
    clusters of one process. Written ``hpcdask:HOST:PID:STARTED:NONCE``.
    """

    host: str
    pid: int
    started: int
    nonce: str

    PREFIX: ClassVar[str] = "hpcdask:"

    def __str__(self) -> str:
        return f"{self.PREFIX}{self.host}:{self.pid}:{self.started}:{self.nonce}"

    @classmethod
    def parse(cls, text: str) -> ClusterTag | None:
        """The tag in ``text`` (a job's comment or variable), or ``None``."""
        text = text.strip()
        if not text.startswith(cls.PREFIX):
            return None
        host, _, rest = text[len(cls.PREFIX) :].partition(":")
        parts = rest.split(":")
        if not host or len(parts) != 3 or not all(p.isalnum() for p in parts):
            return None
        pid, started, nonce = parts
        if not (pid.isdigit() and started.isdigit()):
            return None
        return cls(host, int(pid), int(started), nonce)


@dataclass(frozen=True)
class QueuedJob:
    """A job found in the queue by a user-wide listing (``hpcdask jobs``):
    its id, its batch job name, its status, and its cluster's tag if it has
    one."""

    job_id: str
    name: str
    status: JobStatus
    tag: ClusterTag | None = None


# -- adaptive scaling: what the policy sees, is told and decides ---------------------


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
        return self.workers == 0 and self.state in QUEUED


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
    #: the queue's plan, to choose the walltime of new jobs (None: not known)
    forecast: QueueForecast | None = None
    #: a forecast is being read and none is at hand: wait for it to submit
    forecast_due: bool = False


def lifetime_margin(walltime: float) -> float:
    """Seconds a worker retires before its job's walltime: 10% of it, at
    least 15 s and at most 5 minutes, and never more than half of it."""
    return min(max(0.1 * walltime, 15.0), 300.0, 0.5 * walltime)


@dataclass(frozen=True)
class PolicyParams:
    """The knobs of :func:`hpcdask.policy.decide` (seconds for times), built
    from ``adapt()``'s arguments and config by
    :func:`hpcdask.config.adaptive_settings`."""

    minimum_jobs: int = 0
    maximum_jobs: int = 2**31
    workers_per_job: int = 1
    max_pending_jobs: int | None = None
    idle_timeout: float = 10.0
    scale_down_delay: float = 2.0
    replace_ahead: float = 60.0
    lifetime_margin: float = 0.0
    max_failed_starts: int = 3
    failure_backoff: float = 5.0
    #: how new jobs' walltimes are chosen from the queue's forecast (None: all
    #: jobs ask for the user's walltime)
    shapes: ShapeParams | None = None

    def __post_init__(self) -> None:
        if self.minimum_jobs < 0 or self.maximum_jobs < self.minimum_jobs:
            raise ValueError(
                f"need 0 <= minimum_jobs <= maximum_jobs, got "
                f"{self.minimum_jobs} and {self.maximum_jobs}"
            )
        if self.max_pending_jobs is not None and self.max_pending_jobs < 1:
            raise ValueError(f"max_pending_jobs must be >= 1: {self.max_pending_jobs}")

    @property
    def minimum_workers(self) -> int:
        return self.minimum_jobs * self.workers_per_job

    @property
    def maximum_workers(self) -> int:
        return self.maximum_jobs * self.workers_per_job


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
    #: the walltimes of the ``submit`` new jobs, when chosen (else the user's)
    shapes: tuple[JobShape, ...] = ()

    @property
    def is_noop(self) -> bool:
        return not (self.submit or self.cancel or self.retire or self.drain)
