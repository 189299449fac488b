"""The pure parts of the launcher for srun's tasks: the step from the
environment, the rendezvous file, the flags (no process, no socket)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpcdask.errors import MPIClusterError
from hpcdask.mpi.cli import parse_args
from hpcdask.mpi.options import Placement, from_arguments
from hpcdask.mpi.slurm import Rendezvous, SlurmStep, SrunOptions, read_rendezvous

# what srun -n 4 sets in a task of the second step of job 140 (seen on this site)
STEP_ENV = {
    "SLURM_PROCID": "3",
    "SLURM_STEP_NUM_TASKS": "4",
    "SLURM_NTASKS": "4",
    "SLURM_JOB_ID": "140",
    "SLURM_STEP_ID": "1",
}


def test_the_step_comes_from_srun_s_environment() -> None:
    step = SlurmStep.from_environ(STEP_ENV)
    assert (step.rank, step.size, step.job_id, step.step_id) == (3, 4, "140", "1")
    assert step.restarts == "0"


def test_the_steps_task_count_wins_over_the_jobs() -> None:
    step = SlurmStep.from_environ({**STEP_ENV, "SLURM_NTASKS": "8"})
    assert step.size == 4


@pytest.mark.parametrize("missing", ["SLURM_PROCID", "SLURM_JOB_ID", "SLURM_STEP_ID"])
def test_outside_srun_the_error_says_how_to_start_it(missing: str) -> None:
    environ = {k: v for k, v in STEP_ENV.items() if k != missing}
    with pytest.raises(MPIClusterError, match=f"srun -n 4 hpcdask-srun.*{missing}"):
        SlurmStep.from_environ(environ)


def test_each_step_and_each_requeued_run_has_its_own_rendezvous(tmp_path: Path) -> None:
    step = SlurmStep.from_environ(STEP_ENV)
    again = SlurmStep.from_environ({**STEP_ENV, "SLURM_RESTART_COUNT": "1"})
    path = step.rendezvous_path(str(tmp_path))
    assert path == tmp_path / ".hpcdask-srun-140.1.0.json"
    assert again.rendezvous_path(str(tmp_path)) != path
    assert (
        SlurmStep.from_environ({**STEP_ENV, "SLURM_STEP_ID": "2"}).rendezvous_path(
            str(tmp_path)
        )
        != path
    )


def test_a_relative_rendezvous_directory_is_made_absolute() -> None:
    path = SlurmStep.from_environ(STEP_ENV).rendezvous_path(".")
    assert path.is_absolute()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, None),
        ('{"scheduler": "tcp://10.77.0.11:4', None),  # half written
        ('{"scheduler": "tcp://a:1"}', None),
        (
            '{"scheduler": "tcp://10.77.0.11:40001", "control": ["10.77.0.11", 40002],'
            ' "token": "t"}',
            Rendezvous("tcp://10.77.0.11:40001", "10.77.0.11", 40002, "t"),
        ),
        ('{"error": "OSError()"}', Rendezvous(error="OSError()")),
    ],
)
def test_read_rendezvous(
    tmp_path: Path, content: str | None, expected: Rendezvous | None
) -> None:
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    assert read_rendezvous(path) == expected


def test_hpcdask_srun_takes_the_same_flags_and_its_own() -> None:
    args = parse_args(
        ["run", "--nthreads", "2", "--rendezvous-directory", "/shared", "a.py"],
        launcher="srun",
    )
    options = from_arguments(args, SrunOptions)
    assert options == SrunOptions(rendezvous_directory="/shared")
    assert args.nthreads == 2
    with pytest.raises(SystemExit):
        parse_args(["run", "--rendezvous-directory", "/x", "a.py"])  # hpcdask-mpi's


def test_dask_mpi_command_options_under_serve() -> None:
    words = (
        "serve --scheduler-file s.json --scheduler-port 8786 --scheduler-rank 2 "
        "--inclusive-workers --name dask_mpi --interface ib0 --protocol tcp "
        "--nthreads 4 --memory-limit 12e9 --local-directory /scratch --nanny "
        "--worker-class distributed.Nanny --no-dashboard --dashboard-address :9000"
    )
    options = json.dumps({"lifetime": "1h"})
    args = parse_args([*words.split(" "), "--worker-options", options])
    placement = from_arguments(args, Placement)
    assert placement == Placement(scheduler_rank=2, exclusive_workers=False)
    roles = placement.roles(4, with_client=False, launcher="mpirun")
    assert roles.workers == (0, 1, 2, 3)
    assert (args.worker_name, args.scheduler_port, args.memory_limit) == (
        "dask_mpi",
        8786,
        12e9,
    )
    assert args.worker_options == {"lifetime": "1h"}


def test_serve_without_a_scheduler_needs_one_to_join() -> None:
    args = parse_args(["serve", "--no-scheduler", "tcp://10.0.0.1:8786"])
    assert args.scheduler_address == "tcp://10.0.0.1:8786"
    assert from_arguments(args, Placement).roles(2, False, "mpirun").workers == (0, 1)
    with pytest.raises(SystemExit):
        parse_args(["serve", "--no-scheduler"])
