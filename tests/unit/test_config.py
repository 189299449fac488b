"""Options resolve from arguments, then hpcdask.* config, then jobqueue.* config."""

from __future__ import annotations

import sys

import dask.config
import pytest

from hpcdask.config import resolve_job_options
from hpcdask.errors import InvalidOptionError
from hpcdask.options import default_processes


def test_arguments_win_over_config() -> None:
    with dask.config.set({"hpcdask.slurm.queue": "fromconfig"}):
        opts = resolve_job_options("slurm", cores=2, memory="4GB", queue="fromarg")
    assert opts.queue == "fromarg"


def test_hpcdask_config_wins_over_jobqueue_config() -> None:
    with dask.config.set(
        {
            "hpcdask.slurm.queue": "ours",
            "jobqueue.slurm.queue": "theirs",
            "jobqueue.slurm.account": "P123",
        }
    ):
        opts = resolve_job_options("slurm", cores=2, memory="4GB")
    assert opts.queue == "ours"
    assert opts.account == "P123"


def test_jobqueue_yaml_alone_is_enough() -> None:
    config = {
        "jobqueue": {
            "pbs": {
                "cores": 36,
                "memory": "109GB",
                "processes": 6,
                "walltime": "01:00:00",
                "job-extra-directives": ["-m abe"],
                "account": "P99",
            }
        }
    }
    with dask.config.set(config):
        opts = resolve_job_options("pbs")
    assert (opts.cores, opts.processes, opts.threads_per_worker) == (36, 6, 6)
    assert opts.memory == 109 * 10**9
    assert opts.walltime == 3600
    assert opts.job_extra_directives == ("-m abe",)
    assert opts.account == "P99"


def test_defaults() -> None:
    opts = resolve_job_options("slurm", cores=1, memory="1GB")
    assert opts.python == sys.executable
    assert opts.walltime == 1800
    assert opts.processes == 1
    assert opts.job_name == "dask-worker"
    assert opts.nanny is True
    assert resolve_job_options("local", cores=1, memory="1GB").walltime == 7 * 86400


def test_cores_and_memory_are_required() -> None:
    with pytest.raises(InvalidOptionError, match="cores"):
        resolve_job_options("slurm", memory="1GB")
    with pytest.raises(InvalidOptionError, match="memory"):
        resolve_job_options("slurm", cores=1)


def test_unknown_argument_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="colour"):
        resolve_job_options("slurm", cores=1, memory="1GB", colour="blue")


def test_deprecated_names_still_work() -> None:
    with pytest.warns(FutureWarning, match="job_extra_directives"):
        opts = resolve_job_options(
            "slurm", cores=1, memory="1GB", job_extra=["--exclusive"]
        )
    assert opts.job_extra_directives == ("--exclusive",)
    with pytest.warns(FutureWarning, match="'account'"):
        opts = resolve_job_options("slurm", cores=1, memory="1GB", project="P12")
    assert opts.account == "P12"


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("queue", "debug\nhostname"),
        ("queue", "debug;hostname"),
        ("account", "$(id)"),
        ("account", "`id`"),
        ("job_name", "x y"),
        ("memory", "16 bananas"),
        ("memory", "16GB\n#SBATCH --exclusive"),
        ("walltime", "01:00:00; id"),
        ("walltime", "forever"),
        ("processes", 0),
        ("cores", -1),
        ("job_extra_directives", ["--exclusive\nhostname"]),
        ("job_extra_directives", "--exclusive"),
        ("worker_extra_args", ["--lifetime $(id)"]),
        ("local_directory", "$(mktemp -d)"),
        ("name", "dask;id"),
        ("name", "$(id)"),
        ("python", "python3`id`$HOME"),
        ("shebang", "/bin/bash"),
        ("worker_command", "distributed.cli.dask_worker; id"),
        ("protocol", "http://"),
        ("interface", "ib0 eth0"),
        ("log_directory", "/tmp/logs dir"),
    ],
)
def test_bad_values_name_the_argument(argument: str, value: object) -> None:
    kwargs: dict[str, object] = {"cores": 2, "memory": "4GB", argument: value}
    with pytest.raises(ValueError, match=argument):
        resolve_job_options("slurm", **kwargs)


def test_processes_more_than_cores() -> None:
    with pytest.raises(InvalidOptionError, match="processes"):
        resolve_job_options("slurm", cores=2, memory="4GB", processes=4)


def test_environment_variables_where_users_rely_on_them() -> None:
    opts = resolve_job_options(
        "slurm",
        cores=2,
        memory="4GB",
        name="run-$SLURM_ARRAY_JOB_ID",
        local_directory="$TMPDIR",
        worker_extra_args=["--resources GPU=1", "--lifetime", "55m"],
        job_script_prologue=["module load python", "source $HOME/env/bin/activate"],
    )
    assert opts.name == "run-$SLURM_ARRAY_JOB_ID"
    assert opts.job_name == "run-SLURM_ARRAY_JOB_ID"
    assert opts.worker_extra_args == ("--resources", "GPU=1", "--lifetime", "55m")


@pytest.mark.parametrize(
    ("cores", "processes"), [(1, 1), (4, 4), (8, 4), (36, 6), (7, 7), (48, 8)]
)
def test_default_processes_divides_cores(cores: int, processes: int) -> None:
    assert default_processes(cores) == processes
