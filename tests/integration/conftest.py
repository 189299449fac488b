"""Integration tests run against the real local Slurm (see ci/slurm-up.sh).

They fail, not skip, when Slurm is not running: the README's test command starts it.
After each test, no job it submitted may be left in the queue (see ``new_jobs``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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


# --------------------------------------------------- the multi-node test site
# A second Slurm cluster ("hpcmn": 4 nodes in network namespaces, a gpu
# partition) brought up by ci/multinode-up.sh beside the one-node Slurm above.
# Tests talk to it through ``multinode.env`` (SLURM_CONF set for that
# subprocess only): the process-wide environment keeps the one-node Slurm.

MULTINODE_ENV_FILE = Path("/etc/slurm-mn/env")
MULTINODE_NODE_SH = Path(__file__).resolve().parents[2] / "ci" / "multinode-node.sh"
MULTINODE_UP = "run `bash ci/multinode-up.sh` (the README's test command does)"


@dataclass(frozen=True)
class MultiNode:
    """The multi-node site as Slurm reports it."""

    env: dict[str, str]  # os.environ without SLURM_*, plus the site's SLURM_CONF
    nodes: dict[str, str]  # node name -> its address: {"mn1": "10.77.0.11", ...}
    gpus: dict[str, int]  # GPU nodes -> GPUs (Slurm GRES): {"mn4": 2}
    partition: str  # the default partition, all nodes ("batch")
    gpu_partition: str  # the partition of the GPU nodes ("gpu")
    login_host: str  # "mnlogin": the host as the nodes reach it
    login_addr: str  # "10.77.0.1": bind services that jobs must reach here

    def run(
        self, *argv: str, check: bool = True, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command (sbatch, srun, squeue, ...) against the site."""
        return subprocess.run(
            argv,
            env=self.env,
            cwd=cwd,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def node_states(self) -> dict[str, str]:
        """``sinfo`` state of each node: idle, mixed, down* (not responding), ..."""
        out = self.run("sinfo", "-h", "-N", "-p", self.partition, "-o", "%N %T").stdout
        return dict(line.split() for line in out.splitlines())

    def job_field(self, job_id: str, field: str) -> str:
        """One field of ``scontrol -o show job`` (ended jobs stay for MinJobAge)."""
        for item in self.run("scontrol", "-o", "show", "job", job_id).stdout.split():
            key, _, value = item.partition("=")
            if key == field:
                return value
        raise KeyError(field)

    def queued_job_ids(self, submitted_from: Path) -> list[str]:
        """Jobs still pending, running or completing that were submitted from
        ``submitted_from``."""
        out = self.run("squeue", "-h", "--array", "-o", "%i|%Z").stdout
        return sorted(
            job_id
            for job_id, _, workdir in (line.partition("|") for line in out.splitlines())
            if Path(workdir) == submitted_from
        )

    def node(self, action: str, node: str) -> str:
        """``ci/multinode-node.sh ACTION NODE``: kill, start, restart, netdown, netup."""
        return subprocess.run(
            ["bash", str(MULTINODE_NODE_SH), action, node],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout


def _multinode_env() -> dict[str, str]:
    site = {}
    for line in MULTINODE_ENV_FILE.read_text().splitlines():
        key, sep, value = line.removeprefix("export ").partition("=")
        if sep and not line.startswith("#"):
            site[key.strip()] = value.strip()
    # the caller's Slurm variables (a job's SLURM_JOB_ID, another SLURM_CONF)
    # would send srun and sbatch to the wrong cluster or allocation
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_", "SQUEUE_"))
    }
    return env | site


def _fields(line: str) -> dict[str, str]:
    """``Key=Value`` items of one ``scontrol -o`` line."""
    return dict(item.split("=", 1) for item in line.split() if "=" in item)


@pytest.fixture(scope="session")
def multinode() -> MultiNode:
    """The multi-node site, checked up: fails (never skips) when it is not."""
    if not MULTINODE_ENV_FILE.exists():
        pytest.fail(
            f"the multi-node Slurm site is not up (no {MULTINODE_ENV_FILE}): {MULTINODE_UP}"
        )
    env = _multinode_env()

    def show(kind: str) -> list[dict[str, str]]:
        argv = ["scontrol", "-o", "show", kind]
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            pytest.fail(
                f"the multi-node Slurm site does not answer ({out.stderr.strip()}): {MULTINODE_UP}"
            )
        return [_fields(line) for line in out.stdout.splitlines()]

    nodes = show("node")
    unusable = {
        n["NodeName"]: n["State"]
        for n in nodes
        if n["State"] not in ("IDLE", "MIXED", "ALLOCATED")
    }
    if not nodes or unusable:
        pytest.fail(
            f"the multi-node Slurm site's nodes are not usable ({unusable or 'none'}): {MULTINODE_UP}"
        )
    partitions = {p["PartitionName"]: p for p in show("partition")}
    if "gpu" not in partitions:
        pytest.fail(f"the multi-node Slurm site has no gpu partition: {MULTINODE_UP}")
    return MultiNode(
        env=env,
        nodes={n["NodeName"]: n["NodeAddr"] for n in nodes},
        gpus={
            n["NodeName"]: int(n["Gres"].removeprefix("gpu:"))
            for n in nodes
            if n["Gres"].startswith("gpu:")
        },
        partition=next(
            p for p, fields in partitions.items() if fields["Default"] == "YES"
        ),
        gpu_partition="gpu",
        login_host=env["HPCDASK_MN_LOGIN_HOST"],
        login_addr=env["HPCDASK_MN_LOGIN_ADDR"],
    )


@pytest.fixture
def multinode_jobs(
    multinode: MultiNode, log_directory: Path
) -> Iterator[Callable[[], list[str]]]:
    """Like ``new_jobs``, on the multi-node site: submit from ``log_directory``
    (``cwd=``); yields a function listing the test's queued jobs there and fails
    the test if any of them is still queued 20 s after it ends."""

    def new() -> list[str]:
        return multinode.queued_job_ids(log_directory)

    yield new
    deadline = time.monotonic() + 20
    while (left := new()) and time.monotonic() < deadline:
        time.sleep(0.5)
    if left:
        multinode.run("scancel", *left, check=False)
        pytest.fail(f"jobs left in the multi-node queue after the test: {left}")
