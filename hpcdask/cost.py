"""Core-hour accounting: what a cluster's jobs have been charged, from queue times.

Pure arithmetic, no I/O and no clock of its own: a job is charged from the start
time the queue reported to its end time, or to ``now`` (an argument) while it runs.
Batch systems charge allocations, not use: a job holding 8 cores for an hour costs
8 core-hours however idle its workers were. What one job holds (cores, nodes, GPUs)
is read from the directive lines its script is submitted with, so site directives
such as ``--gres=gpu:2`` or ``-l select=1:ncpus=8:ngpus=1`` count.

Suspended time is counted as charged time (Slurm does not charge it); the queue
does not report it separately.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hpcdask.models import JobRecord
from hpcdask.options import JobOptions
from hpcdask.systems.base import BatchSystem

__all__ = [
    "JobCharge",
    "JobResources",
    "Usage",
    "charged_seconds",
    "job_resources",
    "measure_usage",
    "parse_job_resources",
    "total_usage",
]


@dataclass(frozen=True)
class JobResources:
    """What one batch job holds while it runs.

    Parameters
    ----------
    cores
        CPU cores allocated to the job (all its nodes together).
    nodes
        nodes allocated to the job.
    gpus
        GPUs allocated to the job (all its nodes together).
    """

    cores: int
    nodes: int = 1
    gpus: int = 0


@dataclass(frozen=True)
class JobCharge:
    """What one job has been charged so far."""

    job_id: str
    name: str
    state: str
    seconds: float
    core_hours: float
    node_hours: float
    gpu_hours: float


@dataclass(frozen=True)
class Usage:
    """A cluster's charges so far and its current burn rate.

    ``*_hours`` are totals over all the cluster's jobs, ended ones included.
    ``cores_in_use``, ``nodes_in_use`` and ``gpus_in_use`` are what running jobs
    hold now, which is also the burn rate in core-hours (node-hours, GPU-hours)
    per hour.
    """

    core_hours: float
    node_hours: float
    gpu_hours: float
    cores_in_use: int
    nodes_in_use: int
    gpus_in_use: int
    jobs: tuple[JobCharge, ...] = ()

    @property
    def burn_rate(self) -> float:
        """Core-hours charged per hour at the moment."""
        return float(self.cores_in_use)

    def __str__(self) -> str:
        text = (
            f"{self.core_hours:.2f} core-hours ({self.node_hours:.2f} node-hours"
            + (f", {self.gpu_hours:.2f} GPU-hours" if self.gpu_hours else "")
            + f"), burning {self.burn_rate:g} core-hours/hour"
        )
        return text


def charged_seconds(record: JobRecord, now: float) -> float:
    """Seconds ``record`` has held its allocation: start to end, or start to
    ``now``, plus the runs before the queue requeued it.

    A job that never started costs nothing; time spent pending (also after a
    requeue) costs nothing. A job the queue reports as ended is charged up to
    its end time (the job table records one for every ended job).
    """
    return record.charged_seconds(now)


def is_in_use(record: JobRecord) -> bool:
    """Started and not yet ended: its allocation is being charged now."""
    status = record.status
    return (
        status.start_time is not None
        and status.end_time is None
        and not status.state.is_terminal
    )


def measure_usage(
    records: Iterable[JobRecord], resources: JobResources, now: float
) -> Usage:
    """Charges of ``records``, jobs that each hold ``resources``, as of ``now``."""
    charges = []
    in_use = 0
    for record in records:
        seconds = charged_seconds(record, now)
        hours = seconds / 3600.0
        charges.append(
            JobCharge(
                job_id=record.job_id,
                name=record.name,
                state=record.state.value,
                seconds=seconds,
                core_hours=hours * resources.cores,
                node_hours=hours * resources.nodes,
                gpu_hours=hours * resources.gpus,
            )
        )
        in_use += is_in_use(record)
    return Usage(
        core_hours=sum(c.core_hours for c in charges),
        node_hours=sum(c.node_hours for c in charges),
        gpu_hours=sum(c.gpu_hours for c in charges),
        cores_in_use=in_use * resources.cores,
        nodes_in_use=in_use * resources.nodes,
        gpus_in_use=in_use * resources.gpus,
        jobs=tuple(charges),
    )


def total_usage(usages: Iterable[Usage]) -> Usage:
    """Several pools' usage as one (their jobs' charges together)."""
    parts = list(usages)
    return Usage(
        core_hours=sum(u.core_hours for u in parts),
        node_hours=sum(u.node_hours for u in parts),
        gpu_hours=sum(u.gpu_hours for u in parts),
        cores_in_use=sum(u.cores_in_use for u in parts),
        nodes_in_use=sum(u.nodes_in_use for u in parts),
        gpus_in_use=sum(u.gpus_in_use for u in parts),
        jobs=tuple(charge for u in parts for charge in u.jobs),
    )


def job_resources(opts: JobOptions, system: BatchSystem) -> JobResources:
    """What each job of a cluster with ``opts`` holds, from its directive lines."""
    return parse_job_resources(
        system.render_directives(opts),
        default_cores=(opts.job_cpu or opts.cores) * opts.nodes,
    )


# -- directive parsing ---------------------------------------------------------------

_SLURM_OPTION = re.compile(r"^(--[a-z-]+|-[a-zA-Z])(?:[= ]\s*(\S+))?")
_FIRST_INT = re.compile(r"\d+")


def parse_job_resources(directives: Sequence[str], default_cores: int) -> JobResources:
    """Cores, nodes and GPUs a job asks for in its ``#SBATCH`` / ``#PBS`` lines.

    Understood: Slurm ``-n/--ntasks``, ``--ntasks-per-node``,
    ``-c/--cpus-per-task``, ``-N/--nodes``,
    ``--gres=gpu[:type]:N``, ``-G/--gpus``, ``--gpus-per-node``,
    ``--gpus-per-task``; PBS ``-l select=N:ncpus=C:ngpus=G[+...]``, Torque
    ``-l nodes=N:ppn=C:gpus=G``, and job-wide ``-l ncpus=``/``ngpus=``/``nodes=``;
    Grid Engine ``-pe NAME N`` (N slots; a range counts its minimum), and one
    slot for a Grid Engine job without ``-pe``, which is what it is charged.
    Later lines override earlier ones, as the batch systems read them. Cores not
    stated anywhere are ``default_cores``.
    """
    slurm: dict[str, str] = {}
    pbs: dict[str, str] = {}
    slots: int | None = None
    for line in directives:
        prefix, _, body = line.strip().partition(" ")
        body = body.strip()
        if prefix == "#$":
            words = body.split()
            slots = slots or 1
            if len(words) == 3 and words[0] == "-pe":
                slots = _count(words[2], 1)
        elif prefix == "#SBATCH":
            match = _SLURM_OPTION.match(body)
            if match:
                slurm[match.group(1)] = match.group(2) or ""
        elif prefix == "#PBS" and body.startswith("-l"):
            for item in body[2:].strip().split(","):
                key, _, value = item.partition("=")
                pbs[key.strip()] = value.strip()
    if slots is not None:
        return JobResources(cores=slots)
    if pbs:
        return _pbs_resources(pbs, default_cores)
    return _slurm_resources(slurm, default_cores)


def _count(text: str | None, default: int) -> int:
    """The number in "4", "a100:4" or "2-4" (a range counts its minimum)."""
    if text is None:
        return default
    numbers = _FIRST_INT.findall(text.rsplit(":", 1)[-1] if ":" in text else text)
    return int(numbers[0]) if numbers else default


def _slurm_resources(options: dict[str, str], default_cores: int) -> JobResources:
    def option(*names: str) -> str | None:
        values = [options[n] for n in names if n in options]
        return values[-1] if values else None

    nodes = _count(option("-N", "--nodes"), 1)
    # --ntasks wins over --ntasks-per-node, as sbatch reads them
    per_node = option("--ntasks-per-node")
    ntasks = _count(option("-n", "--ntasks"), nodes * _count(per_node, 1))
    cpus_per_task = _count(option("-c", "--cpus-per-task"), 0)
    cores = cpus_per_task * ntasks if cpus_per_task else default_cores
    gpus = 0
    gres = option("--gres")
    if gres:
        for item in gres.split(","):
            parts = item.split(":")
            if parts[0] == "gpu":
                gpus += (int(parts[-1]) if parts[-1].isdigit() else 1) * nodes
    if (total := option("-G", "--gpus")) is not None:
        gpus = _count(total, 1)
    if (gpus_per_node := option("--gpus-per-node")) is not None:
        gpus = _count(gpus_per_node, 1) * nodes
    if (gpus_per_task := option("--gpus-per-task")) is not None:
        gpus = _count(gpus_per_task, 1) * ntasks
    return JobResources(cores=cores, nodes=nodes, gpus=gpus)


def _pbs_resources(resources: dict[str, str], default_cores: int) -> JobResources:
    cores = nodes = gpus = 0
    if "select" in resources:
        # chunks: "2:ncpus=8:ngpus=1+1:ncpus=4"
        for chunk in resources["select"].split("+"):
            count, *attrs = chunk.split(":")
            n = int(count) if count.isdigit() else 1
            values = dict(a.partition("=")[::2] for a in attrs)
            nodes += n
            cores += n * _count(values.get("ncpus"), 0)
            gpus += n * _count(values.get("ngpus"), 0)
    elif "nodes" in resources:
        # Torque: "2:ppn=8:gpus=1"
        count, *attrs = resources["nodes"].split(":")
        nodes = int(count) if count.isdigit() else 1
        values = dict(a.partition("=")[::2] for a in attrs)
        cores = nodes * _count(values.get("ppn"), 0)
        gpus = nodes * _count(values.get("gpus"), 0)
    if "ncpus" in resources:
        cores = _count(resources["ncpus"], cores)
    if "ngpus" in resources:
        gpus = _count(resources["ngpus"], gpus)
    return JobResources(cores=cores or default_cores, nodes=nodes or 1, gpus=gpus)
