"""SLURMCluster against the real local Slurm: start, compute, observe, close."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import dask.array as da
import pytest
from distributed import Client

from hpcdask import JobFailedError, JobSubmissionError, SLURMCluster
from tests.integration.conftest import job_field, wait_for

pytestmark = pytest.mark.usefixtures("new_jobs")

NewJobs = Callable[[], list[str]]


def test_four_workers_compute_and_close_leaves_nothing(new_jobs: NewJobs) -> None:
    with SLURMCluster(cores=1, memory="1GB", walltime="00:10:00") as cluster:
        script = cluster.job_script()
        assert "#SBATCH --cpus-per-task=1" in script
        assert cluster.scheduler.address.split("//")[1] in script
        cluster.scale(4)
        with Client(cluster) as client:
            client.wait_for_workers(4, timeout=60)
            x = da.arange(1_000_000, chunks=10_000)
            assert x.sum().compute() == 1_000_000 * 999_999 // 2
            jobs = cluster.jobs()
            assert len(jobs) == 4
            assert set(jobs["state"]) == {"running"}
            assert list(jobs["workers"]) == [1, 1, 1, 1]
            ids = list(jobs["job_id"])
            assert sorted(ids) == sorted(new_jobs())
            # the queue's own view agrees once a poll has run
            wait_for(lambda: all(cluster.jobs()["node"] == socket.gethostname()))
            left = cluster.jobs()["walltime_left"]
            assert all(left > left.dtype.type(0)) and all(
                left.dt.total_seconds() <= 600
            )
    assert new_jobs() == []
    assert {job_field(i, "JobState") for i in ids} == {"CANCELLED"}


def test_several_processes_per_job_scale_by_whole_jobs(new_jobs: NewJobs) -> None:
    with (
        SLURMCluster(cores=2, processes=2, memory="2GB") as cluster,
        Client(cluster) as client,
    ):
        cluster.scale(4)  # two jobs of two workers
        client.wait_for_workers(4, timeout=60)
        names = sorted(w["name"] for w in client.scheduler_info()["workers"].values())
        assert names == [
            "dask-worker-0-0",
            "dask-worker-0-1",
            "dask-worker-1-0",
            "dask-worker-1-1",
        ]
        assert len(cluster.jobs()) == 2
        cluster.scale(3)  # rounds up to whole jobs: still two
        assert len(new_jobs()) == 2
        cluster.scale(2)  # one whole job goes, its workers retired first
        wait_for(lambda: len(client.scheduler_info()["workers"]) == 2)
        wait_for(lambda: len(new_jobs()) == 1)
        names = {
            w["name"].rsplit("-", 1)[0]
            for w in client.scheduler_info()["workers"].values()
        }
        assert len(names) == 1  # the two left belong to one job


def test_scale_by_jobs_cores_and_memory(new_jobs: NewJobs) -> None:
    with SLURMCluster(cores=2, processes=1, memory="2GB") as cluster:
        cluster.scale(jobs=2)
        assert len(new_jobs()) == 2
        cluster.scale(cores=6)
        assert len(new_jobs()) == 3
        cluster.scale(memory="9GB")
        assert len(new_jobs()) == 5
        cluster.scale(0)
        wait_for(lambda: new_jobs() == [])


def test_bad_partition_fails_at_once_and_queues_nothing(new_jobs: NewJobs) -> None:
    with SLURMCluster(cores=1, memory="1GB", queue="nosuchpartition") as cluster:
        with pytest.raises(JobSubmissionError, match=r"(?i)invalid partition"):
            cluster.scale(2)
        assert new_jobs() == []
        assert len(cluster.worker_spec) == 0  # not retried behind the user's back


def test_bad_python_is_a_failed_start_with_the_log_tail() -> None:
    with SLURMCluster(cores=1, memory="1GB", python="/no/such/python") as cluster:
        cluster.scale(1)
        job_id = cluster.jobs()["job_id"][0]
        with Client(cluster) as client, pytest.raises(JobFailedError) as info:
            client.wait_for_workers(1, timeout=60)
        message = str(info.value)
        assert f"job {job_id}" in message
        assert "/no/such/python" in message and "No such file" in message
        assert info.value.state == "failed"
        assert cluster.jobs()["state"][0] == "failed"
        assert len(cluster.worker_spec) == 0  # not resubmitted in a loop


def test_job_cancelled_from_outside_is_replaced(new_jobs: NewJobs) -> None:
    with SLURMCluster(cores=1, memory="1GB") as cluster, Client(cluster) as client:
        cluster.scale(2)
        client.wait_for_workers(2, timeout=60)
        victim = cluster.jobs()["job_id"][0]
        subprocess.run(["scancel", victim], check=True)
        wait_for(lambda: len(cluster.jobs()) == 3, timeout=30)
        jobs = cluster.jobs().set_index("job_id")
        assert jobs.loc[victim, "state"] == "cancelled"
        client.wait_for_workers(2, timeout=60)
        assert len([j for j in new_jobs() if j != victim]) == 2
        assert da.ones(1000, chunks=100).sum().compute() == 1000


def test_environment_variable_in_name_is_expanded_per_job() -> None:
    with (
        SLURMCluster(cores=1, memory="1GB", name="run-$SLURM_ARRAY_JOB_ID") as cluster,
        Client(cluster) as client,
    ):
        cluster.scale(2)  # one array of two: each element expands the variable
        client.wait_for_workers(2, timeout=60)
        cluster.scale(3)  # a single job, where Slurm leaves the variable empty
        client.wait_for_workers(3, timeout=60)
        jobs = cluster.jobs()
        names = sorted(w["name"] for w in client.scheduler_info()["workers"].values())
        base = jobs["job_id"][0].split("_")[0]
        assert list(jobs["job_id"][:2]) == [f"{base}_0", f"{base}_1"]
        assert names == sorted([f"run-{base}-0", f"run-{base}-1", "run--2"])
        assert list(jobs["workers"]) == [1, 1, 1]  # matched back to their jobs


def test_invalid_input_submits_nothing(new_jobs: NewJobs) -> None:
    for bad in ({"queue": "debug;id"}, {"account": "$(id)"}, {"memory": "1GB\nid"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            SLURMCluster(**{"cores": 1, "memory": "1GB", **bad})
    assert new_jobs() == []


async def test_async_cluster(new_jobs: NewJobs) -> None:
    async with SLURMCluster(cores=1, memory="1GB", asynchronous=True) as cluster:
        await cluster.scale(2)
        async with Client(cluster, asynchronous=True) as client:
            await client.wait_for_workers(2, timeout=60)
            assert await client.submit(sum, [1, 2, 3]) == 6
    assert new_jobs() == []


def test_interpreter_exit_without_close_cancels_jobs(
    log_directory: Path, new_jobs: NewJobs
) -> None:
    script = textwrap.dedent(
        """
        import dask.config
        from hpcdask import SLURMCluster
        dask.config.set({"hpcdask.slurm.scheduler-options": {"dashboard_address": "127.0.0.1:0"}})
        cluster = SLURMCluster(cores=1, memory="1GB", log_directory=LOGS)
        cluster.scale(2)
        print(",".join(cluster.jobs()["job_id"]), flush=True)
        """
    ).replace("LOGS", repr(str(log_directory)))
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    ids = out.stdout.strip().split(",")
    assert len(ids) == 2
    assert new_jobs() == []
    assert {job_field(i, "JobState") for i in ids} == {"CANCELLED"}
