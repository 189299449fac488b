"""Slurm: sbatch, squeue, scancel."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import ClassVar

from hpcdask.forecast import QueueForecast
from hpcdask.format import format_hms
from hpcdask.models import ClusterTag, JobState, JobStatus, QueuedJob
from hpcdask.options import JobOptions
from hpcdask.systems.base import QueueCommands
from hpcdask.systems.slurm_starts import forecast_argvs, parse_forecast
from hpcdask.systems.timefmt import parse_clock, parse_duration

#: squeue's ``%T`` (long state name) -> JobState.
STATES: dict[str, JobState] = {
    "PENDING": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,
    "REQUEUED": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "RESIZING": JobState.PENDING,
    "REQUEUE_HOLD": JobState.HELD,
    # requeued in a held state by the job itself (exit code of EXIT_HOLD) or the
    # site, awaiting action: still in the queue
    "SPECIAL_EXIT": JobState.HELD,
    "SUSPENDED": JobState.SUSPENDED,
    "STOPPED": JobState.SUSPENDED,
    "RUNNING": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "COMPLETING": JobState.COMPLETING,
    "STAGE_OUT": JobState.COMPLETING,
    "COMPLETED": JobState.COMPLETED,
    "CANCELLED": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED,
    "FAILED": JobState.FAILED,
    # the node failed to boot for the job: the site's fault
    "BOOT_FAIL": JobState.NODE_FAIL,
    "DEADLINE": JobState.FAILED,
    "OUT_OF_MEMORY": JobState.FAILED,
    "PREEMPTED": JobState.PREEMPTED,
    "NODE_FAIL": JobState.NODE_FAIL,
    "TIMEOUT": JobState.TIMEOUT,
}

#: the squeue output format: one line a job, fields split by "|".
SQUEUE_FORMAT = "%i|%T|%r|%N|%V|%S|%e|%l|%L"
_PING = re.compile(r"Slurmctld\(\w+\) at (\S+) is (\w+)")
_JOB_ID = re.compile(r"^(\d+(?:_\d+)?)(?:;\S+)?\s*$")
_NO_REASON = {"None", "(null)", ""}
_CANCELLED_PENDING = JobStatus(
    JobState.CANCELLED, reason="cancelled while pending (no record of its own)"
)


class Slurm(QueueCommands):
    name = "slurm"
    directive_prefix = "#SBATCH"
    job_id_variables = ("SLURM_JOB_ID",)
    supports_arrays = True
    array_index_variables = ("SLURM_ARRAY_TASK_ID",)
    # times as epoch seconds, whatever SLURM_TIME_FORMAT the user set (it
    # changes every time field squeue prints)
    command_env: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"SLURM_TIME_FORMAT": "%s"}
    )

    def tag_directives(self, tag: ClusterTag) -> list[str]:
        # squeue shows the comment (%k); it is the user's own field
        return [f"--comment={tag}"]

    def can_tag(self, opts: JobOptions) -> bool:
        # a comment of the user's own (some sites give it a meaning) is kept:
        # then the jobs carry no tag
        return not any(
            d.split("=")[0].split()[0] == "--comment" for d in opts.job_extra_directives
        )

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
        if opts.nodes > 1:
            # one task per node, each with the node's cores and memory (--mem
            # is per node); the launcher starts the workers in that task
            lines += [f"--nodes={opts.nodes}", "--ntasks-per-node=1"]
        else:
            lines.append("-n 1")
        lines.append(f"--cpus-per-task={opts.job_cpu or opts.cores}")
        if opts.gpus:
            lines.append(f"--gres=gpu:{opts.gpus}")  # per node
        if not _memory_per_unit(opts.job_extra_directives):
            memory_mib = math.ceil((opts.job_mem or opts.memory) / 2**20)
            lines.append(f"--mem={memory_mib}M")
        lines.append(f"-t {format_hms(opts.walltime)}")
        lines.append(f"-o {stdout}")
        lines.append(f"-e {stderr}")
        return lines

    node_index_variable = "SLURM_NODEID"

    def node_launcher(self, opts: JobOptions, all_or_none: bool = False) -> list[str]:
        # --cpus-per-task given again: srun from Slurm 22.05 on does not read
        # it from the job's environment
        words = [
            "srun",
            "--ntasks-per-node=1",
            f"--cpus-per-task={opts.job_cpu or opts.cores}",
        ]
        if all_or_none:
            # a node whose workers die ends the whole job, which is then
            # replaced: jobs are whole or gone
            words.append("--kill-on-bad-exit=1")
        return words

    def submit_argv(self, script_path: str) -> list[str]:
        return ["sbatch", "--parsable", script_path]

    def controller_argv(self) -> list[str] | None:
        return ["scontrol", "ping"]

    def parse_controller(self, stdout: str) -> str | None:
        # "Slurmctld(primary) at mnctl is UP"; the first controller that is up
        for match in _PING.finditer(stdout):
            if match.group(2) == "UP":
                return match.group(1)
        return None

    def array_job_ids(self, base_id: str, size: int) -> list[str]:
        return [f"{base_id}_{i}" for i in range(size)]

    def status_argv(self, job_ids: Sequence[str]) -> list[str]:
        # an array's base id lists all its elements; --array prints one line
        # per element (pending ones are otherwise collapsed, and cut at 64
        # characters)
        bases = dict.fromkeys(job_id.split("_")[0] for job_id in job_ids)
        return [
            "squeue",
            "--noheader",
            "--array",
            "--states=all",
            f"--format={SQUEUE_FORMAT}|%P",
            f"--jobs={','.join(bases)}",
        ]

    def config_argv(self) -> list[str]:
        return ["scontrol", "show", "config"]

    def parse_max_array(self, stdout: str) -> int | None:
        # "MaxArraySize            = 1001": indices 0..1000, so 1001 elements
        match = re.search(r"^MaxArraySize\s*=\s*(\d+)", stdout, re.MULTILINE)
        return int(match.group(1)) if match else None

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
        found = parse_squeue(stdout)
        # an array element cancelled while pending leaves no record of its own
        # while its siblings stay listed: it is cancelled, not gone unseen
        listed = {job_id.partition("_")[0] for job_id in found if "_" in job_id}
        for job_id in job_ids:
            base, sep, _ = job_id.partition("_")
            if sep and job_id not in found and base in listed:
                found[job_id] = _CANCELLED_PENDING
        return found

    def gone_job_ids(
        self, returncode: int, stderr: str, job_ids: Sequence[str]
    ) -> set[str]:
        # squeue skips unknown ids among known ones, and refuses a query of one
        # unknown id without naming it
        if "Invalid job id specified" in stderr:
            return set(job_ids)
        return set()

    def forecast_argvs(self, partitions: Sequence[str]) -> list[list[str]]:
        return forecast_argvs(partitions)

    def parse_forecast(self, outputs: Sequence[str], now: float) -> QueueForecast:
        return parse_forecast(outputs, now)

    def list_argv(self, user: str) -> list[str]:
        return [
            "squeue",
            "--noheader",
            "--array",
            f"--user={user}",
            f"--format={SQUEUE_FORMAT}|%j|%k",
        ]

    def parse_listing(self, stdout: str, user: str) -> list[QueuedJob]:
        jobs = []
        for line in stdout.splitlines():
            parts = line.strip().split("|", 10)
            if len(parts) != 11:
                continue
            *fields, name, comment = parts
            tag = ClusterTag.parse(comment)
            for job_id, status in parse_squeue("|".join(fields)).items():
                jobs.append(QueuedJob(job_id, name, status, tag))
        return jobs


def parse_squeue(stdout: str) -> dict[str, JobStatus]:
    """Parse ``squeue --format=SQUEUE_FORMAT`` lines, with the partition (``%P``)
    after them or not, into {job id: JobStatus}."""
    out: dict[str, JobStatus] = {}
    for line in stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) not in (9, 10):
            continue
        job_id, state_name, reason, node, submit, start, end, limit = fields[:8]
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
            partition=fields[9] if len(fields) == 10 else "",
        )
        for element in expand_array_ids(job_id):
            out[element] = status
    return out


_ARRAY_RANGE = re.compile(r"^(\d+)_\[([0-9,:\-]+)(?:\.\.\.)?(?:%\d+)?\]?$")


def expand_array_ids(job_id: str) -> list[str]:
    """``"97_[0-3]"`` -> ``["97_0", ..., "97_3"]``: the collapsed pending
    elements of an array, as squeue prints them without ``--array``
    (``97_[1,3,5-9]``, ``97_[0-20:2]``). A list squeue cut short (no closing
    bracket, or ``...``) gives the elements it still shows in full; hpcdask's own
    queries use ``--array``, one line per element, and never meet one."""
    if "[" not in job_id:
        return [job_id]
    match = _ARRAY_RANGE.match(job_id)
    if not match:
        return [job_id]
    base, ranges = match.groups()
    out = []
    parts = ranges.split(",")
    if "..." in job_id or not job_id.endswith("]"):
        parts = parts[:-1]  # the last one was cut
    for part in parts:
        span, _, step = part.partition(":")
        first, _, last = span.partition("-")
        if not first.isdigit() or not (last or first).isdigit():
            continue
        stride = int(step) if step.isdigit() and int(step) > 0 else 1
        out += [
            f"{base}_{i}" for i in range(int(first), int(last or first) + 1, stride)
        ]
    return out


def _memory_per_unit(directives: Sequence[str]) -> bool:
    """Whether the user asks for memory per CPU or per GPU: Slurm refuses
    ``--mem`` beside ``--mem-per-cpu`` / ``--mem-per-gpu``, and sites that
    charge by them reject jobs without them."""
    return any(
        word.startswith(("--mem-per-cpu", "--mem-per-gpu"))
        for line in directives
        for word in line.split()
    )
