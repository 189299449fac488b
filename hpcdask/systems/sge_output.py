"""Grid Engine's command output, parsed: ``qstat -xml``, ``qstat -j``, ``qacct -j``,
``qdel`` and ``qsub -terse``.

Pure functions, fed in the unit tests with real output of Son of Grid Engine
8.1.9 (``tests/fixtures/sge/``) and with labelled hand-written samples of what
Univa/Altair Grid Engine is documented to print differently (an extra
``<jclass_name>`` element, times with milliseconds). Unknown XML elements are
ignored.

Job ids: a job that is not an array is ``"12"``; task 3 of array job 13 is
``"13.3"``, as ``qdel`` and ``qstat -j`` write it.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass

from hpcdask.models import ClusterTag, JobState, JobStatus
from hpcdask.systems.timefmt import parse_clock, parse_duration

__all__ = [
    "STATES",
    "SGETask",
    "accounting_state",
    "expand_tasks",
    "parse_error_reasons",
    "parse_qacct",
    "parse_qdel_unknown",
    "parse_qstat_xml",
    "parse_terse_job_id",
    "state_of",
]

#: ``qstat``'s state letters -> JobState, every combination sge_status(5) lists.
#: A job in error (``E``) never runs unless an operator clears it: it shows as
#: held here, and the SGE backend turns it into a failed start and deletes it.
STATES: dict[str, JobState] = {
    "qw": JobState.PENDING,
    "Rq": JobState.PENDING,
    "hqw": JobState.HELD,
    "hRwq": JobState.HELD,
    "r": JobState.RUNNING,
    "hr": JobState.RUNNING,
    "t": JobState.RUNNING,  # being transferred to its host: its slots are taken
    "Rr": JobState.RUNNING,
    "Rt": JobState.RUNNING,
    **dict.fromkeys(
        ("s", "ts", "S", "tS", "T", "tT", "Rs", "Rts", "RS", "RtS", "RT", "RtT"),
        JobState.SUSPENDED,
    ),
    **dict.fromkeys(("Eqw", "Ehqw", "EhRqw"), JobState.HELD),
    **dict.fromkeys(
        ("dr", "dt", "dRr", "dRt", "ds", "dS", "dT", "dRs", "dRS", "dRT"),
        JobState.COMPLETING,
    ),
    "z": JobState.COMPLETED,  # only listed with `qstat -s z`
}

#: what each letter says, for the reason shown beside the state
_LETTERS = {
    "E": "error",
    "h": "on hold",
    "d": "being deleted",
    "t": "being transferred to its host",
    "R": "restarted",
    "s": "suspended",
    "S": "queue suspended",
    "T": "suspended by the queue's threshold",
}
# the letters read one by one, for a combination not in the table
_BY_LETTER = (
    ("d", JobState.COMPLETING),
    ("E", JobState.HELD),
    ("s", JobState.SUSPENDED),
    ("S", JobState.SUSPENDED),
    ("T", JobState.SUSPENDED),
    ("r", JobState.RUNNING),
    ("t", JobState.RUNNING),
    ("h", JobState.HELD),
    ("q", JobState.PENDING),
    ("z", JobState.COMPLETED),
)


def state_of(letters: str) -> JobState:
    """The JobState of ``qstat``'s state letters (``UNKNOWN`` if unreadable)."""
    if letters in STATES:
        return STATES[letters]
    for letter, state in _BY_LETTER:
        if letter in letters:
            return state
    return JobState.UNKNOWN


def describe(letters: str) -> str:
    """A reason from the state letters: ``"Eqw: error"``; "" for ``qw``/``r``."""
    words = [text for letter, text in _LETTERS.items() if letter in letters]
    return f"{letters}: {', '.join(words)}" if words else ""


