"""SGECluster on the real one-node Son of Grid Engine (ci/sge-up.sh).

``sge_cluster_jobs`` sets ``SGE_ROOT`` for the test only: hpcdask then runs
SGE's commands with the environment of SGE's settings.sh, while this process's
own PATH keeps Slurm's Torque-compatible ``qsub`` (the PBS tests use it). It
fails the test if a job the test's clusters queued is still in SGE after it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import dask.array as da
import dask.config
import pytest
from distributed import Client, wait

from hpcdask import HPCCluster, JobFailedError, JobSubmissionError, SGECluster
from hpcdask.cli import main as hpcdask_main
from tests.integration.conftest import wait_for
from tests.integration.sge_site import SGE

pytestmark = pytest.mark.timeout(180)

Queued = Callable[[], list[str]]


def calls(cluster: SGECluster, program: str, option: str = "") -> int:
    """How many times the cluster ran ``program`` (with ``option``)."""
    runner = cluster.backend.runner  # type: ignore[attr-defined]
    return sum(
        1 for a in runner.calls if a[0] == program and (not option or option in a)
    )


def detail(sge: SGE, job_id: str) -> dict[str, str]:
    """``qstat -j``'s ``key: value`` lines of a job."""
    out = sge.run("qstat", "-j", job_id.split(".")[0]).stdout
    pairs = (line.partition(":") for line in out.splitlines())
    return {key.strip(): value.strip() for key, sep, value in pairs if sep}


def test_two_jobs_give_two_workers_and_close_leaves_nothing(
    sge: SGE, sge_cluster_jobs: Queued
) -> None:
    plain_qsub = shutil.which("qsub")
    assert plain_qsub and not plain_qsub.startswith(str(sge.root))  # Slurm's
    with SGECluster(
        cores=1,
        memory="1GB",
        walltime="00:10:00",
        project="hpcdask",
        resource_spec="h_vmem=2G",
    ) as cluster:
        script = cluster.job_script()
        for line in ("#$ -P hpcdask", "#$ -l h_vmem=2G", "#$ -l h_rt=00:10:00"):
            assert line in script.splitlines()
        assert cluster.scheduler.address.startswith("tls://")
        started = time.monotonic()
        cluster.scale(2)
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=60)
            arrived = time.monotonic() - started
            assert da.ones((2000, 2000), chunks=500).sum().compute() == 4_000_000
            ids = list(cluster.jobs()["job_id"])
            assert sorted(ids) == sorted(
                f"{base}.{task}"
                for base in sge_cluster_jobs()
                for task in (1, 2)  # one qsub: an array of two
            )
            assert calls(cluster, "qsub") == 1
            # the workers run in SGE jobs, task 1 and task 2 of one array
            env = client.run(lambda: (os.environ["JOB_ID"], os.environ["SGE_TASK_ID"]))
            assert sorted(f"{j}.{t}" for j, t in env.values()) == sorted(ids)
            # the queue's view: running on vm, walltime from h_rt
            wait_for(lambda: set(cluster.jobs()["node"]) == {"vm"}, 10, "a poll")
            left = cluster.jobs()["walltime_left"].dt.total_seconds()
            assert all(0 < s <= 600 for s in left)
            job = detail(sge, ids[0])
            assert job["project"] == "hpcdask"
            assert "h_rt=600" in job["hard resource_list"]
            assert "h_vmem=2G" in job["hard resource_list"]
            assert cluster.usage().cores_in_use == 2  # 2 jobs x 1 slot
            # the /hpc page is served for an SGE cluster too
            assert cluster.view().system == "sge"
            with urllib.request.urlopen(
                cluster.dashboard_link.replace("/status", "/hpc"), timeout=10
            ) as page:
                assert page.status == 200
    print(f"\nSGE: 2 workers {arrived:.2f} s after scale(2)")
    assert sge_cluster_jobs() == []
    assert not set(ids) & sge.queued()
    assert set(cluster.jobs()["state"]) == {"cancelled"}


