"""Slurm: sbatch, squeue, scancel."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from hpcdask.format import format_hms
from hpcdask.models import JobState, JobStatus, QueuedJob
from hpcdask.options import JobOptions
from hpcdask.systems.base import QueueCommands
from hpcdask.systems.timefmt import parse_clock, parse_duration

#: squeue's ``%T`` (long state name) -> JobState.
STATES: dict[str, JobState] = {
    "PENDING": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,
    "REQUEUED": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "RESIZING": JobState.PENDING,
    "REQUEUE_HOLD": JobState.HELD,
    "SUSPENDED": JobState.HELD,
    "STOPPED": JobState.HELD,
    "RUNNING": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "COMPLETING": JobState.COMPLETING,
    "STAGE_OUT": JobState.COMPLETING,
    "COMPLETED": JobState.COMPLETED,
    "CANCELLED": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED,
    "FAILED": JobState.FAILED,
    "BOOT_FAIL": JobState.FAILED,
    "DEADLINE": JobState.FAILED,
    "OUT_OF_MEMORY": JobState.FAILED,
    "SPECIAL_EXIT": JobState.FAILED,
    "PREEMPTED": JobState.NODE_FAIL,
    "NODE_FAIL": JobState.NODE_FAIL,
    "TIMEOUT": JobState.TIMEOUT,
}

#: the squeue output format: one line a job, fields split by "|".
SQUEUE_FORMAT = "%i|%T|%r|%N|%V|%S|%e|%l|%L"
_JOB_ID = re.compile(r"^(\d+(?:_\d+)?)(?:;\S+)?\s*$")
_NO_REASON = {"None", "(null)", ""}


class Slurm(QueueCommands):
    name = "slurm"
    directive_prefix = "#SBATCH"
    job_id_variables = ("SLURM_JOB_ID",)
    supports_arrays = True
    array_index_variables = ("SLURM_ARRAY_TASK_ID",)

    def directives(self, opts: JobOptions, array_size: int = 1) -> list[str]:
        # an array element's id is BASE_INDEX: %A_%a names its logs the same way
        stdout, stderr = self.log_paths(opts, "%A_%a" if array_size > 1 else "%j")
        lines = [f"-J {opts.job_name}"]
        if array_size > 1:
            lines.append(f"--array=0-{array_size - 1}")
        if opts.queue:
            lines.append(f"-p {opts.queue}")
        if opts.account:
            lines.append(f"-A {opts.account}")
        lines.append("-n 1")
        lines.append(f"--cpus-per-task={opts.job_cpu or opts.cores}")
        memory_mib = math.ceil((opts.job_mem or opts.memory) / 2**20)
        lines.append(f"--mem={memory_mib}M")
        lines.append(f"-t {format_hms(opts.walltime)}")
        lines.append(f"-o {stdout}")
        lines.append(f"-e {stderr}")
        return lines

    def submit_argv(self, script_path: str) -> list[str]:
        return ["sbatch", "--parsable", script_path]

    def array_job_ids(self, base_id: str, size: int) -> list[str]:
        return [f"{base_id}_{i}" for i in range(size)]

    def status_argv(self, job_ids: Sequence[str]) -> list[str]:
        # an array's base id lists all its elements, pending ones collapsed
        bases = dict.fromkeys(job_id.split("_")[0] for job_id in job_ids)
        return [
            "squeue",
            "--noheader",
            "--states=all",
            f"--format={SQUEUE_FORMAT}",
            f"--jobs={','.join(bases)}",
        ]

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        return ["scancel", *job_ids]

    def parse_job_id(self, stdout: str) -> str:
        # --parsable prints "<id>" or "<id>;<cluster>"
        match = _JOB_ID.match(stdout.strip())
        if not match:
            raise ValueError(f"no job id in sbatch output: {stdout!r}")
        return match.group(1)

    def parse_status(
        self, stdout: str, job_ids: Sequence[str]
    ) -> Mapping[str, JobStatus]:
        return parse_squeue(stdout)

    def gone_job_ids(
        self, returncode: int, stderr: str, job_ids: Sequence[str]
    ) -> set[str]:
        # squeue skips unknown ids among known ones, and refuses a query of one
        # unknown id without naming it
        if "Invalid job id specified" in stderr:
            return set(job_ids)
        return set()

    def list_argv(self, user: str, names: Sequence[str] | None) -> list[str]:
        argv = [
            "squeue",
            "--noheader",
            f"--user={user}",
            f"--format={SQUEUE_FORMAT}|%j",
        ]
        if names:
            argv.append(f"--name={','.join(names)}")
        return argv

    def parse_listing(self, stdout: str, user: str) -> list[QueuedJob]:
        jobs = []
        for line in stdout.splitlines():
            fields, _, name = line.strip().rpartition("|")
            for job_id, status in parse_squeue(fields).items():
                jobs.append(QueuedJob(job_id, name, status))
        return jobs

    def cancel_by_name_argv(
        self, user: str, name: str, jobs: Sequence[QueuedJob]
    ) -> list[str]:
        # Slurm selects by name and user itself: jobs queued after the listing
        # are cancelled too
        return ["scancel", f"--user={user}", f"--name={name}"]


def parse_squeue(stdout: str) -> dict[str, JobStatus]:
    """Parse ``squeue --format=SQUEUE_FORMAT`` lines into {job id: JobStatus}."""
    out: dict[str, JobStatus] = {}
    for line in stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 9:
            continue
        job_id, state_name, reason, node, submit, start, end, limit, _left = fields
        state = STATES.get(state_name.strip(), JobState.UNKNOWN)
        if state is JobState.PENDING and reason.startswith("JobHeld"):
            state = JobState.HELD
        # For a pending job %S is the expected start, for a live one %e the
        # expected end: keep only times that have happened.
        started = state not in (JobState.PENDING, JobState.HELD)
        status = JobStatus(
            state=state,
            reason="" if reason in _NO_REASON else reason,
            node="" if node in _NO_REASON else node,
            submit_time=parse_clock(submit),
            start_time=parse_clock(start) if started else None,
            end_time=parse_clock(end) if state.is_terminal else None,
            time_limit=parse_duration(limit),
        )
        for element in expand_array_ids(job_id):
            out[element] = status
    return out


_ARRAY_RANGE = re.compile(r"^(\d+)_\[([0-9,\-]+)(?:%\d+)?\]$")


def expand_array_ids(job_id: str) -> list[str]:
    """``"97_[0-3]"`` (pending elements, collapsed) -> ``["97_0", ..., "97_3"]``."""
    match = _ARRAY_RANGE.match(job_id)
    if not match:
        return [job_id]
    base, ranges = match.groups()
    out = []
    for part in ranges.split(","):
        first, _, last = part.partition("-")
        for index in range(int(first), int(last or first) + 1):
            out.append(f"{base}_{index}")
    return out
