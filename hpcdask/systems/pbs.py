"""PBS: qsub, qstat, qdel, for PBS Pro / OpenPBS and Torque-style qstat output.

Slurm's Torque-compatible wrappers (Debian's ``slurm-wlm-torque``) accept the same
commands and print Torque-style ``qstat -f``; both dialects parse here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from hpcdask.format import format_hms
from hpcdask.models import JobState, JobStatus, QueuedJob
from hpcdask.options import JobOptions
from hpcdask.systems.base import QueueCommands
from hpcdask.systems.timefmt import parse_clock, parse_duration

#: qstat's ``job_state`` letter -> JobState (``C``/``F`` refined by exit status).
STATES: dict[str, JobState] = {
    "Q": JobState.PENDING,
    "W": JobState.PENDING,
    "T": JobState.PENDING,
    "M": JobState.PENDING,
    "H": JobState.HELD,
    "S": JobState.HELD,
    "U": JobState.HELD,
    "R": JobState.RUNNING,
    "B": JobState.RUNNING,
    "E": JobState.COMPLETING,
    "C": JobState.COMPLETED,
    "F": JobState.COMPLETED,
    "X": JobState.COMPLETED,
}

_UNKNOWN_ID = re.compile(r"Unknown Job Id:?\s+(\S+)", re.IGNORECASE)


class PBS(QueueCommands):
    name = "pbs"
    directive_prefix = "#PBS"
    job_id_variables = ("PBS_JOBID", "SLURM_JOB_ID")
    writes_logs = False

    def directives(self, opts: JobOptions, array_size: int = 1) -> list[str]:
        lines = [f"-N {opts.job_name}"]
        if opts.queue:
            lines.append(f"-q {opts.queue}")
        if opts.account:
            lines.append(f"-A {opts.account}")
        resources = opts.resource_spec or (
            f"select=1:ncpus={opts.cores}:mem={math.ceil(opts.memory / 2**20)}mb"
        )
        lines.append(f"-l {resources}")
        lines.append(f"-l walltime={format_hms(opts.walltime)}")
        # No -o/-e: PBS has no %j to name a file per job, and Slurm's qsub ignores
        # them. The script redirects its own output into the log directory, and
        # jobs are submitted from there so the system's own files land beside it.
        return lines

    def submit_argv(self, script_path: str) -> list[str]:
        return ["qsub", script_path]

    def status_argv(self, job_ids: Sequence[str]) -> list[str]:
        return ["qstat", "-f", *job_ids]

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        return ["qdel", *job_ids]

    def parse_job_id(self, stdout: str) -> str:
        text = stdout.strip()
        if not text or len(text.split()) != 1:
            raise ValueError(f"no job id in qsub output: {stdout!r}")
        return text

    def parse_status(
        self, stdout: str, job_ids: Sequence[str]
    ) -> Mapping[str, JobStatus]:
        statuses = {
            job_id: status_from_attributes(attrs)
            for job_id, attrs in parse_qstat_full(stdout).items()
        }
        # qstat may print "1234.server" for an id we hold as "1234", or the reverse.
        out: dict[str, JobStatus] = {}
        for wanted in job_ids:
            short = wanted.split(".")[0]
            for job_id, status in statuses.items():
                if job_id == wanted or job_id.split(".")[0] == short:
                    out[wanted] = status
        return out

    def gone_job_ids(
        self, returncode: int, stderr: str, job_ids: Sequence[str]
    ) -> set[str]:
        # PBS Pro names each unknown id; Slurm's qstat prints nothing and exits
        # 153 (PBSE_UNKJOBID) when no id is known.
        if returncode == 153 and not stderr.strip():
            return set(job_ids)
        unknown = {i.split(".")[0] for i in _UNKNOWN_ID.findall(stderr)}
        return {i for i in job_ids if i.split(".")[0] in unknown}

    def list_argv(self, user: str, names: Sequence[str] | None) -> list[str]:
        # PBS has no portable name filter; qstat -f of all jobs is one query
        return ["qstat", "-f"]

    def parse_listing(self, stdout: str, user: str) -> list[QueuedJob]:
        jobs = []
        for job_id, attrs in parse_qstat_full(stdout).items():
            # Job_Owner is "user@host"; Slurm's wrapper's euser is "user(uid)"
            owner = attrs.get("Job_Owner") or attrs.get("euser", "")
            if re.split(r"[@(]", owner)[0] == user:
                name = attrs.get("Job_Name", "")
                jobs.append(QueuedJob(job_id, name, status_from_attributes(attrs)))
        return jobs

    def cancel_by_name_argv(
        self, user: str, name: str, jobs: Sequence[QueuedJob]
    ) -> list[str]:
        # qdel takes ids only: those the listing found
        return ["qdel", *(job.job_id for job in jobs)]


def parse_qstat_full(stdout: str) -> dict[str, dict[str, str]]:
    """``qstat -f`` output as {job id: {attribute: value}}.

    Attributes are indented ``name = value`` lines (four spaces in PBS Pro, a tab
    in Slurm's wrapper); PBS Pro continues long values on tab-led lines without
    `` = ``, which are joined to the value before them.
    """
    jobs: dict[str, dict[str, str]] = {}
    attrs: dict[str, str] | None = None
    last_key = ""
    for raw in stdout.splitlines():
        if raw.startswith("Job Id:"):
            attrs = jobs.setdefault(raw.split(":", 1)[1].strip(), {})
            last_key = ""
            continue
        if attrs is None or not raw.strip():
            continue
        key, sep, value = raw.strip().partition(" = ")
        if sep and " " not in key:
            last_key = key
            attrs[last_key] = value.strip()
        elif last_key:
            attrs[last_key] += raw.strip()
    return jobs


def _start_time(attrs: Mapping[str, str], state: JobState) -> float | None:
    if state in (JobState.PENDING, JobState.HELD):
        return None
    if "stime" in attrs:  # PBS Pro
        return parse_clock(attrs["stime"])
    if "start_time" in attrs:  # Torque
        return parse_clock(attrs["start_time"])
    # Slurm's wrapper puts the start in mtime
    return parse_clock(attrs.get("mtime", ""))


def status_from_attributes(attrs: Mapping[str, str]) -> JobStatus:
    """One job's ``qstat -f`` attributes as a :class:`JobStatus`."""
    letter = attrs.get("job_state", "").strip()
    state = STATES.get(letter, JobState.UNKNOWN)
    exit_code = attrs.get("Exit_status", attrs.get("exit_status", "")).strip()
    if state is JobState.COMPLETED and exit_code not in ("", "0"):
        state = JobState.FAILED
    exec_host = attrs.get("exec_host", "")
    node = exec_host.split("/")[0].split("+")[0] if exec_host else ""
    return JobStatus(
        state=state,
        reason=attrs.get("comment", ""),
        node=node,
        submit_time=parse_clock(attrs.get("qtime", attrs.get("ctime", ""))),
        start_time=_start_time(attrs, state),
        time_limit=parse_duration(attrs.get("Resource_List.walltime", "")),
        exit_code=exit_code,
    )
