"""Status parsing from real saved command output (see tests/fixtures/README.md)."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest

from hpcdask.models import JobState
from hpcdask.systems.pbs import PBS, parse_qstat_full
from hpcdask.systems.slurm import Slurm, expand_array_ids, parse_squeue
from hpcdask.systems.timefmt import parse_clock, parse_duration

FIXTURES = Path(__file__).parent.parent / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def local(text: str) -> float:
    return time.mktime(datetime.fromisoformat(text).timetuple())


def test_squeue_every_state() -> None:
    jobs = parse_squeue(fixture("slurm/squeue_mixed.txt"))
    assert jobs["94"].state is JobState.CANCELLED
    assert jobs["86"].state is JobState.COMPLETED
    assert jobs["87_3"].state is JobState.COMPLETED
    assert jobs["92"].state is JobState.FAILED
    assert jobs["92"].reason == "NonZeroExitCode"
    assert jobs["96"].state is JobState.HELD
    assert jobs["96"].reason == "JobHeldUser"
    assert jobs["95"].state is JobState.PENDING
    assert jobs["95"].reason == "PartitionDown"
    # pending array elements collapse in squeue; each gets its own entry here
    assert [jobs[f"97_{i}"].state for i in range(4)] == [JobState.PENDING] * 4
    assert "97_[0-3]" not in jobs
    assert jobs["98_2"].reason == jobs["98_3"].reason == "JobArrayTaskLimit"
    assert jobs["98_0"].state is JobState.RUNNING
    running = jobs["93"]
    assert running.state is JobState.RUNNING
    assert running.reason == ""
    assert running.node == "vm"
    assert running.submit_time == local("2026-11-22T00:00:35")
    assert running.start_time == local("2026-11-22T00:00:36")
    assert running.end_time is None  # %e of a live job is only the expected end
    assert running.time_limit == 600


def test_squeue_pending_has_no_start_even_when_slurm_expects_one() -> None:
    (status,) = parse_squeue(fixture("slurm/squeue_pending_resources.txt")).values()
    assert status.state is JobState.PENDING
    assert status.reason == "Resources"
    assert status.start_time is None


def test_squeue_timeout() -> None:
    status = parse_squeue(fixture("slurm/squeue_timeout.txt"))["85"]
    assert status.state is JobState.TIMEOUT
    assert status.reason == "TimeLimit"
    assert status.end_time == local("2026-11-22T00:01:52")
    assert status.time_limit == 60


def test_squeue_unknown_ids() -> None:
    slurm = Slurm()
    # one unknown id alone: squeue refuses the query
    stderr = fixture("slurm/squeue_unknown_single.stderr")
    assert slurm.gone_job_ids(1, stderr, ["999999"]) == {"999999"}
    # among known ones: skipped silently
    parsed = slurm.parse_status(
        fixture("slurm/squeue_mixed_unknown.txt"), ["93", "999999", "86"]
    )
    assert set(parsed) == {"93", "86"}
    # the controller away is not "gone"
    assert (
        slurm.gone_job_ids(
            1, "slurm_load_jobs error: Unable to contact slurm controller", ["1"]
        )
        == set()
    )


def test_sbatch_output() -> None:
    slurm = Slurm()
    assert slurm.parse_job_id(fixture("slurm/sbatch_parsable.txt")) == "86"
    assert slurm.parse_job_id("1234;cluster2\n") == "1234"
    with pytest.raises(ValueError, match="job id"):
        slurm.parse_job_id(fixture("slurm/sbatch_bad_partition.txt"))


def test_slurm_argv_are_batched() -> None:
    slurm = Slurm()
    assert slurm.status_argv(["1", "2", "3"])[-1] == "--jobs=1,2,3"
    assert slurm.cancel_argv(["1", "2", "3"]) == ["scancel", "1", "2", "3"]
    assert slurm.submit_argv("/tmp/x.sh") == ["sbatch", "--parsable", "/tmp/x.sh"]


def test_qstat_torque_style_from_slurm_wrappers() -> None:
    jobs = parse_qstat_full(fixture("pbs/qstat_f_torque_running.txt"))
    assert jobs["93"]["job_state"] == "R"
    assert jobs["93"]["Resource_List.walltime"] == "00:10:00"
    statuses = PBS().parse_status(
        fixture("pbs/qstat_f_torque_running.txt"), ["93", "102"]
    )
    running = statuses["93"]
    assert running.state is JobState.RUNNING
    assert running.node == "vm"
    assert running.time_limit == 600
    assert running.submit_time == parse_clock("Sun Nov 22 00:00:35 2026")
    assert running.start_time == parse_clock("Sun Nov 22 00:00:36 2026")


def test_qstat_torque_finished_and_pending() -> None:
    finished = PBS().parse_status(fixture("pbs/qstat_f_torque_finished.txt"), ["92"])
    assert finished["92"].state is JobState.COMPLETED
    assert finished["92"].state.is_terminal
    pending = PBS().parse_status(fixture("pbs/qstat_f_torque_pending.txt"), ["106"])
    assert pending["106"].state is JobState.PENDING
    assert pending["106"].start_time is None


def test_qstat_pbspro_with_wrapped_values() -> None:
    text = fixture("pbs/qstat_f_pbspro.txt")
    jobs = parse_qstat_full(text)
    assert len(jobs) == 2
    running_id, queued_id = "4821.pbs01", "4822.pbs01"
    assert set(jobs) == {running_id, queued_id}
    statuses = PBS().parse_status(text, ["4822", running_id])
    queued = statuses["4822"]  # "4822" matches "4822.pbs01"
    assert queued.state is JobState.PENDING
    assert "Insufficient amount of resource: ncpus" in queued.reason
    running = statuses[running_id]
    assert running.state is JobState.RUNNING
    assert running.node and "/" not in running.node
    assert running.start_time is not None
    # a value wrapped over tab-led lines is joined back together
    variables = jobs[running_id]["Variable_List"]
    assert "\n" not in variables and "PBS_O_WORKDIR" in variables


def test_qstat_unknown_ids() -> None:
    pbs = PBS()
    assert pbs.gone_job_ids(153, fixture("pbs/qstat_f_unknown.txt"), ["999999"]) == {
        "999999"
    }
    assert pbs.gone_job_ids(
        153, "qstat: Unknown Job Id 12.srv\n", ["12.srv", "13.srv"]
    ) == {"12.srv"}
    assert pbs.gone_job_ids(1, "Connection refused\n", ["1"]) == set()
    parsed = pbs.parse_status(
        fixture("pbs/qstat_f_unknown_mixed.txt"), ["999999", "102"]
    )
    assert set(parsed) == {"102"}


def test_qsub_output() -> None:
    assert PBS().parse_job_id(fixture("pbs/qsub.txt")) == "102"
    assert PBS().parse_job_id("4242.pbs01\n") == "4242.pbs01"
    with pytest.raises(ValueError, match="job id"):
        PBS().parse_job_id(fixture("pbs/qsub_bad_queue.txt"))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10:00", 600),
        ("9:57", 597),
        ("1:00:00", 3600),
        ("365-00:00:00", 365 * 86400),
        ("UNLIMITED", None),
        ("INVALID", None),
        ("71582788:15:00", 71582788 * 3600 + 900),
    ],
)
def test_durations(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["N/A", "Unknown", "None", ""])
def test_missing_clock_values(text: str) -> None:
    assert parse_clock(text) is None


def test_expand_array_ids() -> None:
    assert expand_array_ids("97_[0-3]") == ["97_0", "97_1", "97_2", "97_3"]
    assert expand_array_ids("98_[2-3%2]") == ["98_2", "98_3"]
    assert expand_array_ids("5_[0,4-5]") == ["5_0", "5_4", "5_5"]
    assert expand_array_ids("93") == ["93"]
    assert expand_array_ids("87_1") == ["87_1"]


def test_status_asks_once_per_array() -> None:
    argv = Slurm().status_argv(["97_0", "97_1", "97_2", "100", "101_0"])
    assert argv[-1] == "--jobs=97,100,101"