def test_an_array_of_four_is_one_qsub_with_pe_slots(
    sge: SGE, sge_cluster_jobs: Queued
) -> None:
    with (
        SGECluster(
            cores=2, processes=1, memory="1GB", parallel_environment="smp"
        ) as cluster,
        Client(cluster) as client,
    ):
        assert "#$ -pe smp 2" in cluster.job_script().splitlines()
        started = time.monotonic()
        cluster.scale(4)
        client.wait_for_workers(4, timeout=60)
        arrived = time.monotonic() - started
        assert calls(cluster, "qsub") == 1
        (base,) = sge_cluster_jobs()
        jobs = cluster.jobs()
        assert list(jobs["job_id"]) == [f"{base}.{i}" for i in (1, 2, 3, 4)]
        assert list(jobs["name"]) == [f"dask-worker-{i}" for i in range(4)]
        names = sorted(w["name"] for w in client.scheduler_info()["workers"].values())
        assert names == [f"dask-worker-{i}" for i in range(4)]
        assert set(client.run(lambda: os.environ["NSLOTS"]).values()) == {"2"}
        assert "smp range: 2" in " ".join(
            detail(sge, base)["parallel environment"].split()
        )
        wait_for(lambda: set(cluster.jobs()["state"]) == {"running"}, 10, "a poll")
        assert cluster.usage().cores_in_use == 8  # slots x jobs
    print(f"\nSGE: an array of 4 brought 4 workers in {arrived:.2f} s")
    assert sge_cluster_jobs() == []


def test_an_eqw_job_is_a_failed_start_with_the_queues_reason_and_is_deleted(
    sge: SGE, sge_cluster_jobs: Queued
) -> None:
    # SGE cannot start the job in a missing directory: the job goes to Eqw
    # and would wait there for ever
    with (
        SGECluster(
            cores=1, memory="1GB", job_extra_directives=["-wd /nonexistent/hx-wd"]
        ) as cluster,
        Client(cluster) as client,
    ):
        started = time.monotonic()
        cluster.scale(1)
        (job_id,) = sge_cluster_jobs()
        with pytest.raises(JobFailedError) as info:
            client.wait_for_workers(1, timeout=60)
        detected = time.monotonic() - started
        message = str(info.value)
        assert f"job {job_id} ended (failed)" in message
        assert "queue reason: Eqw: can't chdir to /nonexistent/hx-wd" in message
        assert job_id not in sge.queued()  # deleted, not left in Eqw
        assert cluster.jobs()["state"][0] == "failed"
        assert len(cluster.worker_spec) == 0  # not resubmitted in a loop
        assert calls(cluster, "qstat", "-j") == 1
        assert calls(cluster, "qsub") == 1
    print(f"\nSGE: Eqw reported {detected:.2f} s after scale(1)")


def test_a_refused_submission_says_what_sge_said(sge_cluster_jobs: Queued) -> None:
    refused = pytest.raises(JobSubmissionError, match='unknown queue "nosuchqueue"')
    with SGECluster(cores=1, memory="1GB", queue="nosuchqueue") as cluster, refused:
        cluster.scale(1)
    with pytest.raises(ValueError, match="invalid project="):
        SGECluster(cores=1, memory="1GB", project="p;id")
    assert sge_cluster_jobs() == []


def sleep_and_return(x: int) -> int:
    time.sleep(0.5)
    return x


