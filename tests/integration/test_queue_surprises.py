"""What real queues print and do (issue #12), made to happen on the real local
Slurm: arrays with holes, a user's time format, MaxArraySize, a requeue, a
preemption (REQUEUE and CANCEL), SPECIAL_EXIT, a failing scancel, a submission
cut short or timed out, names from the prologue, adapt() bounds in workers, and
the dashboard's address. Each test failed on the code before the issue.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dask.config
import pytest
from distributed import Client
from distributed.utils import get_ip

from hpcdask import SLURMCluster
from hpcdask.errors import JobSubmissionError
from hpcdask.runner import SubprocessRunner
from tests.integration.conftest import wait_for
from tests.integration.fault_report import record_fault

pytestmark = pytest.mark.usefixtures("new_jobs")

NewJobs = Callable[[], list[str]]
SBATCH, SCANCEL = "/usr/bin/sbatch", "/usr/bin/scancel"


def calls(cluster: SLURMCluster, *command: str) -> int:
    """How many commands the cluster ran that start with ``command``."""
    runner = cluster.backend.runner  # type: ignore[attr-defined]
    assert isinstance(runner, SubprocessRunner)
    return sum(1 for argv in runner.calls if tuple(argv[: len(command)]) == command)


def square(x: int) -> int:
    time.sleep(0.2)
    return x * x


Wrap = Callable[[str, str], None]


@pytest.fixture
def wrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Wrap:
    """``wrap(command, body)``: a bash script named ``command``, earlier on
    this test's PATH than Slurm's own."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")

    def make(command: str, body: str) -> None:
        path = bin_dir / command
        path.write_text(f"#!/bin/bash\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)

    return make


# -- 4, 10: arrays with holes and long lists; arrays beyond MaxArraySize ---------------


def test_array_with_holes_and_a_long_list_is_tracked_whole(new_jobs: NewJobs) -> None:
    with SLURMCluster(cores=1, memory="100MB", queue="down") as cluster:
        cluster.scale(jobs=100)
        ids = list(cluster.jobs()["job_id"])
        holes = [ids[i] for i in (1, 3, 5, 10, 20, 33, 47)]
        subprocess.run([SCANCEL, *holes], check=True)
        wait_for(
            lambda: (cluster.jobs()["state"] == "cancelled").sum() == 7,
            30,
            "the cancelled elements",
        )
        # cancelled from outside while wanted: replaced, and never taken
        # for failed starts (every element tracked, the unparsed ones too)
        wait_for(lambda: len(new_jobs()) == 100, 30, "7 replacements")
        jobs = cluster.jobs()
        assert (jobs["state"] == "pending").sum() == 100
        assert cluster.failures == []
    assert new_jobs() == []  # every element cancelled


def test_scale_beyond_the_sites_max_array_size(new_jobs: NewJobs) -> None:
    with SLURMCluster(cores=1, memory="100MB", queue="down") as cluster:
        cluster.scale(jobs=1500)  # MaxArraySize=1001 here (Slurm's default)
        assert calls(cluster, "sbatch") == 2
        # the limit is asked once (the controller's address is another scontrol)
        assert calls(cluster, "scontrol", "show", "config") == 1
        wait_for(lambda: len(new_jobs()) == 1500, 60, "1500 queued jobs")
        assert set(cluster.jobs()["state"]) == {"pending"}
    assert new_jobs() == []


# -- 7. the user's SLURM_TIME_FORMAT ----------------------------------------------------


def test_a_users_time_format_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_TIME_FORMAT", "relative")
    with SLURMCluster(cores=1, memory="1GB") as cluster, Client(cluster) as client:
        cluster.scale(1)
        client.wait_for_workers(1, timeout=60)
        wait_for(lambda: cluster.jobs()["node"][0] != "", 30, "a poll")
        time.sleep(2)
        (left,) = cluster.jobs()["walltime_left"]
        assert 0 < left.total_seconds() <= 1800  # not blank
        assert cluster.usage().core_hours > 0


# -- 6, 14: requeue, preemption, SPECIAL_EXIT ---------------------------------------------


def test_a_requeued_job_is_pending_again_and_not_replaced(new_jobs: NewJobs) -> None:
    with SLURMCluster(cores=1, memory="1GB") as cluster, Client(cluster) as client:
        cluster.adapt(minimum_jobs=1, maximum_jobs=1)
        client.wait_for_workers(1, timeout=60)
        (job_id,) = cluster.jobs()["job_id"]
        time.sleep(2)
        requeued_at = time.monotonic()
        subprocess.run(["scontrol", "requeue", job_id], check=True)
        wait_for(lambda: cluster.jobs()["state"][0] == "pending", 20, "pending again")
        noticed = time.monotonic() - requeued_at
        assert str(cluster.jobs()["start_time"][0]) == "NaT"
        charged = cluster.usage().core_hours
        assert charged > 0  # the first run stays charged
        time.sleep(3)
        assert cluster.usage().core_hours == charged  # the pending time is not
        assert calls(cluster, "sbatch") == 1  # pending capacity: no replacement
        client.wait_for_workers(1, timeout=90)
        back = time.monotonic() - requeued_at
        assert sum(client.gather(client.map(square, range(10)))) == 285
        assert list(cluster.jobs()["job_id"]) == [job_id]
        assert cluster.failures == []
    record_fault(
        "7. job requeued (scontrol requeue)",
        "pending again, not charged while pending, not replaced, computes after",
        f"pass: pending {noticed:.1f} s after the requeue; 1 sbatch in all; "
        f"worker back {back:.1f} s after (cred_expire=10)",
        back,
    )


def urgent_job(directory: Path) -> str:
    """A job of the urgent partition wanting the whole node: it preempts."""
    out = subprocess.run(
        [SBATCH, "--parsable", "-p", "urgent", "-c", "64", "--mem=1G", "-t", "1",
         "-o", "/dev/null", "--wrap", "sleep 5"],
        cwd=directory, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return out.stdout.strip()


@pytest.mark.parametrize("partition", ["preemptable", "cancelable"])
def test_preemption_is_a_site_fault_not_a_failed_start(
    partition: str, log_directory: Path
) -> None:
    with (
        SLURMCluster(cores=1, memory="1GB", queue=partition) as cluster,
        Client(cluster) as client,
    ):
        cluster.scale(1)
        client.wait_for_workers(1, timeout=60)
        (first,) = cluster.jobs()["job_id"]
        futures = client.map(square, range(60))
        wait_for(lambda: sum(f.done() for f in futures) >= 5, 60, "some results")
        preempted_at = time.monotonic()
        urgent_job(log_directory)
        expected = "pending" if partition == "preemptable" else "preempted"
        wait_for(
            lambda: cluster.jobs().set_index("job_id").loc[first, "state"] == expected,
            30,
            f"the job {expected}",
        )
        noticed = time.monotonic() - preempted_at
        assert client.gather(futures) == [x * x for x in range(60)]
        done = time.monotonic() - preempted_at
        assert cluster.failures == []
        jobs = cluster.jobs()
        if partition == "cancelable":
            assert len(jobs) == 2  # replaced: the target still wants one job
            assert calls(cluster, "sbatch") == 2
        else:
            assert list(jobs["job_id"]) == [first]  # the same job, requeued
    record_fault(
        f"8. job preempted (PreemptMode={'REQUEUE' if expected == 'pending' else 'CANCEL'})",
        "60 tasks right; no failed start; requeued or replaced",
        f"pass: {expected} {noticed:.1f} s after the urgent job; all 60 results "
        f"{done:.1f} s after",
        done,
    )


def test_special_exit_is_held_shown_and_cancelled_on_close(new_jobs: NewJobs) -> None:
    with SLURMCluster(cores=1, memory="1GB") as cluster, Client(cluster) as client:
        cluster.scale(1)
        client.wait_for_workers(1, timeout=60)
        (job_id,) = cluster.jobs()["job_id"]
        subprocess.run(
            ["scontrol", "requeuehold", "State=SpecialExit", job_id], check=True
        )
        wait_for(lambda: cluster.jobs()["state"][0] == "held", 30, "held")
        assert cluster.jobs()["reason"][0] == "job requeued in held state"
        assert cluster.failures == []
        assert new_jobs() == [job_id]
    assert new_jobs() == []


# -- 2, 3: a failing scancel; submissions cut short or timed out ------------------------


def test_close_with_a_failing_scancel_is_bounded_and_says_what_to_run(
    wrap: Wrap,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    new_jobs: NewJobs,
) -> None:
    wrap(
        "scancel",
        'echo "scancel: error: Unable to contact slurm controller" >&2; exit 1',
    )
    caplog.set_level(logging.ERROR, logger="hpcdask.manager")
    with dask.config.set({"hpcdask.close-timeout": "10s"}):
        cluster = SLURMCluster(cores=1, memory="1GB")
    cluster.scale(2)
    wait_for(lambda: len(new_jobs()) == 2, 30, "two jobs")
    ids = sorted(cluster.jobs()["job_id"])
    tag = str(cluster.manager.tag)
    started = time.monotonic()
    cluster.close()
    took = time.monotonic() - started
    assert took < 20  # 10 s for the jobs, then the scheduler closes
    assert cluster.status.name == "closed"
    message = caplog.text
    assert all(job_id in message for job_id in ids)
    assert f"hpcdask cancel --cluster {tag}" in message
    assert sorted(new_jobs()) == ids  # left, as the log says
    monkeypatch.undo()
    subprocess.run(
        [sys.executable, "-m", "hpcdask.cli", "cancel", "--cluster", tag],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    wait_for(lambda: new_jobs() == [], 20, "hpcdask cancel to cancel them")
    record_fault(
        "9. scancel failing at close()",
        "close() returns within its bound; scheduler closed; log names jobs and command",
        f"pass: close() took {took:.1f} s (bound 10 s); `hpcdask cancel --cluster` "
        "then removed both jobs",
        took,
    )


def test_a_submission_cut_short_by_close_is_cancelled(
    tmp_path: Path, wrap: Wrap, new_jobs: NewJobs
) -> None:
    seen = tmp_path / "submitted"
    wrap("sbatch", f'sleep 3; {SBATCH} "$@" | tee -a {seen}')
    with SLURMCluster(cores=1, memory="1GB") as cluster:
        cluster.adapt(minimum_jobs=2, maximum_jobs=2)
        wait_for(lambda: calls(cluster, "sbatch") == 1, 20, "the submission to start")
        started = time.monotonic()
    took = time.monotonic() - started
    assert seen.read_text().strip()  # the job was queued after close() began
    assert new_jobs() == []  # and cancelled: nothing left
    record_fault(
        "10. submission cut short by close()",
        "the job an sbatch under way queues is cancelled",
        f"pass: close() waited for the 3-s sbatch and cancelled its array in "
        f"{took:.1f} s",
        took,
    )


def test_a_submission_that_timed_out_is_found_by_its_tag(
    wrap: Wrap, caplog: pytest.LogCaptureFixture, new_jobs: NewJobs
) -> None:
    wrap("sbatch", f'{SBATCH} "$@" >/dev/null; exec sleep 60')
    caplog.set_level(logging.WARNING, logger="hpcdask.fleet")
    with (
        dask.config.set({"hpcdask.command-timeout": "4s"}),
        SLURMCluster(cores=1, memory="1GB", queue="down") as cluster,
    ):
        with pytest.raises(JobSubmissionError, match="timed out"):
            cluster.scale(1)
        assert "whose submission was not confirmed" in caplog.text
        wait_for(lambda: new_jobs() == [], 20, "the queued job to be cancelled")


# -- 12. names that use the prologue; 11. adapt bounds in workers -----------------------


def test_names_use_what_the_prologue_sets() -> None:
    with (
        SLURMCluster(
            cores=1,
            memory="1GB",
            name="test-$MY_VAR",
            job_script_prologue=["MY_VAR=value"],
        ) as cluster,
        Client(cluster) as client,
    ):
        cluster.scale(jobs=2)
        client.wait_for_workers(2, timeout=60)
        names = {w["name"] for w in client.scheduler_info()["workers"].values()}
        assert names == {"test-value-0", "test-value-1"}
        # what code written for dask-jobqueue reads of its internals
        with pytest.warns(FutureWarning, match="_dummy_job"):
            job = cluster._dummy_job
        assert (job.worker_processes, job.worker_cores, job.job_id) == (1, 1, None)
        assert job.worker_process_threads == 1 and job.worker_memory == 10**9
        assert job.job_header.startswith("#SBATCH -J test-MY_VAR")
        assert "MY_VAR=value" in job.job_script()
        assert job.submit_command == "sbatch --parsable"
        wait_for(lambda: list(cluster.jobs()["workers"]) == [1, 1], 10, "jobs' workers")


def test_adapt_bounds_in_workers_with_several_processes_per_job() -> None:
    with (
        SLURMCluster(cores=2, processes=2, memory="2GB") as cluster,
        Client(cluster) as client,
    ):
        cluster.adapt(minimum=1, maximum=1)  # 1 worker: 1 job of 2 workers
        client.wait_for_workers(2, timeout=60)
        assert len(cluster.jobs()) == 1


# -- 15. the dashboard -------------------------------------------------------------------


def refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return True
    return False


def test_the_dashboard_listens_on_loopback_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="hpcdask.schedulerargs")
    with dask.config.set({"hpcdask.slurm.scheduler-options": {}}):
        cluster = SLURMCluster(cores=1, memory="1GB")
    with cluster:
        port = cluster.scheduler_info["services"]["dashboard"]  # 8787 if free
        assert not refused("127.0.0.1", port)
        assert refused(get_ip(), port)  # not from the network
        assert cluster.dashboard_link == f"http://127.0.0.1:{port}/status"
    assert "listens on every interface" not in caplog.text
    with (
        dask.config.set(
            {"hpcdask.slurm.scheduler-options": {"dashboard_address": ":0"}}
        ),
        SLURMCluster(cores=1, memory="1GB"),
    ):
        pass
    assert "listens on every interface (dashboard_address=':0')" in caplog.text
