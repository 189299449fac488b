"""Adaptive scaling loops on the real local Slurm."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import dask.config
import pytest
from distributed import Client, wait

from hpcdask import SLURMCluster
from hpcdask.runner import SubprocessRunner
from tests.integration.conftest import wait_for
from tests.integration.fault_report import record_fault

pytestmark = pytest.mark.usefixtures("new_jobs")

NewJobs = Callable[[], list[str]]


def sleep_and_return(x: int) -> int:
    time.sleep(0.5)
    return x


def calls(cluster: SLURMCluster, program: str) -> int:
    runner = cluster.backend.runner  # type: ignore[attr-defined]
    assert isinstance(runner, SubprocessRunner)
    return sum(1 for argv in runner.calls if argv[0] == program)


def test_grows_with_work_in_one_submission_and_gives_back_when_idle(
    new_jobs: NewJobs,
) -> None:
    with SLURMCluster(cores=1, memory="1GB") as cluster, Client(cluster) as client:
        adaptive = cluster.adapt(
            minimum_jobs=0, maximum_jobs=4, idle_timeout=2, wait_count=3
        )
        assert (adaptive.minimum, adaptive.maximum) == (0, 4)
        assert adaptive.params.scale_down_delay == 3.0  # 3 intervals of 1 s
        time.sleep(2)
        assert new_jobs() == []  # no work, no jobs
        futures = client.map(sleep_and_return, range(40))
        assert sum(client.gather(futures)) == sum(range(40))
        submissions = calls(cluster, "sbatch")
        assert 1 <= submissions <= 2  # an array, maybe one more as durations are learnt
        assert len(cluster.jobs()) <= 4
        del futures
        wait_for(lambda: new_jobs() == [], 30, "idle jobs to be given back")
        assert not client.scheduler_info()["workers"]
        ended = {"cancelled", "completed"}
        wait_for(lambda: set(cluster.jobs()["state"]) <= ended, 10, "the queue's word")


def test_failed_starts_back_off_and_stop(new_jobs: NewJobs) -> None:
    with SLURMCluster(cores=1, memory="1GB", python="/no/such/python") as cluster:
        cluster.adapt(minimum_jobs=1, maximum_jobs=1)
        wait_for(lambda: len(cluster.failures) >= 3, 60, "three failed starts")
        time.sleep(8)  # long past the last backoff: still no fourth job
        assert len(cluster.failures) == 3
        assert calls(cluster, "sbatch") == 3
        assert "No such file or directory" in str(cluster.failures[-1])
        assert new_jobs() == []


def test_walltime_rollover_keeps_results_and_capacity(new_jobs: NewJobs) -> None:
    # 1-minute jobs; workers retire at 45 s and hand their data over
    with (
        SLURMCluster(cores=1, memory="1GB", walltime="00:01:00") as cluster,
        Client(cluster) as client,
    ):
        cluster.adapt(minimum_jobs=2, maximum_jobs=2)
        client.wait_for_workers(2, timeout=60)
        data = client.map(lambda i: bytes(1000) * i, range(20), pure=False)
        wait(data)
        keys = {f.key for f in data}
        # past the first generation's walltime, watching the workers; a
        # computation runs across the first workers' retirement (at 45 s)
        started = time.monotonic()
        below, work, last = 0.0, None, started
        while (now := time.monotonic()) - started < 70:
            if work is None and now - started > 38:
                work = client.map(sleep_and_return, range(40), pure=False)
            if len(client.scheduler_info()["workers"]) < 2:
                below += now - last
            last = now
            time.sleep(0.25)
        assert work is not None
        assert client.gather(work) == list(range(40))
        jobs = cluster.jobs()
        assert len(jobs) >= 4  # replaced ahead of expiry
        assert len(client.scheduler_info()["workers"]) >= 1
        # every key survived: handed over, never recomputed or lost
        assert client.gather(data) == [bytes(1000) * i for i in range(20)]
        assert keys == {f.key for f in data}
        story = client.run_on_scheduler(
            lambda dask_scheduler: [
                (ts.key, ts.state)
                for ts in dask_scheduler.tasks.values()
                if ts.state == "erred"
            ]
        )
        assert story == []
        first = jobs.iloc[0]
        assert first["state"] in ("completed", "cancelled")
    record_fault(
        "3. jobs reach their walltime mid-computation",
        "20 held keys and 40 tasks across the rollover; no erred or lost key",
        f"pass: {len(jobs)} jobs for 2 slots (replaced ahead); 0 lost keys; "
        f"fewer than 2 workers for {below:.1f} s of 70 s",
        below,
        jobs=len(jobs),
        seconds_below_two_workers=round(below, 1),
    )


def sleep_8(i: int) -> int:
    time.sleep(8)
    return i


def started_per_key(dask_scheduler: Any) -> dict[str, int]:
    """How many times each key was sent to a worker to run."""
    counts: dict[str, int] = {}
    for key, _start, finish, *_ in dask_scheduler.transition_log:
        if finish == "processing":
            counts[str(key)] = counts.get(str(key), 0) + 1
    return counts


def test_long_tasks_drain_workers_before_their_lifetime(new_jobs: NewJobs) -> None:
    # workers live 45 s in 1-minute jobs; 8-s tasks started after 37 s would be
    # cut at the lifetime and run again elsewhere: those workers get no new task
    with (
        SLURMCluster(cores=1, memory="1GB", walltime="00:01:00") as cluster,
        Client(cluster) as client,
    ):
        cluster.adapt(minimum_jobs=1, maximum_jobs=2)
        client.wait_for_workers(1, timeout=60)
        futures = client.map(sleep_8, range(20), pure=False)
        assert client.gather(futures) == list(range(20))
        assert len(cluster.jobs()) >= 3  # at least one generation rolled over
        started = client.run_on_scheduler(started_per_key)
        assert len(started) == 20
        assert [k for k, n in started.items() if n > 1] == []  # none run twice
        del futures


def test_pending_jobs_show_the_queues_reason_and_close_cancels_them(
    new_jobs: NewJobs, caplog: pytest.LogCaptureFixture
) -> None:
    # the "down" partition never starts jobs: they stay pending, with a reason
    caplog.set_level(logging.WARNING, logger="hpcdask.jobs")
    with (
        dask.config.set({"hpcdask.adaptive.pending-report-after": "2s"}),
        SLURMCluster(cores=1, memory="1GB", queue="down") as cluster,
    ):
        cluster.adapt(minimum_jobs=2, maximum_jobs=2)
        wait_for(lambda: len(new_jobs()) == 2, 30, "two queued jobs")
        wait_for(
            lambda: set(cluster.jobs()["reason"]) == {"PartitionDown"},
            30,
            "the queue's reason",
        )
        assert set(cluster.jobs()["state"]) == {"pending"}
        wait_for(lambda: "PartitionDown" in caplog.text, 30, "the log to say why")
        assert calls(cluster, "sbatch") == 1  # pending jobs count: not resubmitted
    assert new_jobs() == []


def sleep_long(x: int) -> int:
    time.sleep(3)
    return x


def test_first_burst_of_untimed_work_asks_for_every_job_at_once(
    new_jobs: NewJobs,
) -> None:
    """On its 0.5-s guess the scheduler would want 1 worker for these 8 tasks."""
    with SLURMCluster(cores=1, memory="1GB") as cluster, Client(cluster) as client:
        cluster.adapt(minimum_jobs=0, maximum_jobs=4)
        futures = client.map(sleep_long, range(8), pure=False)
        wait_for(lambda: calls(cluster, "sbatch") > 0, 30, "the first submission")
        assert len(cluster.table.records) == 4  # one array of 4, not 1 then 3
        assert client.gather(futures) == list(range(8))
        assert calls(cluster, "sbatch") == 1
        del futures
        wait_for(lambda: new_jobs() == [], 30, "idle jobs to be given back")
