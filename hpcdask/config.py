"""Resolve a cluster's options once: arguments, then dask config, then defaults.

Lookup order for each option of system ``S`` (``slurm``, ``pbs`` or ``local``):

1. the constructor argument, when it is not ``None``;
2. ``hpcdask.S.<option>`` in dask config;
3. ``jobqueue.S.<option>`` in dask config, so a user's ``jobqueue.yaml`` keeps working;
4. hpcdask's built-in default (:data:`DEFAULTS`).

Every value is validated here, so nothing downstream sees an unchecked string.
Deprecated dask-jobqueue argument names are translated here and nowhere else.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dask.config

from hpcdask.errors import InvalidOptionError
from hpcdask.validation import (
    check_identifier,
    check_line,
    check_lines,
    check_positive_int,
    check_seconds,
    command_word,
    parse_memory,
    parse_walltime,
    shell_word,
)

SYSTEMS = ("slurm", "pbs", "local")

#: Built-in defaults, used when neither argument nor config gives a value.
DEFAULTS: dict[str, Any] = {
    "name": "dask-worker",
    "cores": None,
    "memory": None,
    "processes": None,
    "python": None,  # sys.executable
    "interface": None,
    "death_timeout": 60,
    "local_directory": None,
    "worker_command": "distributed.cli.dask_worker",
    "worker_extra_args": [],
    "shebang": "#!/usr/bin/env bash",
    "queue": None,
    "account": None,
    "walltime": None,  # 00:30:00; a week for the local backend
    "job_name": None,  # the cluster's name
    "job_script_prologue": [],
    "job_script_epilogue": [],
    "job_extra_directives": [],
    "job_directives_skip": [],
    "log_directory": None,  # ~/.hpcdask/logs
    "shared_temp_directory": None,  # TLS credentials; <log_directory>/../security
    "nanny": True,
    # how a nanny starts its worker process: "fork" shares the nanny's imports
    # (16 workers starting together on 2 cores: 7.8 s with "spawn", 3.9 s)
    "worker_start_method": "fork",
    "protocol": None,
    "scheduler_options": {},
    "job_cpu": None,  # slurm: --cpus-per-task, default cores
    "job_mem": None,  # slurm: --mem, default memory
    "resource_spec": None,  # pbs: -l value, default select=1:ncpus=..:mem=..
}

#: dask-jobqueue's old argument names -> current names.
DEPRECATED_NAMES: dict[str, str] = {
    "env_extra": "job_script_prologue",
    "extra": "worker_extra_args",
    "job_extra": "job_extra_directives",
    "header_skip": "job_directives_skip",
    "project": "account",
}

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
    shared_temp_directory: str | None = None
    worker_extra_args: tuple[str, ...] = ()
    job_script_prologue: tuple[str, ...] = ()
    job_script_epilogue: tuple[str, ...] = ()
    job_extra_directives: tuple[str, ...] = ()
    job_directives_skip: tuple[str, ...] = ()
    scheduler_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def threads_per_worker(self) -> int:
        return self.cores // self.processes

    @property
    def memory_per_worker(self) -> int:
        return self.memory // self.processes


def config_value(system: str, option: str) -> Any:
    """The value of ``option`` from dask config for ``system``, or ``None``."""
    for root in ("hpcdask", "jobqueue"):
        value = dask.config.get(f"{root}.{system}.{option}", default=None)
        if value is not None:
            return value
    return None


def default_processes(cores: int) -> int:
    """Worker processes per job when not given, as dask-jobqueue chooses them:
    one per core up to 4 cores, else the smallest divisor of cores >= sqrt(cores)."""
    if cores <= 4:
        return cores
    return min(p for p in range(1, cores + 1) if cores % p == 0 and p * p >= cores)


def resolve_job_options(system: str, **kwargs: Any) -> JobOptions:
    """Merge arguments with config and defaults, validate, return :class:`JobOptions`.

    Raises
    ------
    TypeError
        for an argument hpcdask does not know.
    ValueError
        (:class:`~hpcdask.errors.InvalidOptionError`) for a value that is invalid.
    """
    if system not in SYSTEMS:
        raise InvalidOptionError("system", system, f"expected one of {SYSTEMS}")
    for old, new in DEPRECATED_NAMES.items():
        if old in kwargs:
            warnings.warn(
                f"{old!r} is deprecated, use {new!r}", FutureWarning, stacklevel=3
            )
            value = kwargs.pop(old)
            if kwargs.get(new) is None:
                kwargs[new] = value
    unknown = set(kwargs) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unexpected argument(s): {', '.join(sorted(unknown))}")

    raw: dict[str, Any] = {}
    for option, default in DEFAULTS.items():
        value = kwargs.get(option)
        if value is None:
            value = config_value(system, option)
        if value is None:
            value = default
        raw[option] = value
    return _validate(system, raw)


def _validate(system: str, raw: dict[str, Any]) -> JobOptions:
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
    name = raw["name"]
    shell_word("name", name)
    if not re.fullmatch(r"[A-Za-z0-9_.${}-]+", str(name)):
        raise InvalidOptionError(
            "name", name, "use letters, digits, _ . - and plain $VARS only"
        )
    job_name = raw["job_name"]
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
    worker_extra_args = raw["worker_extra_args"] or []
    if isinstance(worker_extra_args, str) or not isinstance(
        worker_extra_args, (list, tuple)
    ):
        raise InvalidOptionError(
            "worker_extra_args", worker_extra_args, "expected a list of strings"
        )
    # dask-jobqueue joins these with spaces, so "--resources GPU=1" is two words
    worker_extra_args = [
        word for arg in worker_extra_args for word in _split_words(arg)
    ]
    for word in worker_extra_args:
        shell_word("worker_extra_args", word)
    python = raw["python"] or sys.executable
    command_word("python", python)
    local_directory = raw["local_directory"]
    if local_directory is not None:
        shell_word("local_directory", local_directory)
    log_directory = _check_path(
        "log_directory", raw["log_directory"] or os.path.join("~", ".hpcdask", "logs")
    )
    shared_temp_directory = raw["shared_temp_directory"]
    if shared_temp_directory is not None:
        shared_temp_directory = _check_path(
            "shared_temp_directory", shared_temp_directory
        )
    worker_command = raw["worker_command"]
    if not isinstance(worker_command, str) or not _MODULE.fullmatch(worker_command):
        raise InvalidOptionError(
            "worker_command", worker_command, "expected a Python module name"
        )
    shebang = check_line("shebang", raw["shebang"])
    if not shebang.startswith("#!"):
        raise InvalidOptionError("shebang", shebang, "must start with '#!'")
    protocol = raw["protocol"]
    if protocol is not None and not (
        isinstance(protocol, str)
        and protocol in _PROTOCOLS + tuple(p[:-3] for p in _PROTOCOLS)
    ):
        raise InvalidOptionError("protocol", protocol, f"expected one of {_PROTOCOLS}")
    if isinstance(protocol, str) and not protocol.endswith("://"):
        protocol += "://"
    scheduler_options = raw["scheduler_options"]
    if not isinstance(scheduler_options, Mapping):
        raise InvalidOptionError(
            "scheduler_options", scheduler_options, "expected a dict"
        )
    start_method = raw["worker_start_method"]
    if start_method not in _START_METHODS:
        raise InvalidOptionError(
            "worker_start_method", start_method, f"expected one of {_START_METHODS}"
        )
    resource_spec = raw["resource_spec"]
    if resource_spec is not None:
        check_identifier("resource_spec", resource_spec)
    return JobOptions(
        system=system,
        name=name,
        cores=cores,
        memory=parse_memory("memory", raw["memory"]),
        processes=processes,
        walltime=parse_walltime(
            "walltime",
            raw["walltime"] or ("168:00:00" if system == "local" else "00:30:00"),
        ),
        python=python,
        worker_command=worker_command,
        shebang=shebang,
        job_name=check_identifier("job_name", job_name),
        log_directory=log_directory,
        death_timeout=check_seconds("death_timeout", raw["death_timeout"]),
        nanny=bool(raw["nanny"]),
        worker_start_method=start_method,
        queue=_optional(check_identifier, "queue", raw["queue"]),
        account=_optional(check_identifier, "account", raw["account"]),
        interface=_optional(check_identifier, "interface", raw["interface"]),
        local_directory=local_directory,
        protocol=protocol,
        job_cpu=_optional(check_positive_int, "job_cpu", raw["job_cpu"]),
        job_mem=_optional(parse_memory, "job_mem", raw["job_mem"]),
        resource_spec=resource_spec,
        shared_temp_directory=shared_temp_directory,
        worker_extra_args=tuple(worker_extra_args),
        job_script_prologue=check_lines(
            "job_script_prologue", raw["job_script_prologue"]
        ),
        job_script_epilogue=check_lines(
            "job_script_epilogue", raw["job_script_epilogue"]
        ),
        job_extra_directives=check_lines(
            "job_extra_directives", raw["job_extra_directives"]
        ),
        job_directives_skip=check_lines(
            "job_directives_skip", raw["job_directives_skip"]
        ),
        scheduler_options=dict(scheduler_options),
    )


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


def _split_words(arg: object) -> list[str]:
    if not isinstance(arg, str):
        raise InvalidOptionError("worker_extra_args", arg, "expected strings")
    try:
        return shlex.split(arg)
    except ValueError as e:
        raise InvalidOptionError("worker_extra_args", arg, str(e)) from e


def _optional(check: Any, option: str, value: Any) -> Any:
    return None if value is None else check(option, value)


def cluster_setting(option: str, default: Any) -> Any:
    """A cluster-wide setting (``hpcdask.<option>``), e.g. ``poll-interval``."""
    return dask.config.get(f"hpcdask.{option}", default=default)
