"""PBSCluster through Slurm's Torque-compatible qsub / qstat / qdel."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

import dask.array as da
import pytest
from distributed import Client

from hpcdask import JobFailedError, JobSubmissionError, PBSCluster
from tests.integration.conftest import job_field

pytestmark = pytest.mark.usefixtures("new_jobs")

NewJobs = Callable[[], list[str]]


def test_pbs_cluster_computes_and_close_leaves_nothing(new_jobs: NewJobs) -> None:
    with PBSCluster(
        cores=2, processes=1, memory="1GB", queue="debug", walltime="00:05:00"
    ) as cluster:
        assert "#PBS -l select=1:ncpus=2:mem=954mb" in cluster.job_script()
        cluster.scale(2)
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=60)
            assert da.ones((2000, 2000), chunks=500).sum().compute() == 4_000_000
            jobs = cluster.jobs()
            ids = list(jobs["job_id"])
            assert set(jobs["state"]) == {"running"}
            # the #PBS directives were honoured by the queue
            assert job_field(ids[0], "NumCPUs") == "2"
            assert job_field(ids[0], "TimeLimit") == "00:05:00"
            assert job_field(ids[0], "Partition") == "debug"
            # qstat is asked about all jobs at once and agrees
            out = subprocess.run(
                ["qstat", "-f", *ids], capture_output=True, text=True, check=True
            ).stdout
            assert out.count("job_state = R") == 2
            # Slurm's qsub writes its own files into the submit (log) directory
            log_dir = cluster.job_options.log_directory
            assert os.path.exists(os.path.join(log_dir, f"dask-worker-{ids[0]}.err"))
    assert new_jobs() == []
    assert {job_field(i, "JobState") for i in ids} == {"CANCELLED"}


def test_pbs_bad_queue_is_a_clear_error(new_jobs: NewJobs) -> None:
    error = pytest.raises(
        JobSubmissionError, match="invalid partition specified: nosuchqueue"
    )
    with PBSCluster(cores=1, memory="1GB", queue="nosuchqueue") as cluster, error:
        cluster.scale(1)
    assert new_jobs() == []


def test_pbs_failed_start_shows_the_log() -> None:
    with (
        PBSCluster(cores=1, memory="1GB", python="/no/such/python") as cluster,
        Client(cluster) as client,
    ):
        cluster.scale(1)
        with pytest.raises(JobFailedError, match="No such file or directory"):
            client.wait_for_workers(1, timeout=60)
