"""PBS: qsub, qstat, qdel, for PBS Pro / OpenPBS and Torque-style qstat output.

Slurm's Torque-compatible wrappers (Debian's ``slurm-wlm-torque``) accept the same
commands and print Torque-style ``qstat -f``; both dialects parse here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from hpcdask.format import format_hms
from hpcdask.models import ClusterTag, JobState, JobStatus, QueuedJob
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
    "S": JobState.SUSPENDED,
    "U": JobState.SUSPENDED,
    "R": JobState.RUNNING,
    "B": JobState.RUNNING,
    "E": JobState.COMPLETING,
    "C": JobState.COMPLETED,
    "F": JobState.COMPLETED,
    "X": JobState.COMPLETED,
}

#: PBS Pro "Unknown Job Id 102.pbs", Torque "Unknown Job Id Error 102.srv"
_UNKNOWN_ID = re.compile(r"Unknown Job Id(?: Error)?:?\s+(\S+)", re.IGNORECASE)
#: PBS Pro with job history: "qstat: 102.pbs Job has finished, use -x or -H ..."
_FINISHED_ID = re.compile(r"(\S+)\s+Job has finished", re.IGNORECASE)
#: the job variable that carries the cluster's tag
TAG_VARIABLE = "HPCDASK_CLUSTER"


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
        memory_mb = math.ceil(opts.memory / 2**20)
        gpus = f":ngpus={opts.gpus}" if opts.gpus else ""
        resources = opts.resource_spec or (
            f"select={opts.nodes}:ncpus={opts.cores}:mem={memory_mb}mb{gpus}"
        )
        lines.append(f"-l {resources}")
        if opts.nodes > 1 and not opts.resource_spec:
            # one chunk per host: without it PBS may put two chunks on one
            lines.append("-l place=scatter")
        lines.append(f"-l walltime={format_hms(opts.walltime)}")
        # No -o/-e: PBS has no %j to name a file per job, and Slurm's qsub ignores
        # them. The script redirects its own output into the log directory, and
        # jobs are submitted from there so the system's own files land beside it.
        return lines

    def tag_directives(self, tag: ClusterTag) -> list[str]:
        # qstat -f shows it in Variable_List (PBS Pro, Torque; Slurm's wrapper
        # passes it to the job but does not show it)
        return [f"-v {TAG_VARIABLE}={tag}"]

    # pbsdsh ships with PBS Pro, OpenPBS and Torque (no MPI needed); with one
    # chunk per node (select=N:..., one MPI process per chunk by default) it
    # starts one task per node, each with PBS_VNODENUM set to its index
    node_index_variable = "PBS_VNODENUM"
    launcher_keeps_environment = False

    def node_launcher(self, opts: JobOptions, all_or_none: bool = False) -> list[str]:
        return ["pbsdsh", "--"]

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
        # qstat may print "1234.server" for an id we hold as "1234", or the
        # reverse: match on the number (one pass, whatever the number of jobs)
        by_number = {
            job_id.split(".")[0]: status_from_attributes(attrs)
            for job_id, attrs in _status_attributes(stdout).items()
        }
        out: dict[str, JobStatus] = {}
        for wanted in job_ids:
            status = by_number.get(wanted.split(".")[0])
            if status is not None:
                out[wanted] = status
        return out

    def gone_job_ids(
        self, returncode: int, stderr: str, job_ids: Sequence[str]
    ) -> set[str]:
        # Slurm's qstat prints nothing and exits 153 (PBSE_UNKJOBID) when no id
        # is known; PBS Pro and Torque name each unknown id, and PBS Pro with
        # job history names each finished one ("Job has finished")
        if returncode == 153 and not stderr.strip():
            return set(job_ids)
        named = {
            i.split(".")[0]
            for pattern in (_UNKNOWN_ID, _FINISHED_ID)
            for i in pattern.findall(stderr)
        }
        return {i for i in job_ids if i.split(".")[0] in named}

    def history_argv(self, job_ids: Sequence[str], stderr: str) -> list[str] | None:
        # PBS Pro keeps finished jobs' history: ask it how they ended
        finished = {i.split(".")[0] for i in _FINISHED_ID.findall(stderr)}
        ids = [i for i in job_ids if i.split(".")[0] in finished]
        return ["qstat", "-x", "-f", *ids] if ids else None

    def list_argv(self, user: str) -> list[str]:
        # PBS has no portable user filter that also shows names: qstat -f of
        # all jobs is one query
        return ["qstat", "-f"]

    def parse_listing(self, stdout: str, user: str) -> list[QueuedJob]:
        jobs = []
        for job_id, attrs in parse_qstat_full(stdout).items():
            # Job_Owner is "user@host"; Slurm's wrapper's euser is "user(uid)"
            owner = attrs.get("Job_Owner") or attrs.get("euser", "")
            if re.split(r"[@(]", owner)[0] == user:
                name = attrs.get("Job_Name", "")
                status = status_from_attributes(attrs)
                jobs.append(QueuedJob(job_id, name, status, _tag_of(attrs)))
        return jobs


def _tag_of(attrs: Mapping[str, str]) -> ClusterTag | None:
    """The cluster tag in a job's ``Variable_List`` (``A=1,HPCDASK_CLUSTER=..``)."""
    for item in attrs.get("Variable_List", "").split(","):
        key, _, value = item.strip().partition("=")
        if key == TAG_VARIABLE:
            return ClusterTag.parse(value)
    return None


