"""The embedded local backend runs the same job scripts as plain processes."""

from __future__ import annotations

import time

import psutil
import pytest
from distributed import Client

from hpcdask import JobFailedError, LocalBatchCluster


def worker_processes(name: str) -> list[psutil.Process]:
    """The job's worker commands (a nanny's forked worker, which shares the
    nanny's command line, is counted with its nanny)."""
    found = []
    for p in psutil.process_iter(["cmdline", "ppid"]):
        cmdline = p.info["cmdline"] or []
        if "distributed.cli.dask_worker" in cmdline and name in cmdline:
            found.append(p)
    pids = {p.pid for p in found}
    return [p for p in found if p.info["ppid"] not in pids]


def test_local_cluster_runs_job_scripts_and_cleans_up() -> None:
    with (
        LocalBatchCluster(cores=1, memory="1GB", name="localtest") as cluster,
        Client(cluster) as client,
    ):
        cluster.scale(2)
        client.wait_for_workers(2, timeout=60)
        assert client.submit(lambda x: x + 1, 1).result() == 2
        jobs = cluster.jobs()
        assert set(jobs["state"]) == {"running"}
        assert len(worker_processes("localtest-0")) == 1
        cluster.scale(1)
        assert len(worker_processes("localtest-1")) == 0  # cancelled and gone
        deadline = time.monotonic() + 10
        while len(cluster.jobs().query("state == 'running'")) != 1:
            assert time.monotonic() < deadline, cluster.jobs()
            time.sleep(0.2)
    assert (
        worker_processes("localtest-0") == [] and worker_processes("localtest-1") == []
    )


def test_local_walltime_ends_the_job_and_it_is_replaced() -> None:
    with (
        LocalBatchCluster(
            cores=1, memory="1GB", walltime="00:00:08", name="wall"
        ) as cluster,
        Client(cluster) as client,
    ):
        cluster.scale(1)
        client.wait_for_workers(1, timeout=60)
        first = cluster.jobs()["job_id"][0]
        # at its walltime the job is killed (TIMEOUT) and a new one replaces it
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            jobs = cluster.jobs().set_index("job_id")
            # the worker retires at its lifetime (half of a walltime this short)
            if jobs.loc[first, "state"] in ("completed", "timeout") and len(jobs) == 2:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"job not replaced at walltime:\n{cluster.jobs()}")
        client.wait_for_workers(1, timeout=60)


def test_local_failed_start() -> None:
    with (
        LocalBatchCluster(cores=1, memory="1GB", python="/no/such/python") as cluster,
        Client(cluster) as client,
    ):
        cluster.scale(1)
        with pytest.raises(JobFailedError, match="No such file or directory"):
            client.wait_for_workers(1, timeout=60)
