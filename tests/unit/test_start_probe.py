"""Reading the queue's forecast gently (StartProbe), submitting chosen shapes
(Fleet), and the settings and displays of job shapes: FakeRunner fed with
saved real output, no processes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

import dask.config
import pytest

from hpcdask.config import adaptive_settings, resolve_job_options
from hpcdask.errors import InvalidOptionError
from hpcdask.fleet import Fleet
from hpcdask.forecast import JobShape
from hpcdask.jobs import JobTable
from hpcdask.models import JobState, ScaleDecision
from hpcdask.runner import Completed, FakeRunner
from hpcdask.startprobe import StartProbe
from hpcdask.systems.base import CommandBackend
from hpcdask.systems.pbs import PBS
from hpcdask.systems.slurm import Slurm, parse_squeue
from hpcdask.view import JobRow, jobs_frame

BUSY = Path(__file__).parent.parent / "fixtures" / "slurm" / "busy"


def ok(stdout: str = "") -> Completed:
    return Completed(("x",), 0, stdout, "")


def saved_runner() -> FakeRunner:
    return FakeRunner(
        {
            "sinfo": [ok((BUSY / "sinfo_busy.txt").read_text())],
            "squeue": [ok((BUSY / "squeue_plan.txt").read_text())],
        }
    )


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_reads_at_most_once_per_interval() -> None:
    runner = saved_runner()
    probe = StartProbe(CommandBackend(Slurm(), runner), ("busy",), interval=30)
    forecast, due = probe.read(1000.0, wanted=False)
    assert (forecast, due, runner.calls) == (None, False, [])  # not wanted: no call
    forecast, due = probe.read(1000.0, wanted=True)
    assert forecast is None and due  # on its way: the policy waits
    await settle()
    forecast, due = probe.read(1001.0, wanted=True)
    assert forecast is not None and not due
    assert [c[0] for c in runner.calls] == ["sinfo", "squeue"]
    assert runner.environments[0] == {"SLURM_TIME_FORMAT": "%s"}
    for t in (1002.0, 1010.0, 1029.0):  # cached: no more calls
        probe.read(t, wanted=True)
    await settle()
    assert len(runner.calls) == 2
    probe.read(1030.0, wanted=True)
    await settle()
    assert len(runner.calls) == 4 and probe.reads == 2


async def test_a_failed_read_leaves_no_forecast() -> None:
    runner = saved_runner()
    probe = StartProbe(CommandBackend(Slurm(), runner), (), interval=30)
    probe.read(1000.0, wanted=True)
    await settle()
    assert probe.forecast is not None
    runner.responses["squeue"] = [
        Completed(
            ("squeue",),
            1,
            "",
            "slurm_load_jobs error: Unable to contact slurm controller",
        )
    ]
    probe.read(1030.0, wanted=True)
    await settle()
    forecast, due = probe.read(1031.0, wanted=True)
    assert (forecast, due) == (None, False)  # the policy submits as today
    assert "Unable to contact" in probe.error


async def test_a_system_without_forecast_is_never_asked() -> None:
    runner = FakeRunner()
    probe = StartProbe(CommandBackend(PBS(), runner), (), interval=30)
    probe.read(1000.0, wanted=True)
    await settle()
    assert probe.read(2000.0, wanted=True) == (None, False)
    assert runner.calls == []


class Actions:
    async def retire(self, worker_names: list[str]) -> None:
        pass

    def drain(self, job_names: Iterable[str]) -> None:
        pass


async def test_fleet_submits_one_array_per_walltime(tmp_path: Path) -> None:
    runner = FakeRunner({"sbatch": [ok("51\n"), ok("52\n")], "scontrol": [ok("")]})
    opts = resolve_job_options(
        "slurm", cores=1, memory="1GB", log_directory=str(tmp_path)
    )
    table = JobTable(CommandBackend(Slurm(), runner), opts)
    rendered: list[tuple[list[str], float | None]] = []

    def render(names: list[str], walltime: float | None) -> str:
        rendered.append((names, walltime))
        return "#!/bin/bash\n"

    fleet = Fleet(table, render, "w", [""], Actions())
    note = "8-min jobs start now in backfill (busy); 1-h jobs at 12:02"
    shapes = (JobShape(2, 480.0, note), JobShape(1, 1800.0, "30-min jobs start now"))
    await fleet.apply(ScaleDecision(submit=3, shapes=shapes))
    assert sorted(rendered) == [(["w-0", "w-1"], 480.0), (["w-2"], 1800.0)]
    assert [c[0] for c in runner.calls].count("sbatch") == 2
    records = table.records
    assert records["w-0"].note == note and records["w-0"].status.time_limit == 480.0
    assert records["w-2"].status.time_limit == 1800.0
    assert fleet.shapes == {}
    # without shapes: the cluster's walltime
    runner.responses["sbatch"] = [ok("53\n")]
    await fleet.apply(ScaleDecision(submit=1))
    assert rendered[-1] == (["w-3"], None)


def test_jobs_show_queue_walltime_and_why() -> None:
    status = parse_squeue((BUSY / "squeue_status_partition.txt").read_text())
    rows = [
        JobRow.of(job_id, f"w-{job_id}", s, s.submit_time or 0.0, note="why")
        for job_id, s in sorted(status.items())
    ]
    frame = jobs_frame(rows)
    assert list(frame.columns[-3:]) == ["queue", "walltime", "why_walltime"]
    assert list(frame["queue"]) == ["busy", "busy", "busy", "idle"]
    assert frame["walltime"].iloc[0].total_seconds() == 480
    assert set(frame["why_walltime"]) == {"why"}
    assert status["3"].state is JobState.RUNNING


def test_queue_lists_become_slurm_partition_lists() -> None:
    opts = resolve_job_options("slurm", cores=1, memory="1GB", queue=["busy", "idle"])
    assert opts.queue == "busy,idle"
    assert "#SBATCH -p busy,idle" in Slurm().render_directives(opts)
    with pytest.raises(InvalidOptionError):
        resolve_job_options("slurm", cores=1, memory="1GB", queue=["busy", "x;rm"])


@pytest.mark.parametrize(
    ("config", "walltime", "expected"),
    [
        ({}, "01:00:00", (3600.0, 600.0, 120.0, ("busy", "idle"))),
        ({"job-shapes": False}, "01:00:00", None),
        ({}, "00:10:00", None),  # no shorter walltime to choose
        (
            {"min-walltime": "90s", "shape-gain": "30s"},
            "00:10:00",
            (600.0, 120.0, 30.0, ("busy", "idle")),
        ),
    ],
    ids=["defaults", "site switch off", "walltime at the floor", "a lower floor"],
)
def test_shape_settings(
    config: dict[str, object], walltime: str, expected: object
) -> None:
    opts = resolve_job_options(
        "slurm", cores=2, memory="2GB", walltime=walltime, queue=["busy", "idle"]
    )
    with dask.config.set({f"hpcdask.adaptive.{k}": v for k, v in config.items()}):
        shapes = adaptive_settings(opts, maximum_jobs=4).params.shapes
    if expected is None:
        assert shapes is None
        return
    assert shapes is not None
    assert (
        shapes.walltime,
        shapes.min_walltime,
        shapes.gain,
        shapes.partitions,
    ) == expected
    assert (shapes.cpus, shapes.memory) == (2, 2 * 10**9)


def test_adapt_arguments_win_over_config() -> None:
    opts = resolve_job_options("slurm", cores=1, memory="1GB", walltime="01:00:00")
    settings = adaptive_settings(opts, job_shapes=False)
    assert settings.params.shapes is None
    shapes = adaptive_settings(opts, min_walltime="5m").params.shapes
    assert shapes is not None and shapes.min_walltime == 300
    with (
        pytest.raises(InvalidOptionError, match="job-shapes"),
        dask.config.set({"hpcdask.adaptive.job-shapes": "yes"}),
    ):
        adaptive_settings(opts)


async def test_retiring_workers_whose_data_cannot_move_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """When the workers of jobs that end have nowhere to hand their data over
    (their replacements are still queued), the log says so."""
    from types import SimpleNamespace

    from hpcdask.probe import SchedulerProbe

    opts = resolve_job_options(
        "slurm", cores=1, memory="1GB", log_directory=str(tmp_path)
    )
    table = JobTable(CommandBackend(Slurm(), FakeRunner()), opts)
    probe = SchedulerProbe(table, 600, 1)
    workers = {
        f"tls://w{i}": SimpleNamespace(name=f"w-{i}", address=f"tls://w{i}")
        for i in range(2)
    }

    class Rpc:
        async def retire_workers(self, **kwargs: object) -> dict[str, object]:
            return {}  # distributed: "unique data could not be moved"

    probe.attach(SimpleNamespace(workers=workers), Rpc())  # type: ignore[arg-type]
    await probe.retire(["w-0", "w-1"])
    assert "2 of 2 workers could not hand their data over" in caplog.text
