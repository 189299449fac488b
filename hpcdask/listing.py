"""A user's hpcdask clusters as the queue shows them (``hpcdask jobs`` and
``hpcdask cancel``).

Every job hpcdask submits carries its cluster's :class:`~hpcdask.models.ClusterTag`
(Slurm ``--comment``, PBS ``-v HPCDASK_CLUSTER``), which names the owning process:
the jobs of a cluster are found by it whatever their name, and a cluster whose
process is gone (a kernel that died) is told apart from a live one, whose jobs
are left alone unless asked for by name.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from hpcdask.format import format_duration
from hpcdask.models import ClusterTag, QueuedJob
from hpcdask.runner import process_started
from hpcdask.view import JobRow

__all__ = ["ClusterJobs", "Owner", "group_by_cluster", "owner_of", "render_groups"]

#: how far the start time of the tag's process may be from the tag's (seconds)
_START_SLACK = 2


class Owner(enum.Enum):
    """Whether a cluster's process still runs."""

    ALIVE = "alive"
    GONE = "gone"
    ELSEWHERE = "on another host"
    NONE = "not an hpcdask cluster"


def owner_of(tag: ClusterTag | None, host: str) -> Owner:
    """The state of ``tag``'s process, seen from ``host``: a process with its
    pid that started when the tag says is its owner (a pid may be reused)."""
    if tag is None:
        return Owner.NONE
    if tag.host != host:
        return Owner.ELSEWHERE
    started = process_started(tag.pid)
    if started is None:
        return Owner.GONE
    if started == 0.0:  # another user's process: it exists
        return Owner.ALIVE
    return Owner.ALIVE if abs(started - tag.started) <= _START_SLACK else Owner.GONE


@dataclass(frozen=True)
class ClusterJobs:
    """The jobs of one cluster (``tag``) in the queue, and its owner's state."""

    tag: ClusterTag | None
    owner: Owner
    jobs: tuple[QueuedJob, ...]

    @property
    def label(self) -> str:
        if self.tag is None:
            return "jobs of no hpcdask cluster"
        return f"cluster {self.tag} (process {self.tag.pid}: {self.owner.value})"


def group_by_cluster(jobs: Sequence[QueuedJob], host: str) -> list[ClusterJobs]:
    """``jobs`` by cluster, in the order first seen; untagged jobs last."""
    groups: dict[ClusterTag | None, list[QueuedJob]] = {}
    for job in jobs:
        groups.setdefault(job.tag, []).append(job)
    tagged = [t for t in groups if t is not None]
    order: list[ClusterTag | None] = [*tagged, *([None] if None in groups else [])]
    return [ClusterJobs(tag, owner_of(tag, host), tuple(groups[tag])) for tag in order]


def render_jobs(jobs: Sequence[QueuedJob], now: float) -> str:
    """A table of jobs, like squeue's but with age and walltime left."""
    rows = [("JOBID", "NAME", "STATE", "REASON", "NODE", "AGE", "WALLTIME LEFT")]
    for job in jobs:
        row = JobRow.of(job.job_id, job.name, job.status, now)
        rows.append(
            (
                job.job_id,
                job.name,
                row.state.value,
                row.status.reason or "-",
                row.status.node or "-",
                format_duration(row.age),
                format_duration(row.walltime_left),
            )
        )
    return text_table(rows)


def render_groups(groups: Sequence[ClusterJobs], now: float) -> str:
    """Each cluster's line, then its jobs."""
    return "\n\n".join(
        f"{group.label}\n{render_jobs(group.jobs, now)}" for group in groups
    )


def text_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows as left-aligned columns."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
