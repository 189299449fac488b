"""Integration tests run against the real local Slurm (see ci/slurm-up.sh).

They fail, not skip, when Slurm is not running: the README's test command starts it.
After each test, the queue must hold no job: a test that leaves one fails.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest


def run(*argv: str, check: bool = True) -> str:
    return subprocess.run(
        argv, capture_output=True, text=True, check=check, timeout=60
    ).stdout


def queued_job_ids() -> list[str]:
    """Jobs Slurm still holds as pending, running or completing."""
    return run("squeue", "--noheader", "--format=%i").split()


@pytest.fixture(scope="session")
def slurm() -> None:
    if shutil.which("sbatch") is None:
        pytest.fail(
            "Slurm is not installed: run `bash ci/slurm-up.sh` (the README's test command does)"
        )
    try:
        state = run("sinfo", "--noheader", "--format=%T", "--partition=debug").split()
    except subprocess.CalledProcessError as e:
        pytest.fail(
            f"Slurm is not running ({e.stderr.strip()}): run `bash ci/slurm-up.sh`"
        )
    if not state or state[0] not in ("idle", "mixed", "allocated"):
        pytest.fail(f"Slurm's node is {state}: run `bash ci/slurm-up.sh`")


@pytest.fixture
def empty_queue(slurm: None) -> Iterator[None]:
    """The queue is empty before the test and must be empty (within 20 s) after it."""
    leftover = queued_job_ids()
    if leftover:
        run("scancel", *leftover, check=False)
    yield
    deadline = time.monotonic() + 20
    while (left := queued_job_ids()) and time.monotonic() < deadline:
        time.sleep(0.5)
    if left:
        run("scancel", *left, check=False)
        pytest.fail(f"jobs left in the queue after the test: {left}")


def job_field(job_id: str, field: str) -> str:
    """One field of ``scontrol -o show job`` (ended jobs stay for MinJobAge)."""
    out = run("scontrol", "-o", "show", "job", job_id)
    for item in out.split():
        key, _, value = item.partition("=")
        if key == field:
            return value
    raise KeyError(field)
