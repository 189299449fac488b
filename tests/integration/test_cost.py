"""cluster.usage() against Slurm's own record of the jobs (scontrol -o show job)."""

from __future__ import annotations

import time

import pytest
from distributed import Client

from hpcdask import SLURMCluster
from tests.integration.conftest import job_field, wait_for

pytestmark = pytest.mark.usefixtures("new_jobs")


def slurm_time(job_id: str, field: str) -> float:
    """StartTime / EndTime as Slurm prints them (local time, whole seconds)."""
    return time.mktime(time.strptime(job_field(job_id, field), "%Y-%m-%dT%H:%M:%S"))


def test_usage_is_slurms_start_to_end_times_the_cores() -> None:
    with (
        SLURMCluster(
            cores=2, processes=1, memory="1GB", walltime="00:10:00"
        ) as cluster,
        Client(cluster) as client,
    ):
        cluster.scale(jobs=2)
        client.wait_for_workers(2, timeout=60)
        # a poll after the workers came: start times are the queue's now
        wait_for(lambda: all(cluster.jobs()["node"] != ""))
        job_ids = list(cluster.jobs()["job_id"])
        assert {job_field(i, "NumCPUs") for i in job_ids} == {"2"}
        starts = {i: slurm_time(i, "StartTime") for i in job_ids}

        now = time.time()
        running = cluster.usage(now)
        expected = sum(2 * (now - s) for s in starts.values()) / 3600
        assert running.core_hours == pytest.approx(expected, abs=1e-9)
        assert running.node_hours == pytest.approx(expected / 2, abs=1e-9)
        assert (running.cores_in_use, running.nodes_in_use) == (4, 2)
        assert running.gpu_hours == 0 and running.gpus_in_use == 0
        # a running job's charge grows with the clock it is given
        assert cluster.usage(now + 3600).core_hours == pytest.approx(expected + 4)
        time.sleep(1.5)  # so the jobs end a measurable while after they started

    # close() cancelled the jobs; Slurm recorded when they ended
    assert {job_field(i, "JobState") for i in job_ids} == {"CANCELLED"}
    ends = {i: slurm_time(i, "EndTime") for i in job_ids}
    expected = sum(2 * (ends[i] - starts[i]) for i in job_ids) / 3600
    assert expected > 0
    final = cluster.usage()
    assert final.core_hours == pytest.approx(expected, abs=1e-9)
    assert final.cores_in_use == 0
    # ended jobs cost no more later
    assert cluster.usage(time.time() + 86400).core_hours == final.core_hours
    per_job = {c.job_id: c.seconds for c in final.jobs}
    assert per_job == {i: ends[i] - starts[i] for i in job_ids}


def test_a_job_that_never_started_costs_nothing() -> None:
    with SLURMCluster(cores=1, memory="1GB", queue="down") as cluster:
        cluster.scale(jobs=1)
        wait_for(lambda: cluster.jobs()["reason"][0] == "PartitionDown")
        job_id = cluster.jobs()["job_id"][0]
        assert job_field(job_id, "StartTime") == "Unknown"
        usage = cluster.usage(time.time() + 3600)
        assert (usage.core_hours, usage.cores_in_use) == (0.0, 0)
        assert "pending (PartitionDown)" in cluster._repr_html_()
