"""Integration tests run against the real local Slurm (see ci/slurm-up.sh)
and the real one-node Son of Grid Engine (see ci/sge-up.sh).

They fail, not skip, when Slurm or SGE is not running: the README's test command
starts both. After each test, no job it submitted may be left in the queue (see
``new_jobs`` and ``sge_jobs``).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def run(*argv: str, check: bool = True) -> str:
    return subprocess.run(
        argv, capture_output=True, text=True, check=check, timeout=60
    ).stdout


def queued_job_ids(submitted_from: Path | None = None) -> list[str]:
    """Jobs Slurm still holds as pending, running or completing; only those
    submitted from ``submitted_from`` when given (hpcdask submits from the
    cluster's log directory, one per test)."""
    out = run("squeue", "--noheader", "--array", "--format=%i|%Z")
    ids = []
    for line in out.splitlines():
        job_id, _, workdir = line.partition("|")
        if submitted_from is None or Path(workdir) == submitted_from:
            ids.append(job_id)
    return ids


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
def new_jobs(slurm: None, log_directory: Path) -> Iterator[Callable[[], list[str]]]:
    """Yields a function listing the queued jobs the test submitted (those
    submitted from its log directory); fails the test if any of them is still
    queued 20 s after it ends. Other jobs on the machine are left alone.
    """

    def new() -> list[str]:
        return sorted(queued_job_ids(log_directory))

    yield new
    deadline = time.monotonic() + 20
    while (left := set(new())) and time.monotonic() < deadline:
        time.sleep(0.5)
    if left:
        run("scancel", *left, check=False)
        pytest.fail(f"jobs left in the queue after the test: {sorted(left)}")


def wait_for(
    predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


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


# the fixtures of the other test sites, defined beside this file
from tests.integration.busy_site import busy_site  # noqa: E402
from tests.integration.multinode_site import (  # noqa: E402
    multinode,
    multinode_jobs,
    on_multinode,
)
from tests.integration.sge_site import sge, sge_cluster_jobs, sge_jobs  # noqa: E402

__all__ = [
    "busy_site",
    "multinode",
    "multinode_jobs",
    "on_multinode",
    "sge",
    "sge_cluster_jobs",
    "sge_jobs",
]
