"""One line per worker pool, for the displays of a cluster with several pools.

Plain data (no I/O), built by the job manager from each pool's options, jobs,
connected workers, charges and adaptive bounds; the notebook repr, the ``/hpc``
page and ``cluster.jobs()`` (its ``pool`` column) show it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hpcdask.cost import Usage
from hpcdask.format import format_bytes, plural
from hpcdask.models import QUEUED, RUNNING, JobRecord, PolicyParams
from hpcdask.options import JobOptions

__all__ = ["PoolRow", "pool_row"]


@dataclass(frozen=True)
class PoolRow:
    """A pool as the displays list it."""

    label: str
    shape: str
    running: int
    pending: int
    workers: int
    core_hours: float
    gpu_hours: float
    scaling: str

    def describe(self) -> str:
        """``gpu: 4 cores, 16 GB, 2 GPUs a job; 1 running, 0 pending; 2 workers;
        0.52 core-hours, 0.26 GPU-hours; adaptive 0 to 2 jobs``."""
        charged = f"{self.core_hours:.2f} core-hours"
        if self.gpu_hours:
            charged += f", {self.gpu_hours:.2f} GPU-hours"
        return (
            f"{self.label}: {self.shape} a job; {self.running} running, "
            f"{self.pending} pending; {plural(self.workers, 'worker')}; {charged}; "
            f"{self.scaling}"
        )


def pool_row(
    label: str,
    opts: JobOptions,
    records: Sequence[JobRecord],
    workers: int,
    usage: Usage,
    adaptive: PolicyParams | None,
) -> PoolRow:
    """The row of the pool ``label`` with ``opts``, whose jobs are ``records``."""
    shape = f"{plural(opts.cores, 'core')}, {format_bytes(opts.memory)}"
    if opts.gpus:
        shape += f", {plural(opts.gpus, 'GPU')}"
    if opts.nodes > 1:
        shape = f"{opts.nodes} nodes of {shape}"
    scaling = "manual"
    if adaptive is not None:
        high = adaptive.maximum_jobs
        top = "no maximum" if high >= 2**31 else str(high)
        scaling = f"adaptive {adaptive.minimum_jobs} to {top} jobs"
    return PoolRow(
        label=label,
        shape=shape,
        running=sum(1 for r in records if r.state in RUNNING),
        pending=sum(1 for r in records if r.state in QUEUED),
        workers=workers,
        core_hours=usage.core_hours,
        gpu_hours=usage.gpu_hours,
        scaling=scaling,
    )
