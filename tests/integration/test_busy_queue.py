"""Starting sooner on a busy queue (issue #16), on the real Slurm of the
busy-queue test site (tests/integration/busy_site.py): workers start in a
backfill hole where a job of the user's full walltime would wait."""

from __future__ import annotations

import time

import pytest
from distributed import Client, Event

from hpcdask import SLURMCluster
from hpcdask.page import summary_html, table_columns
from hpcdask.runner import SubprocessRunner
from tests.integration.busy_site import BusySite
from tests.integration.conftest import wait_for


def hold(event_name: str) -> int:
    """A task that keeps its worker busy until the test lets it go."""
    Event(event_name).wait(300)
    return 1


def calls(cluster: SLURMCluster, program: str) -> int:
    runner = cluster.backend.runner  # type: ignore[attr-defined]
    assert isinstance(runner, SubprocessRunner)
    return sum(1 for argv in runner.calls if argv[0] == program)


def test_workers_start_in_a_backfill_hole_where_an_hour_would_wait(
    busy_site: BusySite, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy_site.use(monkeypatch)
    # other users: 12 of busy1's 16 cores for 13 minutes, then a 16-core job
    # holds the whole node: a hole of 4 cores for 13 minutes; and a one-core
    # job of an hour, submitted first, which does not fit it
    busy_site.submit("-J", "busy-other-fill", "-p", "busy", "-c", "12", "-t", "13")
    time.sleep(2)
    big = busy_site.submit("-J", "busy-other-big", "-p", "busy", "-c", "16", "-t", "5")
    hour = busy_site.submit(
        "-J", "busy-other-hour", "-p", "busy", "-c", "1", "-t", "60"
    )
    wait_for(lambda: busy_site.state(big) == "PENDING", 10, "the big job to wait")
    time.sleep(3)  # backfill has had its turns: the hour stays out of the hole
    assert busy_site.state(hour) == "PENDING"

    with (
        SLURMCluster(
            cores=1, memory="1GB", walltime="01:00:00", queue="busy"
        ) as cluster,
        Client(cluster) as client,
    ):
        cluster.adapt(minimum_jobs=0, maximum_jobs=4)
        started = time.monotonic()
        futures = client.map(hold, ["busy-release"] * 4, pure=False)
        client.wait_for_workers(4, timeout=120)
        waited = time.monotonic() - started
        jobs = cluster.jobs()
        assert len(jobs) == 4 and set(jobs["state"]) == {"running"}
        assert set(jobs["queue"]) == {"busy"}
        # 13 minutes of hole, less a minute of slack: 11 or 12 minutes
        limits = {round(t.total_seconds() / 60) for t in jobs["walltime"]}
        assert limits <= {11, 12}, limits
        (why,) = set(jobs["why_walltime"])
        assert "start now in backfill (busy); 1-h jobs at" in why
        # the hour-long job still waits: our jobs did not take its place
        assert busy_site.state(hour) == "PENDING"
        # every display says why
        view = cluster.view()
        assert why in view.shape_reason
        assert "Job walltime" in cluster._repr_html_()
        assert why in summary_html(view) or why in " ".join(table_columns(view)["why"])
        # one forecast read (sinfo + squeue) for the scale-up, one submission
        assert calls(cluster, "sinfo") >= 1 and calls(cluster, "sbatch") == 1
        Event("busy-release", client=client).set()
        assert sum(client.gather(futures)) == 4
    print(f"4 workers in a backfill hole after {waited:.1f} s; {why}")


def test_without_a_forecast_new_jobs_ask_for_the_full_walltime(
    busy_site: BusySite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe fails (sinfo missing from PATH): today's behaviour, the full
    walltime, and a warning that says why."""
    busy_site.use(monkeypatch)
    with SLURMCluster(
        cores=1, memory="1GB", walltime="00:30:00", queue="idle"
    ) as cluster:
        runner = cluster.backend.runner  # type: ignore[attr-defined]
        assert isinstance(runner, SubprocessRunner)
        real_run = runner.run

        async def no_sinfo(argv, **kwargs):  # type: ignore[no-untyped-def]
            if argv[0] == "sinfo":
                argv = ["/no/such/sinfo", *argv[1:]]
            return await real_run(argv, **kwargs)

        monkeypatch.setattr(runner, "run", no_sinfo)
        with Client(cluster) as client:
            cluster.adapt(minimum_jobs=0, maximum_jobs=1)
            future = client.submit(hold, "busy-never", pure=False)
            client.wait_for_workers(1, timeout=120)
            jobs = cluster.jobs()
            assert list(jobs["walltime"].dt.total_seconds()) == [1800]
            assert list(jobs["why_walltime"]) == [""]
            starts = cluster.manager.adaptive.target.starts  # type: ignore[union-attr]
            assert "/no/such/sinfo" in starts.error  # it was asked, and failed
            future.cancel()
