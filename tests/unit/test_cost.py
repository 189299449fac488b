"""Core-hour arithmetic from fixed job times: no clock, no processes."""

from __future__ import annotations

import pytest

from hpcdask.config import resolve_job_options
from hpcdask.cost import (
    JobResources,
    charged_seconds,
    job_resources,
    measure_usage,
    parse_job_resources,
)
from hpcdask.models import JobRecord, JobState, JobStatus
from hpcdask.systems.pbs import PBS
from hpcdask.systems.slurm import Slurm

T0 = 1_800_000_000.0  # a fixed submit time


def record(
    name: str,
    state: JobState,
    start: float | None = None,
    end: float | None = None,
) -> JobRecord:
    status = JobStatus(
        state, submit_time=T0, start_time=start, end_time=end, time_limit=3600.0
    )
    return JobRecord(name=name, job_id=name.rsplit("-", 1)[-1], status=status)


def test_pending_job_costs_nothing_running_job_charges_up_to_now() -> None:
    pending = record("w-1", JobState.PENDING)
    running = record("w-2", JobState.RUNNING, start=T0 + 60)
    assert charged_seconds(pending, now=T0 + 7200) == 0.0
    assert charged_seconds(running, now=T0 + 60) == 0.0
    assert charged_seconds(running, now=T0 + 60 + 1800) == 1800.0
    # a clock behind the queue's start time never gives a negative charge
    assert charged_seconds(running, now=T0) == 0.0


def test_ended_job_charges_start_to_end_whatever_now_is() -> None:
    done = record("w-3", JobState.CANCELLED, start=T0 + 10, end=T0 + 10 + 900)
    assert charged_seconds(done, now=T0 + 10 + 900) == 900.0
    assert charged_seconds(done, now=T0 + 10**6) == 900.0


def test_usage_totals_and_burn_rate() -> None:
    records = [
        record("w-1", JobState.PENDING),
        record("w-2", JobState.RUNNING, start=T0),  # 2 h at now
        record("w-3", JobState.RUNNING, start=T0 + 3600),  # 1 h at now
        record("w-4", JobState.TIMEOUT, start=T0, end=T0 + 1800),  # 0.5 h
        record("w-5", JobState.FAILED),  # failed before it started
    ]
    usage = measure_usage(records, JobResources(cores=36, nodes=1, gpus=4), T0 + 7200)
    assert usage.core_hours == pytest.approx(36 * 3.5)
    assert usage.node_hours == pytest.approx(3.5)
    assert usage.gpu_hours == pytest.approx(4 * 3.5)
    assert (usage.cores_in_use, usage.nodes_in_use, usage.gpus_in_use) == (72, 2, 8)
    assert usage.burn_rate == 72.0
    per_job = {c.job_id: c.core_hours for c in usage.jobs}
    assert per_job == pytest.approx({"1": 0, "2": 72, "3": 36, "4": 18, "5": 0})
    assert str(usage) == (
        "126.00 core-hours (3.50 node-hours, 14.00 GPU-hours), "
        "burning 72 core-hours/hour"
    )


def test_usage_without_gpus_says_no_gpu_hours() -> None:
    usage = measure_usage(
        [record("w-1", JobState.COMPLETED, start=T0, end=T0 + 360)],
        JobResources(cores=4),
        T0 + 10_000,
    )
    assert usage.core_hours == pytest.approx(0.4)
    assert usage.cores_in_use == 0
    assert "GPU" not in str(usage)


def test_running_job_grows_linearly_with_now() -> None:
    records = [record("w-1", JobState.RUNNING, start=T0)]
    resources = JobResources(cores=8)
    hours = [measure_usage(records, resources, T0 + s).core_hours for s in (0, 900)]
    assert hours == pytest.approx([0.0, 2.0])


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["#SBATCH -n 1", "#SBATCH --cpus-per-task=12"], JobResources(12, 1, 0)),
        (["#SBATCH --ntasks=4", "#SBATCH -c 2"], JobResources(8, 1, 0)),
        (["#SBATCH --cpus-per-task=8", "#SBATCH --gres=gpu:2"], JobResources(8, 1, 2)),
        (["#SBATCH -N 2", "#SBATCH --gres=gpu:a100:4,nvme:1"], JobResources(6, 2, 8)),
        (["#SBATCH --gres=gpu"], JobResources(6, 1, 1)),
        (["#SBATCH --gpus=a100:3"], JobResources(6, 1, 3)),
        (["#SBATCH -G 2"], JobResources(6, 1, 2)),
        (["#SBATCH --nodes=2", "#SBATCH --gpus-per-node=4"], JobResources(6, 2, 8)),
        (["#SBATCH -n 3", "#SBATCH --gpus-per-task=1"], JobResources(6, 1, 3)),
        # the later of two directives wins, as sbatch reads them
        (["#SBATCH -c 2", "#SBATCH -c 4"], JobResources(4, 1, 0)),
        (
            ["#PBS -l select=1:ncpus=8:ngpus=2:mem=16gb", "#PBS -l walltime=01:00:00"],
            JobResources(8, 1, 2),
        ),
        (["#PBS -l select=2:ncpus=4+1:ncpus=2:ngpus=1"], JobResources(10, 3, 1)),
        (["#PBS -l nodes=2:ppn=16:gpus=2"], JobResources(32, 2, 4)),
        (["#PBS -l select=1:ncpus=2:mem=1gb,walltime=00:10:00"], JobResources(2, 1, 0)),
        (["#PBS -l ngpus=1"], JobResources(6, 1, 1)),
        ([], JobResources(6, 1, 0)),
    ],
)
def test_parse_job_resources(lines: list[str], expected: JobResources) -> None:
    assert parse_job_resources(lines, default_cores=6) == expected


def test_job_resources_read_the_rendered_directives() -> None:
    opts = resolve_job_options(
        "slurm",
        cores=8,
        memory="16GB",
        job_extra_directives=["--gres=gpu:2"],
    )
    assert job_resources(opts, Slurm()) == JobResources(8, 1, 2)
    # a skipped directive is not submitted, so it is not charged
    skipped = resolve_job_options(
        "slurm",
        cores=8,
        memory="16GB",
        job_extra_directives=["--gres=gpu:2"],
        job_directives_skip=["--gres"],
    )
    assert job_resources(skipped, Slurm()) == JobResources(8, 1, 0)
    pbs = resolve_job_options("pbs", cores=4, memory="8GB")
    assert job_resources(pbs, PBS()) == JobResources(4, 1, 0)
    custom = resolve_job_options(
        "pbs", cores=4, memory="8GB", resource_spec="select=1:ncpus=4:ngpus=1"
    )
    assert job_resources(custom, PBS()) == JobResources(4, 1, 1)
