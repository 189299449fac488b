"""Shared benchmark machinery: counting batch commands, reading what Slurm charged.

Benchmarks run in one process per tool; the batch commands they start go through
logging wrappers (a PATH directory of scripts that append a line and exec the real
command), so controller load is counted exactly. What Slurm charged comes from its
own records (``squeue --states=all``: start and end of every job), sampled with the
real binaries so the sampling itself is not counted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

COMMANDS = (
    "sbatch", "squeue", "scancel", "scontrol", "sinfo", "qsub", "qstat", "qdel",
)  # fmt: skip


@contextlib.contextmanager
def counted_commands() -> Iterator[Path]:
    """Put logging wrappers of the batch commands first on PATH; yields the log."""
    directory = Path(tempfile.mkdtemp(prefix="hpcdask-bench-bin-"))
    # the log outlives the wrappers, to be read after the cluster closed
    log = Path(tempfile.mkstemp(prefix="hpcdask-bench-calls-", suffix=".log")[1])
    for name in COMMANDS:
        real = shutil.which(name)
        if real is None:
            continue
        wrapper = directory / name
        wrapper.write_text(f'#!/bin/sh\necho "{name}" >> "{log}"\nexec "{real}" "$@"\n')
        wrapper.chmod(0o755)
    old = os.environ["PATH"]
    os.environ["PATH"] = f"{directory}:{old}"
    try:
        yield log
    finally:
        os.environ["PATH"] = old
        shutil.rmtree(directory, ignore_errors=True)


def count_calls(log: Path) -> Counter[str]:
    return Counter(log.read_text().split())


def _clock(text: str) -> float | None:
    try:
        return time.mktime(datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").timetuple())
    except ValueError:
        return None


class ChargeSampler:
    """Samples Slurm's record of the jobs named ``job_name`` in the background.

    Slurm forgets ended jobs after MinJobAge (300 s here), so the sampler keeps
    the last record of each job it saw.
    """

    def __init__(self, job_name: str, interval: float = 2.0) -> None:
        self.job_name = job_name
        self.interval = interval
        self.jobs: dict[str, dict[str, str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ChargeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        out = subprocess.run(
            [
                "/usr/bin/squeue",
                "--noheader",
                "--states=all",
                "--array",
                f"--name={self.job_name}",
                "--format=%i|%T|%S|%e|%C",
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        for line in out.splitlines():
            job_id, state, start, end, cpus = line.split("|")
            self.jobs[job_id] = {
                "state": state,
                "start": start,
                "end": end,
                "cpus": cpus,
            }

    def charged_core_seconds(self) -> float:
        """Sum over jobs that ran of cores x (end - start)."""
        total = 0.0
        for job in self.jobs.values():
            start, end = _clock(job["start"]), _clock(job["end"])
            if start is None or end is None or job["state"] in ("PENDING", "RUNNING"):
                continue
            total += max(end - start, 0.0) * int(job["cpus"])
        return total

    def jobs_started(self) -> int:
        return sum(
            1
            for j in self.jobs.values()
            if _clock(j["start"]) is not None and j["state"] != "PENDING"
        )


class WorkerSampler:
    """Integrates the number of connected workers over time (worker-seconds)."""

    def __init__(self, client: object, interval: float = 0.5) -> None:
        self.client = client
        self.interval = interval
        self.worker_seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WorkerSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            try:
                n = len(self.client.scheduler_info()["workers"])  # type: ignore[attr-defined]
            except Exception:
                n = 0
            self.worker_seconds += n * (now - last)
            last = now


def wait_queue_empty(job_name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["/usr/bin/squeue", "--noheader", f"--name={job_name}", "--format=%i"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if not out:
            return
        time.sleep(0.5)
    subprocess.run(["/usr/bin/scancel", f"--name={job_name}"], check=False)
