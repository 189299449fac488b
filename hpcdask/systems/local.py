"""The embedded local backend: job scripts run as plain processes on this machine.

For laptops and machines without a batch system. The same rendered script runs
under ``bash``; the job table is this process's memory; a job is killed at its
walltime like a queue would. It is not a stand-in for a batch system in tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass

from hpcdask.models import JobState, JobStatus
from hpcdask.runner import process_alive, spawn_detached
from hpcdask.systems.base import BatchSystem

_counter = itertools.count()


class LocalSystem(BatchSystem):
    name = "local"
    # the backend sets HPCDASK_JOB_ID itself
    writes_logs = False


@dataclass
class _LocalJob:
    process: asyncio.subprocess.Process
    script_path: str
    submit_time: float
    cancelled: bool = False
    timed_out: bool = False
    end_time: float | None = None


class LocalBackend:
    """Runs job scripts with ``bash`` in their own process group."""

    def __init__(self, walltime: float, kill_grace: float = 5.0) -> None:
        self.system = LocalSystem()
        self.walltime = walltime
        self.kill_grace = kill_grace
        self._jobs: dict[str, _LocalJob] = {}
        self._timers: set[asyncio.Task[None]] = set()

    async def submit(self, script: str, log_directory: str) -> str:
        job_id = f"{os.getpid()}-{next(_counter)}"
        path = os.path.join(log_directory, f"job-{job_id}.sh")
        with open(path, "w") as f:
            f.write(script)
        process = await spawn_detached(["bash", path], {"HPCDASK_JOB_ID": job_id})
        self._jobs[job_id] = _LocalJob(process, path, time.time())
        timer = asyncio.ensure_future(self._enforce_walltime(job_id))
        self._timers.add(timer)
        timer.add_done_callback(self._timers.discard)
        return job_id

    async def status(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        return {job_id: self._status(job_id) for job_id in job_ids}

    def _status(self, job_id: str) -> JobStatus:
        job = self._jobs.get(job_id)
        if job is None:
            return JobStatus(JobState.GONE)
        code = job.process.returncode
        if code is None:
            return JobStatus(
                JobState.RUNNING,
                node="localhost",
                submit_time=job.submit_time,
                start_time=job.submit_time,
                time_limit=self.walltime,
            )
        if job.end_time is None:
            job.end_time = time.time()
            with contextlib.suppress(OSError):
                os.unlink(job.script_path)
        if job.timed_out:
            state = JobState.TIMEOUT
        elif job.cancelled:
            state = JobState.CANCELLED
        else:
            state = JobState.COMPLETED if code == 0 else JobState.FAILED
        return JobStatus(
            state,
            node="localhost",
            submit_time=job.submit_time,
            start_time=job.submit_time,
            end_time=job.end_time,
            time_limit=self.walltime,
            exit_code=str(code),
        )

    async def cancel(self, job_ids: Sequence[str]) -> None:
        jobs = [self._jobs[i] for i in job_ids if i in self._jobs]
        for job in jobs:
            job.cancelled = True
        await asyncio.gather(*(self._terminate(job) for job in jobs))

    async def _terminate(self, job: _LocalJob) -> None:
        """SIGTERM the job's process group, SIGKILL what is left after the grace
        period; return when no process of the group is left (as a queue would)."""
        group = job.process.pid
        if not process_alive(group, group=True):
            await job.process.wait()
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + self.kill_grace
        while process_alive(group, group=True) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        await job.process.wait()
        while process_alive(group, group=True):
            await asyncio.sleep(0.05)

    async def _enforce_walltime(self, job_id: str) -> None:
        job = self._jobs[job_id]
        try:
            await asyncio.wait_for(job.process.wait(), self.walltime)
        except asyncio.TimeoutError:
            job.timed_out = True
            await self._terminate(job)