def test_adapt_grows_in_one_qsub_and_shrinks(sge_cluster_jobs: Queued) -> None:
    with SGECluster(cores=1, memory="1GB") as cluster, Client(cluster) as client:
        cluster.adapt(minimum_jobs=0, maximum_jobs=4, idle_timeout=2, wait_count=3)
        time.sleep(2)
        assert sge_cluster_jobs() == []  # no work, no jobs
        futures = client.map(sleep_and_return, range(40))
        assert sum(client.gather(futures)) == sum(range(40))
        assert 1 <= calls(cluster, "qsub") <= 2
        assert 2 <= len(cluster.jobs()) <= 4
        del futures
        wait_for(lambda: sge_cluster_jobs() == [], 30, "idle jobs to be given back")
        wait_for(
            lambda: set(cluster.jobs()["state"]) <= {"cancelled", "completed"},
            10,
            "the queue's word",
        )


def test_walltime_rollover_hands_data_over(sge_cluster_jobs: Queued) -> None:
    # 50-s jobs (h_rt); workers retire after 35 s, a replacement is queued ahead
    with (
        SGECluster(cores=1, memory="1GB", walltime="00:00:50") as cluster,
        Client(cluster) as client,
    ):
        cluster.adapt(minimum_jobs=1, maximum_jobs=1)
        client.wait_for_workers(1, timeout=60)
        first = cluster.jobs()["job_id"][0]
        data = client.map(lambda i: bytes(1000) * i, range(10), pure=False)
        wait(data)
        # the first job's worker retires at 35 s: its data moves to the next
        wait_for(
            lambda: (
                cluster.jobs().set_index("job_id").loc[first, "state"]
                in ("completed", "cancelled")
            ),
            60,
            "the first job to end",
        )
        assert client.gather(data) == [bytes(1000) * i for i in range(10)]
        assert len(cluster.jobs()) >= 2
        assert len(client.scheduler_info()["workers"]) == 1


def test_hpcdask_jobs_and_cancel_with_sges_commands(
    sge: SGE, sge_cluster_jobs: Queued
) -> None:
    name = f"hx-sge-cli-{os.getpid()}"
    hpcdask = Path(sys.executable).with_name("hpcdask")
    env = {**os.environ}  # SGE_ROOT is set for this test by sge_cluster_jobs

    def command(*argv: str) -> str:
        result = subprocess.run(
            [str(hpcdask), *argv], capture_output=True, text=True, timeout=60, env=env
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    cluster = SGECluster(cores=1, memory="1GB", job_name=name)
    try:
        cluster.scale(2)
        ids = list(cluster.jobs()["job_id"])
        tag = str(cluster.manager.tag)
        assert f"#$ -ac HPCDASK_CLUSTER={tag}" in cluster.job_script()
        listed = command("jobs", "--system", "sge", "--name", name)
        assert all(job_id in listed for job_id in ids), listed
        assert f"cluster {tag} (process {os.getpid()}: alive)" in listed
        # a live cluster is left alone unless named
        out = command("cancel", name, "--system", "sge")
        assert f"left alone: 2 job(s) of cluster {tag}" in out
        out = command("cancel", "--cluster", tag, "--system", "sge")
        assert "cancelled 2 job(s)" in out and all(i in out for i in ids)
        # gone from SGE (the cluster, still wanting two jobs, may queue
        # replacements meanwhile: close() cancels those)
        wait_for(lambda: not set(ids) & sge.queued(), 20, "the cancelled jobs to go")
    finally:
        cluster.close()
    assert hpcdask_main(["jobs", "--system", "sge", "--name", name]) == 0


def test_a_profile_for_sge(sge_cluster_jobs: Queued) -> None:
    profile = {
        "system": "sge",
        "queue": "all.q",
        "cores": 2,
        "memory": "2GB",
        "parallel-environment": "smp",
        "directives": ["-m n"],
    }
    with (
        dask.config.set({"hpcdask.profiles": {"ge-small": profile}}),
        HPCCluster.from_profile("ge-small") as cluster,
    ):
        assert isinstance(cluster, SGECluster)
        lines = cluster.job_script().splitlines()
    assert {"#$ -q all.q", "#$ -pe smp 2", "#$ -m n"} <= set(lines)
    assert sge_cluster_jobs() == []
