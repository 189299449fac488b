"""Where a cluster's scheduler runs, and the options of a scheduler job.

By default (``scheduler_in="here"``) the scheduler runs in the process that makes
the cluster, as with dask-jobqueue. With ``scheduler_in="job"`` it runs in a small
batch job of its own (see :mod:`hpcdask.keeper`), which outlives the notebook:
that job's options come from the ``scheduler_job`` argument, then config
``hpcdask.scheduler-job.*``, then :data:`SCHEDULER_JOB_DEFAULTS`. Pure: the raw
values are read by :func:`hpcdask.config.scheduler_job_config`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from hpcdask.errors import InvalidOptionError
from hpcdask.options import JobOptions
from hpcdask.validation import (
    check_identifier,
    check_lines,
    check_positive_int,
    check_seconds,
    parse_memory,
    parse_walltime,
)

__all__ = [
    "SCHEDULER_IN",
    "SCHEDULER_JOB_DEFAULTS",
    "SchedulerJob",
    "check_cluster_name",
    "registry_root",
    "resolve_scheduler_in",
    "resolve_scheduler_job",
    "scheduler_job_options",
]

#: the places a scheduler may run: in this process, or in a batch job of its own
SCHEDULER_IN = ("here", "job")

#: the scheduler job's options when neither argument nor config gives them
SCHEDULER_JOB_DEFAULTS: dict[str, object] = {
    "cores": 1,
    "memory": "4GB",
    "walltime": "08:00:00",
    "queue": None,
    "account": None,
    "job_extra_directives": [],
    # no client and no task for this long: the cluster ends, cancelling its jobs
    "idle_timeout": "30 minutes",
    # how long making the cluster waits for the scheduler job to start
    "start_timeout": "10 minutes",
}

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


@dataclass(frozen=True)
class SchedulerJob:
    """The checked options of a scheduler job (times in seconds, memory in bytes)."""

    cores: int
    memory: int
    walltime: int
    queue: str | None
    account: str | None
    job_extra_directives: tuple[str, ...]
    idle_timeout: float
    start_timeout: float


def resolve_scheduler_in(given: object, configured: object) -> str:
    """``"here"`` or ``"job"``: the argument, else config, else ``"here"``."""
    value = given if given is not None else configured
    if value is None:
        return "here"
    if value not in SCHEDULER_IN:
        option = "scheduler_in" if given is not None else "hpcdask.scheduler-in"
        raise InvalidOptionError(option, value, f"expected one of {SCHEDULER_IN}")
    return str(value)


def resolve_scheduler_job(
    given: Mapping[str, object] | None, configured: Mapping[str, object]
) -> SchedulerJob:
    """The scheduler job's options: ``given`` (the ``scheduler_job`` argument)
    over ``configured`` (``hpcdask.scheduler-job``) over the defaults; keys may
    be spelled with ``-`` or ``_``.

    Raises
    ------
    hpcdask.InvalidOptionError
        naming an unknown key or a bad value.
    """
    raw = dict(SCHEDULER_JOB_DEFAULTS)
    for source, values in (
        ("hpcdask.scheduler-job", configured),
        ("scheduler_job", given or {}),
    ):
        if not isinstance(values, Mapping):
            raise InvalidOptionError(source, values, "expected a mapping")
        for key, value in values.items():
            option = str(key).replace("-", "_")
            if option not in SCHEDULER_JOB_DEFAULTS:
                known = ", ".join(sorted(SCHEDULER_JOB_DEFAULTS))
                why = f"unknown scheduler job option (known: {known})"
                raise InvalidOptionError(f"{source}.{key}", value, why)
            raw[option] = value
    where = "scheduler_job."
    optional = {
        key: None if raw[key] is None else check_identifier(where + key, raw[key])
        for key in ("queue", "account")
    }
    directives = check_lines(
        where + "job_extra_directives", raw["job_extra_directives"]
    )
    return SchedulerJob(
        cores=check_positive_int(where + "cores", raw["cores"]),
        memory=parse_memory(where + "memory", raw["memory"]),
        walltime=parse_walltime(where + "walltime", raw["walltime"]),
        job_extra_directives=tuple(directives),
        idle_timeout=check_seconds(where + "idle_timeout", raw["idle_timeout"]),
        start_timeout=check_seconds(where + "start_timeout", raw["start_timeout"]),
        **optional,
    )


def scheduler_job_options(opts: JobOptions, job: SchedulerJob, name: str) -> JobOptions:
    """The batch options of the scheduler job of a cluster whose workers have
    ``opts``: its own cores, memory, walltime and directives; the workers'
    queue and account unless it has its own; the workers' python, prologue
    (module loads, environments) and log directory; a job named ``name``."""
    return dataclasses.replace(
        opts,
        cores=job.cores,
        memory=job.memory,
        processes=1,
        walltime=job.walltime,
        queue=job.queue or opts.queue,
        account=job.account or opts.account,
        job_extra_directives=job.job_extra_directives,
        job_name=check_identifier("cluster_name", name),
        job_cpu=None,
        job_mem=None,
        resource_spec=None,
        parallel_environment=None,
        job_script_epilogue=(),
    )


def check_cluster_name(name: object) -> str:
    """A cluster's name: it names a registry entry and the scheduler job."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidOptionError(
            "cluster_name",
            name,
            "use 1 to 63 letters, digits and _ . - (starting with a letter or digit)",
        )
    return name


def registry_root(configured: object) -> str:
    """The registry's directory: config ``hpcdask.registry-directory`` or
    ``~/.hpcdask/clusters`` (on a file system the login and compute nodes share)."""
    if configured is None:
        return os.path.expanduser(os.path.join("~", ".hpcdask", "clusters"))
    if not isinstance(configured, str) or not configured:
        raise InvalidOptionError(
            "hpcdask.registry-directory", configured, "expected a path"
        )
    return os.path.abspath(os.path.expanduser(configured))