@dataclass(frozen=True)
class SGETask:
    """One job (or array task) in ``qstat -xml`` output."""

    job_id: str
    name: str
    owner: str
    #: qstat's state letters: ``qw``, ``r``, ``Eqw``, ``dr``...
    letters: str
    status: JobStatus

    @property
    def in_error(self) -> bool:
        """In an error state (``Eqw``): it will never run by itself."""
        return "E" in self.letters


_FRACTION = re.compile(r"(\d{2}:\d{2}:\d{2})\.\d+")


def parse_time(text: str | None) -> float | None:
    """A time as Grid Engine prints it; Univa/Altair add milliseconds, dropped."""
    return parse_clock(_FRACTION.sub(r"\1", text or ""))


def expand_tasks(spec: str) -> list[int]:
    """Task ids of ``<tasks>``: ``"1-4:1"``, ``"2-10:2"``, ``"3,4"``, ``"1"``."""
    tasks: list[int] = []
    for part in spec.split(","):
        span, _, step = part.strip().partition(":")
        first, _, last = span.partition("-")
        if not first.isdigit() or not (last or first).isdigit():
            continue
        stride = int(step) if step.isdigit() and int(step) > 0 else 1
        tasks.extend(range(int(first), int(last or first) + 1, stride))
    return tasks


def parse_qstat_xml(text: str) -> dict[str, SGETask]:
    """``qstat -xml [-r]`` as {job id: SGETask}; array tasks one by one.

    Raises ``ValueError`` for output that is not XML.
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise ValueError(f"qstat -xml printed no XML: {e}") from e
    out: dict[str, SGETask] = {}
    for job in root.iter("job_list"):
        number = (job.findtext("JB_job_number") or "").strip()
        if not number.isdigit():
            continue
        letters = (job.findtext("state") or "").strip()
        status = _status(job, letters)
        name = job.findtext("JB_name") or ""
        owner = job.findtext("JB_owner") or ""
        tasks = job.findtext("tasks")
        ids = (
            [number]
            if tasks is None
            else [f"{number}.{task}" for task in expand_tasks(tasks)]
        )
        for job_id in ids:
            out[job_id] = SGETask(job_id, name, owner, letters, status)
    return out


def _status(job: ET.Element, letters: str) -> JobStatus:
    state = state_of(letters)
    queue = job.findtext("queue_name") or ""
    limit = None
    for request in job.iter("hard_request"):
        if request.get("name") == "h_rt":
            limit = parse_duration(request.text or "")
    started = state not in (JobState.PENDING, JobState.HELD)
    return JobStatus(
        state=state,
        reason=describe(letters),
        node=queue.partition("@")[2],
        submit_time=parse_time(job.findtext("JB_submission_time")),
        start_time=parse_time(job.findtext("JAT_start_time")) if started else None,
        time_limit=limit,
    )


_JOB_NUMBER = re.compile(r"^job_number:\s+(\d+)\s*$")
_ERROR_REASON = re.compile(r"^error reason\s+(\d+):\s+(.*?)\s*$")
# "11/30/2026 10:18:01 [0:18543]: " before the message
_REASON_PREFIX = re.compile(r"^\d\d/\d\d/\d{4} \d\d:\d\d:\d\d(?:\.\d+)? \[[^]]*\]:\s*")


def parse_error_reasons(text: str) -> dict[str, dict[int, str]]:
    """``qstat -j ID[,ID...]``'s error reasons: {job number: {task: message}}.

    A job that is not an array has its reason under task 1. The time and
    ``[uid:pid]`` before the message are dropped, and a leading ``error: ``.
    """
    out: dict[str, dict[int, str]] = {}
    number = ""
    for line in text.splitlines():
        if match := _JOB_NUMBER.match(line):
            number = match.group(1)
        elif (match := _ERROR_REASON.match(line)) and number:
            message = _REASON_PREFIX.sub("", match.group(2)).removeprefix("error: ")
            out.setdefault(number, {})[int(match.group(1))] = message
    return out


def parse_contexts(text: str) -> dict[str, ClusterTag]:
    """``qstat -j ID[,ID...]``'s job contexts: {job number: the cluster's tag}
    (``context: HPCDASK_CLUSTER=hpcdask:...``)."""
    out: dict[str, ClusterTag] = {}
    number = ""
    for line in text.splitlines():
        if match := _JOB_NUMBER.match(line):
            number = match.group(1)
        elif line.startswith("context:") and number:
            for item in line.partition(":")[2].strip().split(","):
                key, _, value = item.partition("=")
                tag = ClusterTag.parse(value) if key == "HPCDASK_CLUSTER" else None
                if tag is not None:
                    out[number] = tag
    return out


def _records(text: str) -> Iterator[dict[str, str]]:
    """``qacct -j``'s blocks (each after a line of ``=``) as {key: value}."""
    record: dict[str, str] | None = None
    for line in text.splitlines():
        if line.startswith("====="):
            if record:
                yield record
            record = {}
        elif record is not None and line.strip():
            key, _, value = line.partition(" ")
            record[key] = value.strip()
    if record:
        yield record


