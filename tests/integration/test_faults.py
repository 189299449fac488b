"""Faults of the queue, the network and the workers, on the real local Slurm.

Each test checks that no result is lost and that the cluster recovers, and
records its figures (``fault_report.record_fault``) for the table that
``python -m benchmarks.faults`` prints (docs/security.md). The walltime fault is
``test_adaptive.py::test_walltime_rollover_keeps_results_and_capacity``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from distributed import Client

from hpcdask import SLURMCluster
from hpcdask.runner import SubprocessRunner
from tests.integration.conftest import job_field, queued_job_ids, wait_for
from tests.integration.fault_report import record_fault

pytestmark = pytest.mark.usefixtures("new_jobs")

NewJobs = Callable[[], list[str]]
CTLD_PID_FILE = Path("/run/slurmctld.pid")


def slow_square(x: int) -> int:
    time.sleep(0.3)
    return x * x


def calls(cluster: SLURMCluster, *programs: str, since: int = 0) -> int:
    runner = cluster.backend.runner  # type: ignore[attr-defined]
    assert isinstance(runner, SubprocessRunner)
    return sum(1 for argv in runner.calls[since:] if argv[0] in programs)


def n_calls(cluster: SLURMCluster) -> int:
    runner = cluster.backend.runner  # type: ignore[attr-defined]
    assert isinstance(runner, SubprocessRunner)
    return len(runner.calls)


def connected(client: Client) -> int:
    return len(client.scheduler_info()["workers"])


# -- 1. a worker job killed from outside mid-computation -----------------------------


@pytest.mark.parametrize("how", ["scancel", "kill -9"])
def test_worker_job_killed_mid_computation(how: str, new_jobs: NewJobs) -> None:
    with SLURMCluster(cores=1, memory="1GB") as cluster, Client(cluster) as client:
        cluster.scale(2)
        client.wait_for_workers(2, timeout=60)
        futures = client.map(slow_square, range(60))  # ~9 s on two workers
        total = client.submit(sum, futures)
        wait_for(lambda: sum(f.done() for f in futures) >= 10, 60, "some results")
        victim = str(cluster.jobs()["job_id"][0])
        (worker,) = [
            addr
            for addr, info in client.scheduler_info()["workers"].items()
            if info["name"] == cluster.jobs()["name"][0]
        ]
        if how == "kill -9":
            pid = client.run(os.getpid, workers=[worker])[worker]
            nanny = client.run(os.getppid, workers=[worker])[worker]
        started = time.monotonic()
        if how == "scancel":
            subprocess.run(["scancel", victim], check=True)
        else:
            # the worker process and its nanny: the job's command dies
            for target in (pid, nanny):
                os.kill(target, signal.SIGKILL)
        # watch the workers until the result is in and two workers are back
        dipped, computed, recovered = False, None, None
        deadline = started + 120
        while computed is None or recovered is None:
            assert time.monotonic() < deadline, "no result or no recovery in 120 s"
            now = time.monotonic() - started
            count = connected(client)
            dipped = dipped or count < 2
            if recovered is None and dipped and count == 2:
                recovered = now
            if computed is None and total.done():
                computed = now
            time.sleep(0.1)
        assert total.result() == sum(x * x for x in range(60))
        # replaced while the target (2 jobs) wants it
        assert len(cluster.jobs()) == 3
        jobs = cluster.jobs().set_index("job_id")
        ended = "cancelled" if how == "scancel" else "failed"
        assert jobs.loc[victim, "state"] == ended
        assert len([j for j in new_jobs() if j != victim]) == 2
        assert calls(cluster, "sbatch") == 2  # the array of two, one replacement
    record_fault(
        f"1. worker job killed ({how})",
        "sum of 60 tasks right; job replaced; 2 workers again",
        f"pass: result right {computed:.1f} s after the kill "
        "(60 tasks of 0.3 s); 1 replacement job",
        recovered,
        computation_seconds=round(computed, 1),
    )


# -- 2. the Slurm controller stopped for 30 s ---------------------------------------------


def controller_pid() -> int | None:
    try:
        pid = int(CTLD_PID_FILE.read_text().strip())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (OSError, ValueError, IndexError):
        return None
    return pid if comm == "slurmctld" and state != "Z" else None


def controller_answers() -> bool:
    out = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    return "is UP" in out.stdout


def stop_controller() -> None:
    pid = controller_pid()
    assert pid is not None, "slurmctld is not running"
    os.kill(pid, signal.SIGTERM)  # saves its state and exits
    wait_for(lambda: controller_pid() is None, 30, "slurmctld to stop")


def start_controller() -> None:
    """Start slurmctld as ci/slurm-up.sh does, unless something already did."""
    if controller_pid() is None:
        subprocess.run(["/usr/sbin/slurmctld"], check=True, timeout=60)
    wait_for(controller_answers, 60, "slurmctld to answer")


@pytest.fixture
def controller_restored() -> Iterator[None]:
    """Whatever the test does, the controller runs again after it (other
    engineers' tests share this Slurm)."""
    try:
        yield
    finally:
        start_controller()


def test_controller_outage_keeps_workers_and_recovers(
    new_jobs: NewJobs, controller_restored: None
) -> None:
    outage = 30.0
    with SLURMCluster(cores=1, memory="1GB") as cluster, Client(cluster) as client:
        cluster.scale(2)
        client.wait_for_workers(2, timeout=60)
        ids = sorted(cluster.jobs()["job_id"])
        wait_for(lambda: all(cluster.jobs()["node"] != ""), 30, "a poll")
        before = n_calls(cluster)
        stop_controller()
        down = time.monotonic()
        try:
            wait_for(
                lambda: set(cluster.jobs()["state"]) == {"unknown"},
                20,
                "job states shown as unknown",
            )
            noticed = time.monotonic() - down
            assert set(cluster.jobs()["reason"]) == {"last known: running"}
            # the workers keep computing: they never needed the controller
            futures = client.map(slow_square, range(20))
            assert sum(client.gather(futures)) == sum(x * x for x in range(20))
            time.sleep(max(0.0, outage - (time.monotonic() - down)))
            assert connected(client) == 2
            assert set(cluster.jobs()["state"]) == {"unknown"}
            polls = calls(cluster, "squeue", since=before)
        finally:
            start_controller()
        up = time.monotonic()
        downtime = up - down
        wait_for(
            lambda: set(cluster.jobs()["state"]) == {"running"}, 60, "known states"
        )
        recovered = time.monotonic() - up
        # no resubmission, no cancellation, the same jobs and workers
        assert calls(cluster, "sbatch", "scancel", since=before) == 0
        assert sorted(cluster.jobs()["job_id"]) == ids == sorted(new_jobs())
        assert connected(client) == 2
        assert client.submit(sum, [1, 2, 3]).result() == 6
        # backed off: far fewer polls than one per interval (0.5 s)
        assert polls < outage / cluster.poll_interval / 2
    record_fault(
        "2. Slurm controller down 30 s",
        "workers kept; states unknown; no sbatch/scancel; recovers",
        f"pass: unknown after {noticed:.1f} s; 0 sbatch, 0 scancel; "
        f"{polls} squeue in {downtime:.0f} s; tasks ran meanwhile",
        recovered,
        outage_seconds=round(downtime, 1),
        squeue_during_outage=polls,
    )


# -- 4. a partition that never starts jobs ----------------------------------------------


def test_jobs_that_never_start_stay_pending_and_close_cancels_them(
    new_jobs: NewJobs,
) -> None:
    cluster = SLURMCluster(cores=1, memory="1GB", queue="down")
    try:
        started = time.monotonic()
        cluster.scale(jobs=3)
        ids = sorted(cluster.jobs()["job_id"])
        wait_for(
            lambda: set(cluster.jobs()["reason"]) == {"PartitionDown"},
            30,
            "the queue's reason",
        )
        reason_after = time.monotonic() - started
        assert set(cluster.jobs()["state"]) == {"pending"}
        assert sorted(new_jobs()) == ids
        with Client(cluster) as client, pytest.raises(TimeoutError):
            client.wait_for_workers(1, timeout=3)  # a timeout, not a hang
        assert calls(cluster, "sbatch") == 1  # pending jobs are not resubmitted
    finally:
        closing = time.monotonic()
        cluster.close()
        closed = time.monotonic() - closing
    assert new_jobs() == []
    assert {job_field(i, "JobState") for i in ids} == {"CANCELLED"}
    assert closed < 20
    record_fault(
        "4. node never starts jobs (partition down)",
        "pending with the queue's reason; wait times out; close cancels",
        f"pass: reason PartitionDown shown after {reason_after:.1f} s; "
        f"3 jobs cancelled by close() in {closed:.1f} s",
        closed,
        reason_seconds=round(reason_after, 1),
        close_seconds=round(closed, 1),
    )


# -- 5. the notebook process killed with SIGKILL ------------------------------------------


def test_notebook_killed_jobs_end_by_themselves_and_cancel_cleans_up(
    log_directory: Path, new_jobs: NewJobs
) -> None:
    name = f"kill9-{uuid.uuid4().hex[:8]}"
    death_timeout = 10
    secrets = log_directory / "security"
    script = textwrap.dedent(
        f"""
        import json, time
        import dask.config
        from distributed import Client
        from hpcdask import SLURMCluster
        dask.config.set({{"hpcdask.slurm.scheduler-options": {{"dashboard_address": "127.0.0.1:0"}}}})
        common = dict(cores=1, memory="1GB", walltime="00:10:00", name={name!r},
                      death_timeout={death_timeout}, log_directory={str(log_directory)!r},
                      shared_temp_directory={str(secrets)!r})
        cluster = SLURMCluster(**common)
        waiting = SLURMCluster(queue="down", **common)
        cluster.scale(2)
        waiting.scale(1)
        Client(cluster).wait_for_workers(2, timeout=60)
        print(json.dumps({{
            "running": list(cluster.jobs()["job_id"]),
            "pending": list(waiting.jobs()["job_id"]),
            "credentials": [c.credentials.private_dir for c in (cluster, waiting)],
        }}), flush=True)
        time.sleep(600)
        """
    )
    errors = log_directory / "notebook.err"
    notebook = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=errors.open("w"),
        text=True,
    )
    try:
        assert notebook.stdout is not None
        line = notebook.stdout.readline()
        tail = errors.read_text().splitlines()[-15:]
        assert line, "the notebook process died before its workers came:\n" + (
            "\n".join(tail)
        )
        state = json.loads(line)
        notebook.send_signal(signal.SIGKILL)  # no close(), no atexit
        killed = time.monotonic()
        notebook.wait(timeout=30)
    finally:
        if notebook.poll() is None:
            notebook.kill()
            notebook.wait(timeout=30)
    running, pending = state["running"], state["pending"]

    def still_queued(ids: list[str]) -> list[str]:
        queued = set(queued_job_ids(log_directory))
        return [i for i in ids if i in queued]

    wait_for(
        lambda: still_queued(running) == [],
        death_timeout + 30,
        "the workers' jobs to end by themselves",
    )
    ended = time.monotonic() - killed
    assert ended < death_timeout + 30
    assert {job_field(i, "JobState") for i in running} == {"COMPLETED"}
    # a job that never started has no worker to notice: `hpcdask cancel` does
    assert still_queued(pending) == pending
    for directory in state["credentials"]:
        assert Path(directory).exists()  # kill -9: nothing could clean up
    hpcdask = Path(sys.executable).parent / "hpcdask"
    cleaning = time.monotonic()
    out = subprocess.run(
        [str(hpcdask), "cancel", name],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DASK_HPCDASK__SLURM__SHARED_TEMP_DIRECTORY": str(secrets)},
    )
    assert out.returncode == 0, out.stderr
    # the dead kernel's cluster, found by its tag (process gone)
    assert f"cancelled 1 job(s): {pending[0]}" in out.stdout
    assert "(process" in out.stdout and ": gone)" in out.stdout
    wait_for(lambda: still_queued(pending) == [], 20, "the pending job to go")
    cleaned = time.monotonic() - cleaning
    assert "removed 2 stale credential director" in out.stdout
    for directory in state["credentials"]:
        assert not Path(directory).exists()
    assert new_jobs() == []
    record_fault(
        "5. notebook killed (SIGKILL)",
        f"running jobs end within death timeout ({death_timeout} s); "
        "hpcdask cancel removes the rest",
        f"pass: 2 running jobs ended by themselves {ended:.1f} s after the kill; "
        f"hpcdask cancel: 1 pending job, 2 stale credential dirs in {cleaned:.1f} s",
        ended,
        death_timeout=death_timeout,
        cancel_seconds=round(cleaned, 1),
    )


# -- 6. close() with 200 jobs pending ------------------------------------------------------


def test_close_cancels_200_pending_jobs_quickly(new_jobs: NewJobs) -> None:
    with SLURMCluster(cores=1, memory="1GB", queue="down") as cluster:
        cluster.scale(jobs=200)
        assert calls(cluster, "sbatch") == 1  # one job array
        wait_for(lambda: len(new_jobs()) == 200, 60, "200 queued jobs")
        before = n_calls(cluster)
        started = time.monotonic()
        cluster.close()
        closed = time.monotonic() - started
    left = new_jobs()
    cancels = calls(cluster, "scancel", since=before)
    assert left == []
    assert closed < 10
    assert 1 <= cancels <= 2
    record_fault(
        "6. close() with 200 pending jobs",
        "all cancelled in one or a few commands within 10 s",
        f"pass: 200 jobs gone in {closed:.1f} s with {cancels} scancel",
        closed,
        close_seconds=round(closed, 2),
        scancel_commands=cancels,
    )
