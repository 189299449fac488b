"""Job scripts render from options alone (pure, no processes)."""

from __future__ import annotations

import pytest

from hpcdask.config import resolve_job_options
from hpcdask.format import format_memory_limit
from hpcdask.script import render_job_script
from hpcdask.systems.local import LocalSystem
from hpcdask.systems.pbs import PBS
from hpcdask.systems.slurm import Slurm

ADDRESS = "tcp://10.0.0.1:8786"


def slurm_script(**kwargs: object) -> str:
    options: dict[str, object] = {
        "cores": 8,
        "memory": "16GiB",
        "log_directory": "/logs",
    }
    options.update(kwargs)
    return render_job_script(
        resolve_job_options("slurm", **options), Slurm(), ADDRESS, ["dask-worker-3"]
    )


def test_slurm_script() -> None:
    script = slurm_script(
        processes=2, queue="regular", account="P12345", walltime="01:00:00"
    )
    lines = script.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    directives = [line for line in lines if line.startswith("#SBATCH")]
    assert directives == [
        "#SBATCH -J dask-worker",
        "#SBATCH -p regular",
        "#SBATCH -A P12345",
        "#SBATCH -n 1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=16384M",
        "#SBATCH -t 01:00:00",
        "#SBATCH -o /logs/dask-worker-%j.out",
        "#SBATCH -e /logs/dask-worker-%j.err",
    ]
    command = lines[-1].split()
    assert command[1:4] == ["-m", "distributed.cli.dask_worker", "tcp://10.0.0.1:8786"]
    assert command[command.index("--name") + 1] == "dask-worker-3"
    assert command[command.index("--nthreads") + 1] == "4"
    assert command[command.index("--nworkers") + 1] == "2"
    assert command[command.index("--memory-limit") + 1] == "8GiB"
    assert "--nanny" in command
    assert "--no-dashboard" in command  # no Bokeh import in every worker
    assert command[command.index("--lifetime") + 1] == "3300s"  # 1 h - 5 min


def test_nanny_forks_its_worker_unless_told_otherwise() -> None:
    export = "export DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD="
    lines = slurm_script(job_script_prologue=["module load python"]).splitlines()
    # set before the prologue, so a site's prologue can still override it
    assert lines.index(export + "fork") < lines.index("module load python")
    assert export + "spawn" in slurm_script(worker_start_method="spawn")
    # without a nanny the worker is the job's own process: nothing to start
    assert export not in slurm_script(nanny=False)


def test_unknown_start_method_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="worker_start_method"):
        slurm_script(worker_start_method="vfork")


def test_extra_and_skipped_directives() -> None:
    script = slurm_script(
        job_extra_directives=["--exclusive", "--constraint=haswell"],
        job_directives_skip=["--mem", "-A"],
        account="P1",
    )
    assert "#SBATCH --exclusive" in script
    assert "#SBATCH --constraint=haswell" in script
    assert "--mem=" not in script
    assert "#SBATCH -A" not in script


def test_prologue_epilogue_and_worker_args_in_order() -> None:
    script = slurm_script(
        job_script_prologue=["module load python", "source $HOME/venv/bin/activate"],
        job_script_epilogue=["echo done"],
        worker_extra_args=["--lifetime", "55m", "--resources GPU=1"],
        local_directory="$TMPDIR",
        interface="ib0",
        nanny=False,
        death_timeout=120,
    )
    lines = script.splitlines()
    i = lines.index("module load python")
    assert lines[i + 1] == "source $HOME/venv/bin/activate"
    assert lines[i + 2].split()[1:3] == ["-m", "distributed.cli.dask_worker"]
    assert lines[i + 3] == "echo done"
    command = lines[i + 2]
    assert command.endswith("--lifetime 55m --resources GPU=1")
    assert '--local-directory "$TMPDIR"' in command
    assert "--interface ib0" in command
    assert "--no-nanny" in command
    assert "--death-timeout 120" in command


def test_memory_and_cpu_overrides() -> None:
    script = slurm_script(job_cpu=16, job_mem="32GiB")
    assert "#SBATCH --cpus-per-task=16" in script
    assert "#SBATCH --mem=32768M" in script


def test_pbs_script_uses_select_and_redirects_its_logs() -> None:
    opts = resolve_job_options(
        "pbs",
        cores=4,
        memory="8GiB",
        queue="workq",
        account="P1",
        log_directory="/logs",
    )
    script = render_job_script(opts, PBS(), ADDRESS, ["dask-worker-0"])
    assert "#PBS -N dask-worker" in script
    assert "#PBS -q workq" in script
    assert "#PBS -A P1" in script
    assert "#PBS -l select=1:ncpus=4:mem=8192mb" in script
    assert "#PBS -l walltime=00:30:00" in script
    assert (
        'export HPCDASK_JOB_ID="${HPCDASK_JOB_ID:-${PBS_JOBID:-${SLURM_JOB_ID}}}"'
        in script
    )
    assert (
        'exec >>"/logs/dask-worker-${HPCDASK_JOB_ID}.out" '
        '2>>"/logs/dask-worker-${HPCDASK_JOB_ID}.err"'
    ) in script
    # the redirection comes before anything else runs
    body = [
        line for line in script.splitlines()[1:] if line and not line.startswith("#")
    ]
    assert body[0].startswith("export HPCDASK_JOB_ID=")
    assert body[1].startswith("exec >>")


def test_pbs_resource_spec_override() -> None:
    opts = resolve_job_options(
        "pbs", cores=4, memory="8GiB", resource_spec="nodes=1:ppn=4"
    )
    script = render_job_script(opts, PBS(), ADDRESS, ["w"])
    assert "#PBS -l nodes=1:ppn=4" in script
    assert "select=" not in script


def test_local_script_has_no_directives() -> None:
    opts = resolve_job_options("local", cores=1, memory="1GiB", log_directory="/logs")
    script = render_job_script(opts, LocalSystem(), ADDRESS, ["w"])
    assert "#SBATCH" not in script and "#PBS" not in script
    assert 'exec >>"/logs/dask-worker-${HPCDASK_JOB_ID}.out"' in script


def test_name_with_variable_is_expanded_by_the_job() -> None:
    opts = resolve_job_options(
        "slurm", cores=1, memory="1GiB", name="run-$SLURM_JOB_ID"
    )
    script = render_job_script(opts, Slurm(), ADDRESS, ["run-$SLURM_JOB_ID-0"])
    assert '--name "run-$SLURM_JOB_ID-0"' in script


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (2**30, "1GiB"),
        (3 * 2**20, "3MiB"),
        (10**9, "1GB"),
        (4 * 10**9 // 3, "1333333333"),
    ],
)
def test_format_memory_limit_is_exact(size: int, text: str) -> None:
    assert format_memory_limit(size) == text


def test_workers_start_in_the_clients_directory() -> None:
    opts = resolve_job_options("slurm", cores=1, memory="1GiB")
    script = render_job_script(opts, Slurm(), ADDRESS, ["w"], workdir="/home/a b/nb")
    lines = script.splitlines()
    cd = lines.index("cd '/home/a b/nb' || exit 1")
    assert cd < len(lines) - 1 and "dask_worker" in lines[-1]