#: qacct's ``failed`` codes (sge_status(5)) that mean a walltime or other
#: hard limit the queue enforced
_LIMIT_FAILURES = {"37"}


def accounting_state(failed: str, exit_status: str) -> tuple[JobState, str]:
    """A job's end from qacct's ``failed`` and ``exit_status`` values."""
    code, _, what = failed.partition(":")
    code, what = code.strip(), what.strip()
    exit_code = exit_status.split()[0] if exit_status.split() else ""
    if code == "0":
        if exit_code in ("", "0"):
            return JobState.COMPLETED, ""
        return JobState.FAILED, f"exit code {exit_code}"
    if code in _LIMIT_FAILURES:
        return JobState.TIMEOUT, what or f"failed {code}"
    reason = f"failed {code}: {what}" if what else f"failed {code}"
    if exit_code.isdigit() and int(exit_code) > 128:
        # 100 "assumedly after job" + 137: killed while it ran (qdel, a
        # resource limit, its host lost)
        reason += f", killed by signal {int(exit_code) - 128}"
    return JobState.FAILED, reason


def parse_qacct(text: str) -> dict[str, JobStatus]:
    """``qacct -j`` records as {job id: JobStatus}; the last record of a job
    (one that ran several times) wins."""
    out: dict[str, JobStatus] = {}
    for record in _records(text):
        number = record.get("jobnumber", "")
        if not number.isdigit():
            continue
        task = record.get("taskid", "undefined")
        job_id = f"{number}.{task}" if task.isdigit() else number
        state, reason = accounting_state(
            record.get("failed", ""), record.get("exit_status", "")
        )
        exit_code = (record.get("exit_status", "").split() or [""])[0]
        start = parse_time(record.get("start_time"))
        out[job_id] = JobStatus(
            state=state,
            reason=reason,
            node=record.get("hostname", ""),
            submit_time=parse_time(record.get("qsub_time")),
            # a job that never ran (an Eqw job deleted) has start_time -/epoch 0
            start_time=start or None,
            end_time=parse_time(record.get("end_time")) or None,
            exit_code=exit_code,
        )
    return out


_QDEL_UNKNOWN = re.compile(r'denied: job "([^"]+)" does not exist')


def parse_qdel_unknown(text: str) -> set[str]:
    """The ids ``qdel`` said do not exist (ended, or never were)."""
    return set(_QDEL_UNKNOWN.findall(text))


_TERSE = re.compile(r"^(\d+)(?:\.\d+-\d+:\d+)?$")


def parse_terse_job_id(text: str) -> str:
    """``qsub -terse``'s job number: ``"2"``, or ``"3"`` from ``"3.1-4:1"``."""
    match = _TERSE.match(text.strip())
    if not match:
        raise ValueError(f"no job id in qsub -terse output: {text!r}")
    return match.group(1)
