"""The job table against a FakeRunner fed with saved real output: no processes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas
import pytest

from hpcdask.config import resolve_job_options
from hpcdask.errors import BatchCommandError, JobSubmissionError
from hpcdask.jobs import JobTable, failure_of
from hpcdask.models import JobRecord, JobState
from hpcdask.runner import Completed, FakeRunner
from hpcdask.systems.base import CommandBackend
from hpcdask.systems.pbs import PBS
from hpcdask.systems.slurm import Slurm
from hpcdask.view import JobRow, jobs_frame

FIXTURES = Path(__file__).parent.parent / "fixtures"


def ok(stdout: str = "") -> Completed:
    return Completed(("x",), 0, stdout, "")


def failed(code: int, stderr: str = "", stdout: str = "") -> Completed:
    return Completed(("x",), code, stdout, stderr)


def squeue_line(job_id: str, state: str, reason: str = "None") -> str:
    return f"{job_id}|{state}|{reason}|vm|2026-11-22T00:00:35|2026-11-22T00:00:36|N/A|10:00|9:00\n"


def frame(table: JobTable, now: float = 0.0) -> pandas.DataFrame:
    """``cluster.jobs()`` of a cluster with this table."""
    return jobs_frame(
        [
            JobRow.of(r.job_id, r.name, table.shown_status(r), now, len(r.workers))
            for r in table.records.values()
        ]
    )


def slurm_table(
    runner: FakeRunner,
    tmp_path: Path,
    on_ended: Callable[[JobRecord], None] = lambda record: None,
) -> JobTable:
    opts = resolve_job_options(
        "slurm", cores=1, memory="1GB", log_directory=str(tmp_path)
    )
    return JobTable(CommandBackend(Slurm(), runner), opts, on_ended=on_ended)


async def test_submit_poll_and_failed_start(tmp_path: Path) -> None:
    runner = FakeRunner({"sbatch": [ok("41\n"), ok("42\n")]})
    table = slurm_table(runner, tmp_path)
    (a,) = await table.submit(["w-0"], "#!/bin/bash\n")
    (b,) = await table.submit(["w-1"], "#!/bin/bash\n")
    assert (a.job_id, b.job_id, a.state) == ("41", "42", JobState.PENDING)
    assert a.stderr_path == f"{tmp_path}/dask-worker-41.err"
    Path(a.stderr_path).write_text(
        "line 1\n/no/such/python: No such file or directory\n"
    )

    runner.responses["squeue"] = [
        ok(
            squeue_line("41", "FAILED", "NonZeroExitCode")
            + squeue_line("42", "RUNNING")
        )
    ]
    ended = await table.poll()
    assert [r.name for r in ended] == ["w-0"]
    assert a.failed_start and not b.state.is_terminal
    error = failure_of(a)
    assert "job 41 ended (failed)" in str(error)
    assert "NonZeroExitCode" in str(error)
    assert error.log_tail[-1] == "/no/such/python: No such file or directory"
    # one squeue for both jobs
    assert [c for c in runner.calls if c[0] == "squeue"] == [
        tuple(Slurm().status_argv(["41", "42"]))
    ]


async def test_controller_away_keeps_last_known_state(tmp_path: Path) -> None:
    runner = FakeRunner({"sbatch": [ok("7\n")]})
    table = slurm_table(runner, tmp_path)
    (record,) = await table.submit(["w-0"], "")
    runner.responses["squeue"] = [ok(squeue_line("7", "RUNNING"))]
    await table.poll()
    assert record.state is JobState.RUNNING
    runner.responses["squeue"] = [
        failed(
            1,
            "slurm_load_jobs error: Unable to contact slurm controller (connect failure)",
        )
    ]
    assert await table.poll() == []
    assert record.state is JobState.RUNNING
    assert "Unable to contact" in table.controller_error
    # shown as unknown meanwhile, with the last known state
    shown = frame(table).iloc[0]
    assert (shown["state"], shown["reason"]) == ("unknown", "last known: running")
    runner.responses["squeue"] = [ok(squeue_line("7", "RUNNING"))]
    await table.poll()
    assert table.controller_error == ""
    assert frame(table).iloc[0]["state"] == "running"


async def test_purged_job_is_gone(tmp_path: Path) -> None:
    stderr = (FIXTURES / "slurm/squeue_unknown_single.stderr").read_text()
    runner = FakeRunner({"sbatch": [ok("8\n")], "squeue": [failed(1, stderr)]})
    table = slurm_table(runner, tmp_path)
    (record,) = await table.submit(["w-0"], "")
    assert await table.poll() == [record]
    assert record.state is JobState.GONE


async def test_cancel_is_one_command_and_tolerates_ended_jobs(tmp_path: Path) -> None:
    runner = FakeRunner({"qsub": [ok(f"{i}\n") for i in range(100, 105)]})
    opts = resolve_job_options(
        "pbs", cores=1, memory="1GB", log_directory=str(tmp_path)
    )
    table = JobTable(CommandBackend(PBS(), runner), opts)
    records = [(await table.submit([f"w-{i}"], ""))[0] for i in range(5)]
    # qdel exits 1 when some ids had already finished; qstat then shows all ended
    runner.responses["qdel"] = [failed(1)]
    runner.responses["qstat"] = [
        ok((FIXTURES / "pbs/qstat_f_after_qdel.txt").read_text()),
        failed(153),
    ]
    await table.cancel(records)
    qdel_calls = [c for c in runner.calls if c[0] == "qdel"]
    assert qdel_calls == [("qdel", "100", "101", "102", "103", "104")]
    assert all(r.cancel_requested and r.state.is_terminal for r in records)


async def test_cancel_retries_then_raises_while_jobs_live(tmp_path: Path) -> None:
    runner = FakeRunner({"sbatch": [ok("9\n")]})
    table = slurm_table(runner, tmp_path)
    (record,) = await table.submit(["w-0"], "")
    away = failed(1, "scancel: error: Unable to contact slurm controller")
    runner.responses["scancel"] = [away]
    runner.responses["squeue"] = [
        failed(1, "slurm_load_jobs error: Unable to contact slurm controller")
    ]
    with pytest.raises(BatchCommandError, match="Unable to contact"):
        await table.cancel([record], attempts=2)
    assert len([c for c in runner.calls if c[0] == "scancel"]) == 2


async def test_a_job_that_ends_during_a_cancel_retry_is_reported(
    tmp_path: Path,
) -> None:
    """The poll inside a failing cancel sees another job end: the fleet must
    hear of it like of any other ending (it was lost before)."""
    runner = FakeRunner({"sbatch": [ok("41\n"), ok("42\n")]})
    ended: list[JobRecord] = []
    table = slurm_table(runner, tmp_path, on_ended=ended.append)
    (leaving,) = await table.submit(["w-0"], "")
    (other,) = await table.submit(["w-1"], "")
    runner.responses["scancel"] = [
        failed(1, "scancel: error: Unable to contact slurm controller"),
        ok(),
    ]
    runner.responses["squeue"] = [
        ok(squeue_line("41", "RUNNING") + squeue_line("42", "TIMEOUT", "TimeLimit"))
    ]
    await table.cancel([leaving])
    assert ended == [other]
    assert other.state is JobState.TIMEOUT and other.failed_start is not False


async def test_refused_submission(tmp_path: Path) -> None:
    stderr = (FIXTURES / "slurm/sbatch_bad_partition.stderr").read_text()
    table = slurm_table(FakeRunner({"sbatch": [failed(1, stderr)]}), tmp_path)
    with pytest.raises(
        JobSubmissionError, match="invalid partition specified: nosuchpartition"
    ):
        await table.submit(["w-0"], "")
    assert table.records["w-0"].state is JobState.FAILED


async def test_qsub_errors_on_stdout_reach_the_user(tmp_path: Path) -> None:
    stdout = (FIXTURES / "pbs/qsub_bad_queue.txt").read_text()
    opts = resolve_job_options(
        "pbs", cores=1, memory="1GB", log_directory=str(tmp_path)
    )
    table = JobTable(
        CommandBackend(PBS(), FakeRunner({"qsub": [failed(1, "", stdout)]})), opts
    )
    with pytest.raises(
        JobSubmissionError, match="invalid partition specified: nosuchqueue"
    ):
        await table.submit(["w-0"], "")


async def test_workers_map_back_to_jobs(tmp_path: Path) -> None:
    runner = FakeRunner({"sbatch": [ok("1\n"), ok("2\n"), ok("3\n")]})
    table = slurm_table(runner, tmp_path)
    (plain,) = await table.submit(["dask-worker-1"], "")
    (grouped,) = await table.submit(["dask-worker-12"], "")
    (templated,) = await table.submit(["run-$SLURM_JOB_ID-3"], "")
    assert table.job_of_worker("dask-worker-1") is plain
    assert table.job_of_worker("dask-worker-12-0") is grouped
    assert table.job_of_worker("dask-worker-1-1") is plain
    assert table.job_of_worker("run-1234-3") is templated
    assert table.job_of_worker("run-1234-3-1") is templated
    assert table.job_of_worker("somebody-else") is None
    table.note_worker("dask-worker-1", connected=True)
    assert plain.state is JobState.RUNNING and plain.workers_seen == 1
    jobs = frame(table)
    assert list(jobs["job_id"]) == ["1", "2", "3"]
    assert list(jobs["workers"]) == [1, 0, 0]


async def test_a_requeued_job_is_handed_to_on_requeued_once(tmp_path: Path) -> None:
    # job 375 as squeue printed it running, then after `scontrol requeue 375`
    queue = FIXTURES / "slurm/queue"
    running = (queue / "squeue_running_epoch.txt").read_text()
    requeued = (queue / "squeue_requeued_epoch.txt").read_text()
    runner = FakeRunner(
        {"sbatch": [ok("375\n")], "squeue": [ok(running), ok(requeued), ok(requeued)]}
    )
    seen: list[str] = []
    opts = resolve_job_options(
        "slurm", cores=1, memory="1GB", log_directory=str(tmp_path)
    )
    table = JobTable(
        CommandBackend(Slurm(), runner),
        opts,
        on_requeued=lambda record: seen.append(record.name),
    )
    (record,) = await table.submit(["w-0"], "#!/bin/bash\n")
    await table.poll()
    assert record.state is JobState.RUNNING and seen == []
    assert await table.poll() == []  # requeued is not ended
    assert seen == ["w-0"] and record.state is JobState.PENDING
    await table.poll()  # still pending: the same requeue, not a second one
    assert seen == ["w-0"] and record.requeues == 1


async def test_a_job_knows_its_walltime_from_its_submission(tmp_path: Path) -> None:
    """Before any poll: the walltime asked for, and jobs() columns of their
    types even when nothing is known yet (a flaky integration test read an
    all-NaT walltime column as dates)."""
    assert str(
        frame(
            JobTable(
                CommandBackend(Slurm(), FakeRunner({})),
                resolve_job_options("slurm", cores=1, memory="1GB"),
            )
        )["walltime"].dtype
    ).startswith("timedelta64")
    runner = FakeRunner({"sbatch": [ok("41\n"), ok("42\n")]})
    table = slurm_table(runner, tmp_path)
    (a,) = await table.submit(["w-0"], "#!/bin/bash\n")
    (b,) = await table.submit(["w-1"], "#!/bin/bash\n", time_limit=600.0)
    assert (a.status.time_limit, b.status.time_limit) == (1800, 600.0)
    jobs = frame(table)
    assert list(jobs["walltime"].dt.total_seconds()) == [1800, 600]
    assert str(jobs["walltime_left"].dtype).startswith("timedelta64")
