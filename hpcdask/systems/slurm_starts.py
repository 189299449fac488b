"""Slurm's plan, read for :class:`~hpcdask.forecast.QueueForecast`: two commands.

``sbatch --test-only`` does not see backfill holes (on Slurm 22.05 it answered
"start in 1 hour" for every walltime while a 4-minute job started at once in a
hole), so hpcdask reads the plan itself and places jobs in it
(:class:`~hpcdask.forecast.Planner`):

- ``sinfo --Node`` for the nodes of the partitions: cores (less those down or
  drained), memory, state, and each partition's state, time limit and
  ``MaxCPUsPerNode``;
- ``squeue`` of every user's running and pending jobs: running ones hold their
  cores and memory until their expected end (``EndTime``); pending ones the
  backfill scheduler has planned hold them from their planned start
  (``StartTime``) on their planned nodes (``SchedNodes``): those are the
  reservations that bound the holes.

Times are epoch seconds (``SLURM_TIME_FORMAT=%s``, the adapter's command
environment). Parsers are pure and fed, in unit tests, with saved real output.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from hpcdask.forecast import Booking, NodeInfo, PartitionLimits, QueueForecast
from hpcdask.systems.timefmt import parse_duration

__all__ = [
    "SINFO_FIELDS",
    "SQUEUE_FIELDS",
    "expand_hostlist",
    "forecast_argvs",
    "parse_forecast",
]

#: sinfo -O fields, one line per node and partition
SINFO_FIELDS = (
    "NodeHost", "Partition", "Available", "Time", "MaxCPUsPerNode",
    "CPUsState", "Memory", "StateLong",
)  # fmt: skip
#: squeue -O fields, one line per job (pending array elements collapsed)
SQUEUE_FIELDS = (
    "JobID", "StateCompact", "Partition", "NumNodes", "tres-alloc",
    "NodeList", "StartTime", "EndTime", "SchedNodes",
)  # fmt: skip
#: node states in which a node takes (or will soon take) jobs
_USABLE = {"idle", "mixed", "allocated", "completing", "planned"}
#: a completing job's cores are held a little longer than its end
_COMPLETING = 5.0
_UNITS = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40, "P": 2**50}


def _format(fields: Sequence[str]) -> str:
    # ":|" after a field: "|" as a separator, no padding, nothing cut
    return ",".join(f"{name}:|" for name in fields)


def forecast_argvs(partitions: Sequence[str]) -> list[list[str]]:
    """The two commands that read the plan of ``partitions`` (all: empty)."""
    sinfo = ["sinfo", "--noheader", "--Node", f"--Format={_format(SINFO_FIELDS)}"]
    if partitions:
        sinfo.append(f"--partition={','.join(partitions)}")
    squeue = [
        "squeue",
        "--noheader",
        "--all",
        "--states=PENDING,RUNNING,COMPLETING,SUSPENDED",
        f"--Format={_format(SQUEUE_FIELDS)}",
    ]
    return [sinfo, squeue]


def parse_forecast(outputs: Sequence[str], now: float) -> QueueForecast:
    """The plan from the outputs of :func:`forecast_argvs`' commands, taken
    at ``now``."""
    sinfo, squeue = outputs
    nodes, partitions, members = _parse_sinfo(sinfo)
    known = {n.name for n in nodes}
    bookings = [b for b in _parse_squeue(squeue, now) if b.node in known]
    return QueueForecast(
        taken_at=now,
        nodes=tuple(nodes),
        partitions=tuple(partitions),
        members=tuple((name, tuple(names)) for name, names in members.items()),
        bookings=tuple(bookings),
    )


def _parse_sinfo(
    stdout: str,
) -> tuple[list[NodeInfo], list[PartitionLimits], dict[str, list[str]]]:
    nodes: dict[str, NodeInfo] = {}
    partitions: dict[str, PartitionLimits] = {}
    members: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) < len(SINFO_FIELDS):
            continue
        host, part, available, limit, max_cpus, cpus, memory, state = fields[:8]
        default = part.endswith("*")
        part = part.rstrip("*")
        if part not in partitions:
            partitions[part] = PartitionLimits(
                name=part,
                up=available.strip() == "up",
                max_time=_time_limit(limit),
                max_cpus_per_node=int(max_cpus) if max_cpus.isdigit() else None,
                default=default,
            )
        members.setdefault(part, []).append(host)
        if host not in nodes:
            nodes[host] = NodeInfo(
                name=host,
                cpus=_usable_cpus(cpus),
                memory=int(memory) * 2**20 if memory.isdigit() else 0,
                usable=_usable(state),
            )
    return list(nodes.values()), list(partitions.values()), members


def _time_limit(text: str) -> float:
    if text.strip() in ("infinite", "UNLIMITED", "n/a", ""):
        return math.inf
    limit = parse_duration(text)
    return math.inf if limit is None else limit


def _usable_cpus(state: str) -> int:
    """``A/I/O/T`` (allocated, idle, other, total): the cores that can run
    jobs, total less other (down, drained)."""
    parts = state.split("/")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        return 0
    return int(parts[3]) - int(parts[2])


def _usable(state: str) -> bool:
    """Whether a node in this state takes jobs (``*``: not responding;
    ``~``: powered off, it boots for a job; ``drain``, ``down``: no)."""
    state = state.strip()
    if state.endswith("*"):
        return False
    return state.rstrip("~#!%$@^-+") in _USABLE


def _parse_squeue(stdout: str, now: float) -> list[Booking]:
    bookings: list[Booking] = []
    for line in stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) < len(SQUEUE_FIELDS):
            continue
        _id, state, part, count, tres, nodelist, start, end, sched = fields[:9]
        begin, finish = _epoch(start), _epoch(end)
        if state == "PD":
            # a reservation, when the scheduler planned the job
            if begin is None or finish is None or sched in ("", "(null)"):
                continue
            hosts = expand_hostlist(sched)
        elif state in ("R", "CG", "S"):
            hosts = expand_hostlist(nodelist)
            begin = min(begin or now, now)
            finish = math.inf if finish is None else finish
            if state == "CG":
                finish = max(finish, now + _COMPLETING)
        else:
            continue
        cpus, memory = _tres(tres)
        share = max(int(count), 1) if count.isdigit() else max(len(hosts), 1)
        for host in hosts:
            bookings.append(
                Booking(host, part, -(-cpus // share), memory // share, begin, finish)
            )
    return bookings


def _epoch(text: str) -> float | None:
    text = text.strip()
    return float(text) if text.isdigit() and int(text) > 0 else None


def _tres(text: str) -> tuple[int, int]:
    """(cores, memory in bytes) of ``cpu=4,mem=1200M,node=1,billing=4``."""
    cpus = memory = 0
    for item in text.split(","):
        key, _, value = item.partition("=")
        if key == "cpu" and value.isdigit():
            cpus = int(value)
        elif key == "mem":
            memory = _bytes(value)
    return cpus, memory


def _bytes(text: str) -> int:
    match = re.fullmatch(r"([\d.]+)([KMGTP]?)", text.strip())
    if not match:
        return 0
    number, unit = match.groups()
    return int(float(number) * _UNITS.get(unit or "M", 2**20))


_RANGE = re.compile(r"^(.*?)\[([^\]]+)\](.*)$")


def expand_hostlist(text: str) -> list[str]:
    """``"nid[001-003,7],login1"`` -> ``["nid001", "nid002", "nid003", "nid7",
    "login1"]``: Slurm's compressed host lists (zero padding kept)."""
    hosts: list[str] = []
    for part in _split_top(text.strip()):
        hosts += _expand_one(part)
    return hosts


def _split_top(text: str) -> list[str]:
    """Split at commas outside brackets."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char == "[") - (char == "]")
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p and p != "(null)"]


def _expand_one(text: str) -> list[str]:
    match = _RANGE.match(text)
    if not match:
        return [text]
    head, ranges, tail = match.groups()
    out = []
    for span in ranges.split(","):
        first, _, last = span.partition("-")
        if not first.isdigit() or not (last or first).isdigit():
            continue
        width = len(first)
        for i in range(int(first), int(last or first) + 1):
            out += [head + str(i).zfill(width) + rest for rest in _expand_one(tail)]
    return out
