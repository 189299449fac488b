"""Fixtures for the one-node Son of Grid Engine (ci/sge-up.sh); the
integration conftest re-exports them."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# ------------------------------------------------------------- Grid Engine
# The one-node Son of Grid Engine of ci/sge-up.sh. Its commands are reached
# only through ``sge.env`` (SGE's settings.sh applied: SGE_ROOT, SGE_CELL, the
# ports, PATH with SGE's bin first), passed to each subprocess; this process's
# own PATH keeps Slurm's Torque-compatible ``qsub``, which the PBS tests use.
SGE_ROOT = Path(os.environ.get("HPCDASK_SGE_ROOT", "/opt/hpcdask-sge"))
SGE_SETTINGS = SGE_ROOT / "default" / "common" / "settings.sh"


@dataclass(frozen=True)
class SGE:
    root: Path
    env: dict[str, str]

    def run(
        self, *argv: str, check: bool = True, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run an SGE command (found on ``env``'s PATH) with SGE's environment."""
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
            env=self.env,
            cwd=cwd,
        )

    def queued(self) -> set[str]:
        """Ids of all jobs SGE still holds (any user, any state)."""
        root = ET.fromstring(self.run("qstat", "-u", "*", "-xml").stdout)
        return {e.text or "" for e in root.iter("JB_job_number")}

    def submitted_from(self, directory: Path) -> list[str]:
        """Ids of the jobs SGE holds that were submitted from ``directory``
        (hpcdask submits from a cluster's log directory, one per test)."""
        out = self.run("qstat", "-u", "*", "-j", "*", check=False).stdout
        ids, number = [], ""
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key == "job_number":
                number = value.strip()
            elif key == "sge_o_workdir" and Path(value.strip()) == directory:
                ids.append(number)
        return sorted(ids, key=int)

    def states(self, job_id: str) -> set[str]:
        """The states (``qw``, ``r``, ``Eqw``, ...) of a job's lines in ``qstat -xml``."""
        root = ET.fromstring(self.run("qstat", "-u", "*", "-xml").stdout)
        return {
            job.findtext("state") or ""
            for job in root.iter("job_list")
            if job.findtext("JB_job_number") == job_id
        }


@pytest.fixture(scope="session")
def sge() -> SGE:
    """SGE's environment; fails (does not skip) when SGE is not up."""
    hint = "run `bash ci/sge-up.sh` (the README's test command does)"
    if not SGE_SETTINGS.is_file():
        pytest.fail(f"Son of Grid Engine is not installed (no {SGE_SETTINGS}): {hint}")
    # SGE's settings.sh reads $MANPATH unguarded: source it without `set -u`
    shell = subprocess.run(
        ["bash", "-c", '. "$1" && env -0', "bash", str(SGE_SETTINGS)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if shell.returncode != 0:
        pytest.fail(f"sourcing {SGE_SETTINGS} failed ({shell.stderr.strip()}): {hint}")
    env = dict(item.split("=", 1) for item in shell.stdout.split("\0") if "=" in item)
    site = SGE(SGE_ROOT, env)
    try:
        instances = site.run("qselect", "-q", "all.q").stdout.split()
        unknown = site.run("qselect", "-q", "all.q", "-qs", "u", check=False)
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        detail = getattr(e, "stderr", None) or str(e)
        pytest.fail(f"Son of Grid Engine does not answer ({detail.strip()}): {hint}")
    if not instances or unknown.stdout.strip():
        pytest.fail(f"SGE's all.q has no usable host ({instances}): {hint}")
    return site


@dataclass
class SGEJobs:
    """Submits SGE jobs for one test and remembers their ids."""

    sge: SGE
    ids: list[str] = dataclasses.field(default_factory=list)

    def submit(self, *qsub_args: str, cwd: Path | None = None) -> str:
        """``qsub -terse ARGS``; returns the job id (an array's base id)."""
        out = self.sge.run("qsub", "-terse", *qsub_args, cwd=cwd).stdout.strip()
        job_id = out.split(".")[0]
        self.ids.append(job_id)
        return job_id

    def left(self) -> list[str]:
        """This test's jobs SGE still holds."""
        return sorted(set(self.ids) & self.sge.queued())


def remove_jobs(sge: SGE, job_ids: list[str], timeout: float = 10.0) -> list[str]:
    """``qdel`` ``job_ids``; those still there after ``timeout`` s (a job in
    ``dr``/``dt`` whose execd died never leaves by itself) are forced out with
    ``qdel -f`` (the tests run as root, an SGE manager). Returns what is left."""
    if not job_ids:
        return []
    sge.run("qdel", *job_ids, check=False)
    deadline = time.monotonic() + timeout
    while (left := sorted(set(job_ids) & sge.queued())) and time.monotonic() < deadline:
        time.sleep(0.5)
    if left:
        sge.run("qdel", "-f", *left, check=False)
        time.sleep(1)
        left = sorted(set(job_ids) & sge.queued())
    return left


@pytest.fixture
def sge_jobs(sge: SGE) -> Iterator[SGEJobs]:
    """Yields an ``SGEJobs``; fails the test if any job it submitted is still
    in the queue 20 s after it ends (those are then deleted, forced if need
    be). Other jobs on the machine are left alone."""
    jobs = SGEJobs(sge)
    yield jobs
    deadline = time.monotonic() + 20
    while (left := jobs.left()) and time.monotonic() < deadline:
        time.sleep(0.5)
    if left:
        stuck = remove_jobs(sge, left)
        pytest.fail(
            f"SGE jobs left in the queue after the test: {left}"
            + (f" (still there after qdel -f: {stuck})" if stuck else "")
        )


@pytest.fixture
def sge_cluster_jobs(
    sge: SGE, log_directory: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], list[str]]]:
    """For SGECluster tests: ``SGE_ROOT`` set for this test only (hpcdask then
    runs SGE's commands with settings.sh's environment; this process's PATH
    keeps Slurm's qsub), and a function listing the jobs the test's clusters
    queued (submitted from its log directory). Fails the test if any of them
    is still queued 20 s after it (they are then deleted, forced if need be).
    """
    monkeypatch.setenv("SGE_ROOT", str(sge.root))
    monkeypatch.delenv("SGE_CELL", raising=False)

    def queued() -> list[str]:
        return sge.submitted_from(log_directory)

    yield queued
    deadline = time.monotonic() + 20
    while (left := queued()) and time.monotonic() < deadline:
        time.sleep(0.5)
    if left:
        stuck = remove_jobs(sge, left)
        pytest.fail(
            f"SGE jobs left in the queue after the test: {left}"
            + (f" (still there after qdel -f: {stuck})" if stuck else "")
        )
