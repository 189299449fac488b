"""An MPI batch script from ``SLURMCluster.mpi_job_script`` through the real Slurm."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hpcdask import SLURMCluster
from tests.integration.conftest import job_field
from tests.integration.test_mpi import COMPUTE, mpi_env, noise, write

NewJobs = Callable[[], list[str]]


def wait_until_ended(job_id: str, timeout: float) -> str:
    """The job's final state; cancels the job and fails if it takes too long."""
    deadline = time.monotonic() + timeout
    while True:
        state = job_field(job_id, "JobState")
        if state not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
            return state
        if time.monotonic() > deadline:
            subprocess.run(["scancel", job_id], check=False, timeout=30)
            pytest.fail(f"MPI job {job_id} still {state} after {timeout}s")
        time.sleep(0.5)


def test_mpi_job_script_runs_under_sbatch_with_the_scripts_exit_code(
    tmp_path: Path, log_directory: Path, new_jobs: NewJobs
) -> None:
    script = write(tmp_path / "analysis.py", COMPUTE + "\n    sys.exit(3)\n")
    with SLURMCluster(
        cores=1,
        processes=1,
        memory="1GB",
        walltime="00:05:00",
        queue="debug",
        job_name="hpcdask-mpi-test",
        log_directory=str(log_directory),
        nanny=False,
    ) as cluster:
        text = cluster.mpi_job_script(
            str(script), "x", ntasks=4, mpi_args=["--dashboard-address", ":0"]
        )
    assert "#SBATCH --ntasks=4" in text
    batch = tmp_path / "analysis.sbatch"
    batch.write_text(text)
    # submitted from the log directory, as hpcdask submits its jobs
    submitted = subprocess.run(
        ["sbatch", "--parsable", str(batch)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env=mpi_env(),  # the job inherits it: mpirun may run as root here
        cwd=log_directory,
    )
    job_id = submitted.stdout.strip().split(";")[0]
    try:
        assert job_id in new_jobs()
        state = wait_until_ended(job_id, timeout=150)
    finally:
        if job_id in new_jobs():
            subprocess.run(["scancel", job_id], check=False, timeout=30)

    stdout = (log_directory / f"hpcdask-mpi-test-{job_id}.out").read_text()
    stderr = (log_directory / f"hpcdask-mpi-test-{job_id}.err").read_text()
    assert f"total={999_999 * 1_000_000 // 2} workers=2 argv=['x']" in stdout, stderr
    assert state == "FAILED"  # Slurm's name for a non-zero exit
    assert job_field(job_id, "ExitCode") == "3:0"
    assert noise(stderr) == [], stderr
