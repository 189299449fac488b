"""A cluster's job options: the one function that validates them into
:class:`JobOptions` (every option's default and help are in
:mod:`hpcdask.optiontable`, re-exported here).

Pure: where the raw values come from (arguments, dask config) is
:mod:`hpcdask.config`'s business. Every value is validated here, so nothing
downstream sees an unchecked string.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hpcdask.errors import InvalidOptionError
from hpcdask.models import lifetime_margin
from hpcdask.optiontable import (
    DEFAULTS,
    DEPRECATED_NAMES,
    OPTION_HELP,
    SYSTEM_OPTIONS,
    SYSTEMS,
    deprecated_names,
)
from hpcdask.validation import (
    Check,
    check_count,
    check_identifier,
    check_lines,
    check_mapping,
    check_path,
    check_positive_int,
    check_protocol,
    check_queues,
    check_resources,
    check_seconds,
    check_shebang,
    check_start_method,
    command_word,
    optional,
    parse_memory,
    parse_walltime,
    shell_word,
)

__all__ = [
    "DEFAULTS",
    "DEPRECATED_NAMES",
    "OPTION_HELP",
    "SYSTEMS",
    "SYSTEM_OPTIONS",
    "JobOptions",
    "default_processes",
    "deprecated_names",
    "validate_options",
]

_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True)
class JobOptions:
    """Validated options of one cluster's batch jobs.

    ``cores``, ``memory`` and ``processes`` are per node: a job of ``nodes``
    nodes holds ``nodes * cores`` cores and runs ``nodes * processes`` workers.
    ``memory`` and ``job_mem`` are bytes; ``walltime`` and ``death_timeout`` seconds.
    ``worker_extra_args``, ``python``, ``local_directory`` and ``name`` may hold plain
    ``$VARS`` that the job's shell expands; they are rendered with
    :func:`~hpcdask.validation.shell_word`.
    """

    system: str
    name: str
    cores: int
    memory: int
    processes: int
    walltime: int
    python: str
    worker_command: str
    shebang: str
    job_name: str
    log_directory: str
    death_timeout: float
    nanny: bool
    nodes: int = 1
    gpus: int = 0
    resources: Mapping[str, float] | None = None
    worker_start_method: str = "fork"
    queue: str | None = None
    account: str | None = None
    interface: str | None = None
    worker_interface: str | None = None
    local_directory: str | None = None
    protocol: str | None = None
    job_cpu: int | None = None
    job_mem: int | None = None
    resource_spec: str | None = None
    project: str | None = None
    parallel_environment: str | None = None
    shared_temp_directory: str | None = None
    worker_extra_args: tuple[str, ...] = ()
    job_script_prologue: tuple[str, ...] = ()
    job_script_epilogue: tuple[str, ...] = ()
    job_extra_directives: tuple[str, ...] = ()
    job_directives_skip: tuple[str, ...] = ()
    scheduler_options: Mapping[str, object] = field(default_factory=dict)

    @property
    def workers_per_job(self) -> int:
        """Worker processes of one job: ``processes`` on each of its nodes."""
        return self.nodes * self.processes

    @property
    def cores_per_job(self) -> int:
        """Cores of one job, all its nodes together."""
        return self.nodes * self.cores

    @property
    def memory_per_job(self) -> int:
        """Memory of one job in bytes, all its nodes together."""
        return self.nodes * self.memory

    @property
    def worker_interface_name(self) -> str | None:
        """The interface the workers listen on: ``worker_interface``, else
        ``interface`` (dask-jobqueue's meaning: workers and scheduler)."""
        return self.worker_interface or self.interface

    @property
    def gpus_per_worker(self) -> int:
        """GPUs each worker process is given (its own ``CUDA_VISIBLE_DEVICES``)."""
        return self.gpus // self.processes

    @property
    def worker_resources(self) -> Mapping[str, float]:
        """What each worker advertises to the scheduler: ``resources``, else its
        GPUs as ``{"GPU": n}`` (tasks annotated ``resources={"GPU": 1}`` run
        there only), else nothing."""
        if self.resources is not None:
            return self.resources
        return {"GPU": float(self.gpus_per_worker)} if self.gpus else {}

    @property
    def threads_per_worker(self) -> int:
        return self.cores // self.processes

    @property
    def memory_per_worker(self) -> int:
        return self.memory // self.processes

    @property
    def worker_lifetime(self) -> int:
        """Seconds a worker lives in a job of this walltime.

        The worker retires itself (handing its data over) this long after it
        starts, leaving a margin before the queue kills the job: 10% of the
        walltime, at least 15 s and at most 5 minutes, and never more than half
        the walltime.
        """
        return max(int(self.walltime - lifetime_margin(self.walltime)), 1)


def default_processes(cores: int) -> int:
    """Worker processes per job when not given, as dask-jobqueue chooses them:
    one per core up to 4 cores, else the smallest divisor of cores >= sqrt(cores)."""
    if cores <= 4:
        return cores
    return min(p for p in range(1, cores + 1) if cores % p == 0 and p * p >= cores)


def validate_options(system: str, raw: Mapping[str, object]) -> JobOptions:
    """Check every raw option value (one per key of :data:`DEFAULTS`) and return
    :class:`JobOptions`; raises :class:`~hpcdask.errors.InvalidOptionError`
    naming the first bad option."""
    if raw["cores"] is None or raw["memory"] is None:
        missing = [k for k in ("cores", "memory") if raw[k] is None]
        raise InvalidOptionError(
            missing[0],
            None,
            f"required: pass {' and '.join(missing)} or set them in config "
            f"(hpcdask.{system}.{missing[0]})",
        )
    cores = check_positive_int("cores", raw["cores"])
    gpus = check_count("gpus", raw["gpus"])
    processes = _processes(cores, gpus, raw["processes"])
    _check_gpus(system, gpus, raw)
    name, job_name = _names(raw["name"], raw["job_name"])
    worker = _worker_options(raw)
    checked = {key: check(key, raw[key]) for key, check in _FIELD_CHECKS.items()}
    blame = "job_name" if raw["job_name"] else "name"  # made from name
    _check_system_options(system, {**checked, blame: job_name})
    walltime = raw["walltime"] or ("168:00:00" if system == "local" else "00:30:00")
    if system == "local" and checked["nodes"] > 1:
        raise InvalidOptionError(
            "nodes", checked["nodes"], "the local backend runs on this host: use 1"
        )
    return JobOptions(
        system=system,
        name=name,
        cores=cores,
        processes=processes,
        gpus=gpus,
        walltime=parse_walltime("walltime", walltime),
        job_name=check_identifier("job_name", job_name),
        nanny=bool(raw["nanny"]),
        **worker,
        **checked,
    )


def _processes(cores: int, gpus: int, given: object) -> int:
    """Worker processes per node: ``given``, else one per GPU (as many as the
    cores allow), else about sqrt(cores). With GPUs every worker gets the same
    number of them."""
    if given is not None:
        processes = check_positive_int("processes", given)
    elif gpus:
        processes = max(p for p in range(1, cores + 1) if gpus % p == 0)
    else:
        processes = default_processes(cores)
    if processes > cores:
        why = f"more processes than cores ({cores})"
        raise InvalidOptionError("processes", processes, why)
    if gpus and gpus % processes:
        why = f"{gpus} GPUs cannot be shared equally by {processes} worker processes"
        raise InvalidOptionError("gpus", gpus, why)
    return processes


def _check_gpus(system: str, gpus: int, raw: Mapping[str, object]) -> None:
    """GPUs are asked for where the system has a standard way; worker resources
    are given once."""
    if gpus and system in ("sge", "local"):
        why = (
            "the local backend has no GPUs to hand out"
            if system == "local"
            else "Grid Engine has no standard GPU request: ask with your site's "
            "resource (job_extra_directives=['-l gpu=N']) and set resources"
        )
        raise InvalidOptionError("gpus", gpus, why)
    extra = raw["worker_extra_args"]
    if raw["resources"] is not None and "--resources" in str(extra):
        why = "given twice: also as --resources in worker_extra_args"
        raise InvalidOptionError("resources", raw["resources"], why)


def _names(name: object, job_name: object) -> tuple[str, str]:
    """The worker name prefix and the batch job name made from it."""
    name = shell_word("name", name) and str(name)
    if not re.fullmatch(r"[A-Za-z0-9_.${}-]+", name):
        raise InvalidOptionError(
            "name", name, "use letters, digits, _ . - and plain $VARS only"
        )
    if not job_name:
        job_name = re.sub(r"[${}]", "", name) or "dask-worker"
        try:
            check_identifier("job_name", job_name)
        except InvalidOptionError:
            raise InvalidOptionError(
                "name",
                name,
                f"the job name made from it ({job_name!r}) must start with a "
                "letter, digit or _; pass job_name to choose another",
            ) from None
    return str(name), str(job_name)


# Grid Engine object names (sge_types(5)) hold no / : @ \ * ?, and a job name
# cannot start with a digit (qsub refuses it)
_SGE_NAME = re.compile(r"[A-Za-z_.][^/:@\\*?]*")


def _check_system_options(system: str, values: Mapping[str, object]) -> None:
    """Options of other systems are refused; SGE's names are SGE object names."""
    for option, systems in SYSTEM_OPTIONS.items():
        if values.get(option) is not None and system not in systems:
            why = f"only {'/'.join(systems)} jobs have it"
            raise InvalidOptionError(option, values[option], why)
    for option in ("name", "job_name", "project", "parallel_environment"):
        value = values.get(option)
        if system == "sge" and value and not _SGE_NAME.fullmatch(str(value)):
            why = "a Grid Engine name cannot start with a digit or hold / : @"
            raise InvalidOptionError(option, value, why)


def _worker_options(raw: Mapping[str, object]) -> dict[str, Any]:
    """The options that shape the worker command line."""
    extra = raw["worker_extra_args"] or []
    if isinstance(extra, str) or not isinstance(extra, (list, tuple)):
        raise InvalidOptionError(
            "worker_extra_args", extra, "expected a list of strings"
        )
    # dask-jobqueue joins these with spaces, so "--resources GPU=1" is two words
    words = [word for arg in extra for word in _split_words(arg)]
    for word in words:
        shell_word("worker_extra_args", word)
    python = raw["python"] or sys.executable
    command_word("python", python)
    local_directory = raw["local_directory"]
    if local_directory is not None:
        shell_word("local_directory", local_directory)
    worker_command = raw["worker_command"]
    if not isinstance(worker_command, str) or not _MODULE.fullmatch(worker_command):
        raise InvalidOptionError(
            "worker_command", worker_command, "expected a Python module name"
        )
    return {
        "worker_extra_args": tuple(words),
        "python": python,
        "local_directory": local_directory,
        "worker_command": worker_command,
        "log_directory": check_path(
            "log_directory",
            raw["log_directory"] or os.path.join("~", ".hpcdask", "logs"),
        ),
    }


def _split_words(arg: object) -> list[str]:
    if not isinstance(arg, str):
        raise InvalidOptionError("worker_extra_args", arg, "expected strings")
    try:
        return shlex.split(arg)
    except ValueError as e:
        raise InvalidOptionError("worker_extra_args", arg, str(e)) from e


#: how each remaining option is checked, in this order.
_FIELD_CHECKS: dict[str, Check] = {
    "shared_temp_directory": optional(check_path),
    "shebang": check_shebang,
    "protocol": check_protocol,
    "scheduler_options": check_mapping,
    "worker_start_method": check_start_method,
    "resource_spec": optional(check_identifier),
    "memory": parse_memory,
    "death_timeout": check_seconds,
    "queue": optional(check_queues),
    "account": optional(check_identifier),
    "project": optional(check_identifier),
    "parallel_environment": optional(check_identifier),
    "interface": optional(check_identifier),
    "worker_interface": optional(check_identifier),
    "nodes": check_positive_int,
    "resources": optional(check_resources),
    "job_cpu": optional(check_positive_int),
    "job_mem": optional(parse_memory),
    "job_script_prologue": check_lines,
    "job_script_epilogue": check_lines,
    "job_extra_directives": check_lines,
    "job_directives_skip": check_lines,
}
