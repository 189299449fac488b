"""The busy-queue test site (ci/busy-site-up.sh): a Slurm cluster of its own,
nodes busy1 (partition ``busy``) and busy2 (``idle``), 16 CPUs each, where
tests fill nodes and hold reservations without holding back the one-node
Slurm's other tests.

Fixtures fail (not skip) when the site is not up, naming the command that
brings it up. Its commands are reached with ``SLURM_CONF`` from
``/etc/slurm-busy/env``: ``busy_site.run`` passes it to a subprocess, and
``busy_site.use(monkeypatch)`` sets it for one test (hpcdask's commands
inherit it); never for the whole process.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ENV_FILE = Path("/etc/slurm-busy/env")
UP = "run `bash ci/busy-site-up.sh` (the README's test command does)"


@dataclass
class BusySite:
    """The site's environment and the jobs a test submitted to it."""

    conf: str
    submitted: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        return {**base, "SLURM_CONF": self.conf}

    def run(self, *argv: str, check: bool = True) -> str:
        return subprocess.run(
            argv, capture_output=True, text=True, check=check, env=self.env, timeout=60
        ).stdout

    def submit(self, *args: str, sleep: int = 3600) -> str:
        """An "other user's" job (a sleep) on the site; cancelled after the test."""
        out = self.run(
            "sbatch", "--parsable", "-o", "/dev/null", *args, "--wrap", f"sleep {sleep}"
        )
        job_id = out.strip().split(";")[0]
        self.submitted.append(job_id)
        return job_id

    def state(self, job_id: str) -> str:
        return self.run(
            "squeue",
            "--noheader",
            "--states=all",
            "-j",
            job_id,
            "-o",
            "%T",
            check=False,
        ).strip()

    def use(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """This test's hpcdask commands talk to the site."""
        monkeypatch.setenv("SLURM_CONF", self.conf)

    def queued(self, submitted_from: Path) -> list[str]:
        out = self.run("squeue", "--noheader", "--array", "--format=%i|%Z")
        return [
            line.split("|")[0]
            for line in out.splitlines()
            if Path(line.partition("|")[2]) == submitted_from
        ]


@pytest.fixture
def busy_site(log_directory: Path) -> Iterator[BusySite]:
    """The site; after the test, the jobs it submitted (and those submitted from
    its log directory) are cancelled, and the test fails if a cluster's job was
    still queued 20 s after it."""
    if not ENV_FILE.exists():
        pytest.fail(f"the busy-queue test site is not up: {UP}")
    conf = ENV_FILE.read_text().strip().partition("SLURM_CONF=")[2]
    site = BusySite(conf)
    try:
        out = site.run("sinfo", "--noheader", "--Node", "--format=%N %T")
    except subprocess.CalledProcessError as e:
        pytest.fail(
            f"the busy-queue site's controller does not answer ({e.stderr.strip()}): {UP}"
        )
    states = dict(line.split() for line in out.splitlines())
    if set(states) != {"busy1", "busy2"} or not all(
        s.rstrip("~") in ("idle", "mixed", "allocated", "completing", "planned")
        for s in states.values()
    ):
        pytest.fail(f"the busy-queue site's nodes are {states}: {UP}")
    yield site
    if site.submitted:
        site.run("scancel", *site.submitted, check=False)
    deadline = time.monotonic() + 20
    while (left := site.queued(log_directory)) and time.monotonic() < deadline:
        time.sleep(0.5)
    if left:
        site.run("scancel", *left, check=False)
        pytest.fail(f"jobs left in the busy site's queue after the test: {left}")
