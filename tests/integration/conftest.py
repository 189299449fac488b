"""Integration tests run against the real local Slurm (see ci/slurm-up.sh).

They fail, not skip, when Slurm is not running: the README's test command starts it.
After each test, no job it submitted may be left in the queue (see ``new_jobs``).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest


def run(*argv: str, check: bool = True) -> str:
    return subprocess.run(
        argv, capture_output=True, text=True, check=check, timeout=60
    ).stdout


def queued_job_ids() -> list[str]:
    """Jobs Slurm still holds as pending, running or completing."""
    return run("squeue", "--noheader", "--array", "--format=%i").split()


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
def new_jobs(slurm: None) -> Iterator[Callable[[], list[str]]]:
    """Yields a function listing the queued jobs the test submitted; fails the
    test if any of them is still queued 20 s after it ends.

    Jobs that were queued before the test are not the test's and are left alone.
    """
    before = set(queued_job_ids())

    def new() -> list[str]:
        return sorted(set(queued_job_ids()) - before)

    yield new
    deadline = time.monotonic() + 20
    while (left := set(queued_job_ids()) - before) and time.monotonic() < deadline:
        time.sleep(0.5)
    if left:
        run("scancel", *left, check=False)
        pytest.fail(f"jobs left in the queue after the test: {sorted(left)}")


def job_field(job_id: str, field: str) -> str:
    """One field of ``scontrol -o show job`` (ended jobs stay for MinJobAge).

    Array elements cancelled while still pending have no record of their own:
    their array's record holds their state.
    """
    try:
        out = run("scontrol", "-o", "show", "job", job_id)
    except subprocess.CalledProcessError:
        out = run("scontrol", "-o", "show", "job", job_id.split("_")[0])
    for item in out.split():
        key, _, value = item.partition("=")
        if key == field:
            return value
    raise KeyError(field)