def parse_qstat_full(stdout: str) -> dict[str, dict[str, str]]:
    """``qstat -f`` output as {job id: {attribute: value}}.

    Attributes are indented ``name = value`` lines (four spaces in PBS Pro, a tab
    in Slurm's wrapper); PBS Pro continues long values on tab-led lines without
    `` = ``, which are joined to the value before them. Regular expressions do
    the line work: a poll of 10,000 jobs is 150,000 lines.
    """
    text = _CONTINUATION.sub("", stdout)
    parts = _JOB_ID_LINE.split(text)
    return {
        job_id: dict(_ATTRIBUTE.findall(body))
        for job_id, body in zip(parts[1::2], parts[2::2], strict=True)
    }


#: the attributes a job's status is made of, and the Job Id lines, found in one
#: pass over the whole output (a poll of 10,000 jobs is 3.6 MB of text)
_STATUS_LINE = re.compile(
    r"^(?:Job Id:[ \t]*(\S+)|[ \t]+(job_state|comment|exec_host|qtime|ctime|stime|"
    r"start_time|mtime|Resource_List\.walltime|Exit_status|exit_status) = (.*))$",
    re.MULTILINE,
)


def _status_attributes(stdout: str) -> dict[str, dict[str, str]]:
    """The attributes :func:`status_from_attributes` reads, per job id (long
    values are never among them, so PBS Pro's continuation lines do not
    matter here)."""
    jobs: dict[str, dict[str, str]] = {}
    attrs: dict[str, str] = {}
    for job_id, key, value in _STATUS_LINE.findall(stdout):
        if job_id:
            attrs = jobs[job_id] = {}
        else:
            attrs[key] = value.strip()
    return jobs


#: "Job Id: 1234.server" (a space in PBS Pro, a tab in Slurm's wrapper)
_JOB_ID_LINE = re.compile(r"^Job Id:[ \t]*(\S+)[ \t]*$", re.MULTILINE)
#: an indented "name = value" line
_ATTRIBUTE = re.compile(r"^[ \t]+([\w.]+) = (.*?)[ \t]*$", re.MULTILINE)
#: a line break before a tab-led line that is no "name = value": PBS Pro's
#: continuation of a long value
_CONTINUATION = re.compile(r"\n\t(?![\w.]+ = )")


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
