"""MPI batch scripts rendered from a cluster's job options (pure, no processes)."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from hpcdask.config import resolve_job_options
from hpcdask.errors import InvalidOptionError
from hpcdask.mpi.script import mpi_launch_argv, render_mpi_job_script
from hpcdask.systems.pbs import PBS
from hpcdask.systems.slurm import Slurm


def slurm_options(**kwargs: Any) -> Any:
    base: dict[str, Any] = {
        "cores": 4,
        "processes": 2,
        "memory": "8GiB",
        "queue": "debug",
        "account": "P123",
        "walltime": "01:00:00",
        "log_directory": "/tmp/logs",
        "python": "/opt/py/bin/python",
    }
    base.update(kwargs)
    return resolve_job_options("slurm", **base)


def command_line(script: str) -> list[str]:
    """The launch line of a rendered script, split as the shell would."""
    lines = [
        line for line in script.splitlines() if line.startswith(("mpirun", "srun"))
    ]
    assert len(lines) == 1, script
    return shlex.split(lines[0])


def test_slurm_script_carries_the_cluster_settings() -> None:
    opts = slurm_options(
        job_script_prologue=["module load openmpi"],
        job_extra_directives=["--exclusive"],
        nanny=False,
    )
    script = render_mpi_job_script(
        opts, Slurm(), "analysis.py", ["--size", "big input"], nodes=2
    )
    lines = script.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert "#SBATCH -p debug" in lines
    assert "#SBATCH -A P123" in lines
    assert "#SBATCH -t 01:00:00" in lines
    assert "#SBATCH --nodes=2" in lines
    assert "#SBATCH --ntasks=4" in lines
    # one rank per worker process, with that process's threads
    assert "#SBATCH --cpus-per-task=2" in lines
    assert "#SBATCH --mem=8192M" in lines
    assert "#SBATCH -n 1" not in lines
    assert "#SBATCH --exclusive" in lines
    assert "#SBATCH -o /tmp/logs/dask-worker-%j.out" in lines
    assert lines.index("module load openmpi") < lines.index(
        next(line for line in lines if line.startswith("mpirun"))
    )
    assert command_line(script) == [
        "mpirun",
        "-np",
        "4",
        "/opt/py/bin/python",
        "-m",
        "hpcdask.mpi",
        "run",
        "--nthreads",
        "2",
        "--memory-limit",
        "4GiB",
        "--no-nanny",
        "analysis.py",
        "--size",
        "big input",
    ]


def test_default_ntasks_is_at_least_three() -> None:
    script = render_mpi_job_script(slurm_options(processes=1), Slurm(), "a.py")
    assert "#SBATCH --ntasks=3" in script.splitlines()
    assert command_line(script)[:3] == ["mpirun", "-np", "3"]


def test_directives_skip_applies_to_the_mpi_lines_too() -> None:
    opts = slurm_options(job_directives_skip=["-A ", "--mem"])
    lines = render_mpi_job_script(opts, Slurm(), "a.py", ntasks=5).splitlines()
    assert not any(line.startswith(("#SBATCH -A", "#SBATCH --mem")) for line in lines)
    assert "#SBATCH --ntasks=5" in lines


def test_srun_launcher_and_extra_arguments() -> None:
    script = render_mpi_job_script(
        slurm_options(interface="ib0", local_directory="$TMPDIR"),
        Slurm(),
        "pkg.jobs:main",
        ntasks=8,
        launcher="srun",
        launcher_args=["--mpi=pmix"],
        mpi_args=["--no-dashboard"],
    )
    argv = command_line(script)
    assert argv[:4] == ["srun", "-n", "8", "--mpi=pmix"]
    # srun starts hpcdask-srun, which needs no MPI
    assert argv[4:8] == ["/opt/py/bin/python", "-m", "hpcdask.mpi.srun", "run"]
    assert argv[argv.index("--interface") + 1] == "ib0"
    assert "--no-dashboard" in argv
    assert argv[-1] == "pkg.jobs:main"
    # plain variables are left for the job's shell
    assert '--local-directory "$TMPDIR"' in script


def test_module_target() -> None:
    argv = mpi_launch_argv(
        slurm_options(), "pkg.analysis", ["x"], ntasks=3, module=True
    )
    assert argv[-3:] == ["-m", "pkg.analysis", "x"]


def test_tls_is_not_carried_over_without_credentials() -> None:
    argv = mpi_launch_argv(slurm_options(protocol="tls"), "a.py", ntasks=3)
    assert "--protocol" not in argv
    argv = mpi_launch_argv(slurm_options(protocol="tcp"), "a.py", ntasks=3)
    assert argv[argv.index("--protocol") + 1] == "tcp://"


def test_pbs_script_asks_for_mpiprocs_and_redirects_its_logs() -> None:
    opts = resolve_job_options(
        "pbs",
        cores=4,
        processes=2,
        memory="8GiB",
        queue="regular",
        walltime="00:30:00",
        log_directory="/tmp/logs",
    )
    script = render_mpi_job_script(opts, PBS(), "a.py", nodes=2, ntasks=6)
    lines = script.splitlines()
    assert "#PBS -q regular" in lines
    assert "#PBS -l select=2:ncpus=6:mpiprocs=3:ompthreads=2:mem=8192mb" in lines, (
        script
    )
    assert any(line.startswith("exec >>") for line in lines)
    assert command_line(script)[:3] == ["mpirun", "-np", "6"]


def test_pbs_keeps_a_site_resource_spec() -> None:
    opts = resolve_job_options(
        "pbs", cores=4, memory="8GiB", resource_spec="nodes=2:ppn=4"
    )
    assert "#PBS -l nodes=2:ppn=4" in render_mpi_job_script(opts, PBS(), "a.py")


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"ntasks": 2}, "ntasks"),
        ({"ntasks": 3, "nodes": 4}, "ntasks"),
        ({"nodes": 0}, "nodes"),
        ({"launcher": "aprun"}, "launcher"),
        ({"launcher_args": ["ok", "bad\nline"]}, "launcher_args"),
        ({"mpi_args": ["$(rm -rf ~)"]}, "mpi_args"),
    ],
)
def test_invalid_values_are_refused(kwargs: dict[str, Any], option: str) -> None:
    with pytest.raises(InvalidOptionError, match=option):
        render_mpi_job_script(slurm_options(), Slurm(), "a.py", **kwargs)


def test_srun_needs_slurm() -> None:
    opts = resolve_job_options("pbs", cores=1, memory="1GB")
    with pytest.raises(InvalidOptionError, match="srun"):
        render_mpi_job_script(opts, PBS(), "a.py", launcher="srun")


def test_a_script_name_with_shell_characters_stays_one_word() -> None:
    script = render_mpi_job_script(slurm_options(), Slurm(), "my job; rm -rf ~.py")
    assert command_line(script)[-1] == "my job; rm -rf ~.py"
