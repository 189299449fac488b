"""hpcdask: Dask clusters on HPC batch queues (Slurm, PBS)."""

from __future__ import annotations

from hpcdask.cluster import HPCCluster, LocalBatchCluster, PBSCluster, SLURMCluster
from hpcdask.errors import (
    BatchCommandError,
    HPCDaskError,
    InvalidOptionError,
    JobFailedError,
    JobSubmissionError,
)
from hpcdask.models import JobState

__all__ = [
    "BatchCommandError",
    "HPCCluster",
    "HPCDaskError",
    "InvalidOptionError",
    "JobFailedError",
    "JobState",
    "JobSubmissionError",
    "LocalBatchCluster",
    "PBSCluster",
    "SLURMCluster",
]
__version__ = "0.1.0"
