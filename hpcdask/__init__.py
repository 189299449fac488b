"""hpcdask: Dask clusters on HPC batch queues (Slurm, PBS, Grid Engine)."""

from __future__ import annotations

from hpcdask.cluster import (
    HPCCluster,
    LocalBatchCluster,
    PBSCluster,
    SGECluster,
    SLURMCluster,
)
from hpcdask.cost import JobResources, Usage
from hpcdask.errors import (
    BatchCommandError,
    HPCDaskError,
    InvalidOptionError,
    JobFailedError,
    JobSubmissionError,
)
from hpcdask.models import JobState
from hpcdask.profiles import Profile, load_profile, profile_names

__all__ = [
    "BatchCommandError",
    "HPCCluster",
    "HPCDaskError",
    "InvalidOptionError",
    "JobFailedError",
    "JobResources",
    "JobState",
    "JobSubmissionError",
    "LocalBatchCluster",
    "PBSCluster",
    "Profile",
    "SGECluster",
    "SLURMCluster",
    "Usage",
    "load_profile",
    "profile_names",
]
__version__ = "0.1.0"
