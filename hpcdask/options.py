"""A cluster's job options: every option with its default and help, and the one
function that validates them into :class:`JobOptions`.

Pure: where the raw values come from (arguments, dask config) is
:mod:`hpcdask.config`'s business. Every value is validated here, so nothing
downstream sees an unchecked string.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hpcdask.errors import InvalidOptionError
from hpcdask.models import lifetime_margin
from hpcdask.validation import (
    check_identifier,
    check_line,
    check_lines,
    check_positive_int,
    check_queues,
    check_seconds,
    command_word,
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

SYSTEMS = ("slurm", "pbs", "sge", "local")

#: Every job option: its built-in default (used when neither argument nor config
#: gives a value) and one line of help (``hpcdask config`` prints it).
_OPTIONS: dict[str, tuple[object, str]] = {
    "name": (
        "dask-worker",
        "worker name prefix; jobs are NAME-0, NAME-1... (plain $VARS allowed)",
    ),
    "cores": (None, "cores per job (required here or as an argument)"),
    "memory": (None, "memory per job, e.g. 109GB (required here or as an argument)"),
    "processes": (None, "worker processes per job (default: about sqrt(cores))"),
    "python": (None, "python on the compute nodes (default: this interpreter)"),
    "interface": (None, "network interface workers and scheduler use, e.g. ib0"),
    "death_timeout": (60, "seconds a worker waits for a lost scheduler"),
    "local_directory": (None, "worker scratch space, e.g. $TMPDIR"),
    "worker_command": (
        "distributed.cli.dask_worker",
        "module that starts the workers",
    ),
    "worker_extra_args": ([], "extra arguments of the worker command"),
    "shebang": ("#!/usr/bin/env bash", "first line of the job script"),
    "queue": (None, "queue (Slurm: a partition, or a list of them)"),
    "account": (None, "account / project charged (SGE: -A account string)"),
    "project": (None, "SGE -P project (Slurm, PBS: the old name of account)"),
    "walltime": (None, "walltime per job (default 00:30:00)"),
    "job_name": (None, "the batch job name (default: name without $VARS)"),
    "job_script_prologue": ([], "shell lines run before the workers start"),
    "job_script_epilogue": ([], "shell lines run after the workers stop"),
    "job_extra_directives": ([], "extra directive lines, e.g. --gres=gpu:1"),
    "job_directives_skip": ([], "directive lines containing these are left out"),
    "log_directory": (None, "job stdout/stderr (default ~/.hpcdask/logs)"),
    "shared_temp_directory": (
        None,
        "TLS files for workers, 0700 (default: security/ beside log_directory)",
    ),
    "nanny": (True, "run workers under a nanny process"),
    # "fork" shares the nanny's imports (16 workers starting together on 2
    # cores: 7.8 s with "spawn", 3.9 s)
    "worker_start_method": (
        "fork",
        "how a nanny starts its worker: fork, spawn, forkserver",
    ),
    "protocol": (None, "tcp:// or tls://"),
    "scheduler_options": ({}, "extra arguments of the Scheduler"),
    "job_cpu": (None, "Slurm --cpus-per-task (default: cores)"),
    "job_mem": (None, "Slurm --mem (default: memory)"),
    "resource_spec": (
        None,
        "PBS / SGE -l resources (PBS default select=1:ncpus=..:mem=..)",
    ),
    "parallel_environment": (
        None,
        "SGE -pe NAME CORES for jobs of several cores, e.g. smp",
    ),
}
#: Built-in defaults, used when neither argument nor config gives a value.
DEFAULTS: dict[str, object] = {name: default for name, (default, _) in _OPTIONS.items()}
#: One line of help per job option.
OPTION_HELP: dict[str, str] = {name: text for name, (_, text) in _OPTIONS.items()}

#: dask-jobqueue's old argument names -> current names.
DEPRECATED_NAMES: dict[str, str] = {
    "env_extra": "job_script_prologue",
    "extra": "worker_extra_args",
    "job_extra": "job_extra_directives",
    "header_skip": "job_directives_skip",
    "project": "account",
}

#: options only some systems have: elsewhere they are neither read from config
#: nor accepted (``project`` stays the old name of ``account`` there).
SYSTEM_OPTIONS = {"project": ("sge",), "parallel_environment": ("sge",)}


def deprecated_names(system: str) -> dict[str, str]:
    """:data:`DEPRECATED_NAMES` less the options ``system`` has (SGE's project)."""
    options = {k for k, systems in SYSTEM_OPTIONS.items() if system in systems}
    return {old: new for old, new in DEPRECATED_NAMES.items() if old not in options}


#: a check of one option: (name, raw value) -> the value to keep
Check = Callable[[str, Any], Any]

_START_METHODS = ("fork", "spawn", "forkserver")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_PROTOCOLS = ("tcp://", "tls://", "ucx://", "ws://", "wss://", "inproc://")


@dataclass(frozen=True)
class JobOptions:
    """Validated options of one cluster's batch jobs.

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
    worker_start_method: str = "fork"
    queue: str | None = None
    account: str | None = None
    interface: str | None = None
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
    processes = (
        default_processes(cores)
        if raw["processes"] is None
        else check_positive_int("processes", raw["processes"])
    )
    if processes > cores:
        raise InvalidOptionError(
            "processes", processes, f"more processes than cores ({cores})"
        )
    name, job_name = _names(raw["name"], raw["job_name"])
    worker = _worker_options(raw)
    checked = {key: check(key, raw[key]) for key, check in _FIELD_CHECKS.items()}
    blame = "job_name" if raw["job_name"] else "name"  # made from name
    _check_system_options(system, {**checked, blame: job_name})
    walltime = raw["walltime"] or ("168:00:00" if system == "local" else "00:30:00")
    return JobOptions(
        system=system,
        name=name,
        cores=cores,
        processes=processes,
        walltime=parse_walltime("walltime", walltime),
        job_name=check_identifier("job_name", job_name),
        nanny=bool(raw["nanny"]),
        **worker,
        **checked,
    )


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
        "log_directory": _check_path(
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


def _check_path(option: str, value: object) -> str:
    """A directory this process writes and jobs read: ``~`` expanded here, then
    only characters that mean the same to every shell and batch system."""
    if not isinstance(value, str):
        raise InvalidOptionError(option, value, "expected a path")
    path = os.path.expanduser(value)
    if not re.fullmatch(r"[A-Za-z0-9_./+@-]+", path):
        raise InvalidOptionError(
            option, path, "use a path of letters, digits and _ . / + @ - only"
        )
    return path


def _check_shebang(option: str, value: object) -> str:
    shebang = check_line(option, value)
    if not shebang.startswith("#!"):
        raise InvalidOptionError(option, shebang, "must start with '#!'")
    return shebang


def _check_protocol(option: str, value: object) -> str | None:
    if value is None:
        return None
    if not (
        isinstance(value, str)
        and value in _PROTOCOLS + tuple(p[:-3] for p in _PROTOCOLS)
    ):
        raise InvalidOptionError(option, value, f"expected one of {_PROTOCOLS}")
    return value if value.endswith("://") else value + "://"


def _check_mapping(option: str, value: object) -> dict[str, object]:
    if not isinstance(value, Mapping):
        raise InvalidOptionError(option, value, "expected a dict")
    return dict(value)


def _check_start_method(option: str, value: object) -> str:
    if value not in _START_METHODS:
        raise InvalidOptionError(option, value, f"expected one of {_START_METHODS}")
    return str(value)


def _optional(check: Check) -> Check:
    """``check``, except that ``None`` (not set) passes as ``None``."""

    def optional(option: str, value: object) -> object:
        return None if value is None else check(option, value)

    return optional


#: how each remaining option is checked, in this order.
_FIELD_CHECKS: dict[str, Check] = {
    "shared_temp_directory": _optional(_check_path),
    "shebang": _check_shebang,
    "protocol": _check_protocol,
    "scheduler_options": _check_mapping,
    "worker_start_method": _check_start_method,
    "resource_spec": _optional(check_identifier),
    "memory": parse_memory,
    "death_timeout": check_seconds,
    "queue": _optional(check_queues),
    "account": _optional(check_identifier),
    "project": _optional(check_identifier),
    "parallel_environment": _optional(check_identifier),
    "interface": _optional(check_identifier),
    "job_cpu": _optional(check_positive_int),
    "job_mem": _optional(parse_memory),
    "job_script_prologue": check_lines,
    "job_script_epilogue": check_lines,
    "job_extra_directives": check_lines,
    "job_directives_skip": check_lines,
}
