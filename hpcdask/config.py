"""Everything hpcdask reads from dask config, read here and nowhere else.

Job options, for each option of system ``S`` (``slurm``, ``pbs``, ``sge`` or
``local``):

1. the constructor argument, when it is not ``None``;
2. ``hpcdask.S.<option>`` in dask config;
3. ``jobqueue.S.<option>`` in dask config, so a user's ``jobqueue.yaml`` keeps working;
4. hpcdask's built-in default (:data:`hpcdask.options.DEFAULTS`).

Cluster-wide settings (``hpcdask.poll-interval``, ``hpcdask.security``,
``hpcdask.adaptive.*``) are read once, when a cluster is made
(:func:`cluster_settings`) or adapts (:func:`adaptive_settings`); the values are
checked here with the parsers every other duration goes through. Deprecated
dask-jobqueue argument names are translated here and nowhere else.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict, TypeVar

import dask.config
from dask.utils import parse_timedelta

from hpcdask.errors import InvalidOptionError
from hpcdask.forecast import ShapeParams
from hpcdask.jobbounds import job_bounds, memory_bytes
from hpcdask.models import PolicyParams
from hpcdask.options import (
    DEFAULTS,
    SYSTEM_OPTIONS,
    SYSTEMS,
    JobOptions,
    deprecated_names,
    validate_options,
)
from hpcdask.validation import check_positive_int, check_seconds

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "AdaptArguments",
    "AdaptiveSettings",
    "ClusterSettings",
    "adaptive_settings",
    "cluster_settings",
    "config_value",
    "dashboard_link_template",
    "profiles_setting",
    "repr_interval",
    "resolve_job_options",
    "security_setting",
    "sge_site",
]


def config_value(system: str, option: str) -> object:
    """The value of ``option`` from dask config for ``system``, or ``None``."""
    for root in ("hpcdask", "jobqueue"):
        value = dask.config.get(f"{root}.{system}.{option}", default=None)
        if value is not None:
            return value
    return None


def resolve_job_options(system: str, **kwargs: object) -> JobOptions:
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
    for old, new in deprecated_names(system).items():
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
    raw: dict[str, object] = {}
    for option, default in DEFAULTS.items():
        value = kwargs.get(option)
        if value is None and system in SYSTEM_OPTIONS.get(option, (system,)):
            value = config_value(system, option)
        if value is None:
            value = default
        raw[option] = value
    return validate_options(system, raw)


SGE_ROOT_HELP = "SGE_ROOT whose settings.sh the commands run with (or $SGE_ROOT)"


def sge_site() -> tuple[str | None, str]:
    """Where Grid Engine lives: ``(SGE_ROOT, SGE_CELL)`` from config
    ``hpcdask.sge.sge-root`` / ``sge-cell``, else the environment variables
    (``None``: commands come from ``PATH`` as they are)."""
    root = dask.config.get("hpcdask.sge.sge-root", None) or os.environ.get("SGE_ROOT")
    cell = dask.config.get("hpcdask.sge.sge-cell", None) or os.environ.get("SGE_CELL")
    return (str(root) if root else None), str(cell or "default")


def _setting(option: str, default: object) -> object:
    return dask.config.get(f"hpcdask.{option}", default=default)


@dataclass(frozen=True)
class ClusterSettings:
    """The cluster-wide settings one cluster uses for its whole life."""

    #: seconds between queue polls (one status command each)
    poll_interval: float = 5.0
    #: whether clusters made without ``security=`` use TLS
    security: bool = True
    #: seconds a job may wait in the queue before the log says so, and why
    pending_report_after: float = 60.0
    #: seconds ``close()`` may spend cancelling the cluster's jobs
    close_timeout: float = 30.0
    #: seconds a batch command may run before it is killed
    command_timeout: float = 60.0


def cluster_settings() -> ClusterSettings:
    """Read ``hpcdask.poll-interval``, ``hpcdask.security``,
    ``hpcdask.adaptive.pending-report-after``, ``hpcdask.close-timeout`` and
    ``hpcdask.command-timeout``.

    Raises
    ------
    hpcdask.InvalidOptionError
        for a value that is not a duration, or a ``security`` not true or false.
    """
    return ClusterSettings(
        poll_interval=check_seconds(
            "hpcdask.poll-interval", _setting("poll-interval", "5s")
        ),
        security=security_setting(),
        pending_report_after=check_seconds(
            "hpcdask.adaptive.pending-report-after",
            _setting("adaptive.pending-report-after", 60),
        ),
        close_timeout=check_seconds(
            "hpcdask.close-timeout", _setting("close-timeout", "30s")
        ),
        command_timeout=check_seconds(
            "hpcdask.command-timeout", _setting("command-timeout", "60s")
        ),
    )


def security_setting() -> bool:
    """Config ``hpcdask.security``: whether clusters made without ``security=``
    use TLS (default true).

    Raises
    ------
    hpcdask.InvalidOptionError
        when the setting is not true or false.
    """
    security = _setting("security", True)
    if not isinstance(security, bool):
        raise InvalidOptionError("hpcdask.security", security, "expected true or false")
    return security


@dataclass(frozen=True)
class AdaptiveSettings:
    """What ``cluster.adapt(...)`` resolves to: the policy's knobs and the loop's."""

    params: PolicyParams
    #: seconds between two decisions
    interval: float
    #: the shortest time the scheduler's backlog is sized to finish in
    target_duration: float
    #: the shortest time between two reads of the queue's forecast
    probe_interval: float = 30.0


class AdaptArguments(TypedDict, total=False):
    """The keyword arguments of ``cluster.adapt()``, written once.

    Bounds are in workers (``minimum``/``maximum``, as for distributed's
    ``Adaptive``), jobs, cores or memory, as dask-jobqueue accepts. ``interval``
    is the time between decisions; ``idle_timeout`` how long all of a job's
    workers must be idle before it is given back (config
    ``hpcdask.adaptive.idle-timeout``); ``max_pending_jobs`` the most jobs
    waiting in the queue at once (``hpcdask.adaptive.max-pending-jobs``);
    ``target_duration`` the shortest time the scheduler's backlog is sized to
    finish in (``distributed.adaptive.target-duration``; it grows to the
    observed time a new job takes to bring a worker); ``wait_count`` as for
    distributed's ``Adaptive``: a surplus must last this many intervals before
    queued jobs are cancelled (default: 2 s worth); ``job_shapes`` whether new
    jobs may ask for less than the walltime when shorter jobs start sooner
    (``hpcdask.adaptive.job-shapes``), ``min_walltime`` the shortest they ask
    for (``hpcdask.adaptive.min-walltime``). ``pools`` bounds worker pools in
    jobs, ``{"gpu": (0, 2)}`` (see :func:`hpcdask.pools.pool_settings`).
    """

    minimum: int | None
    maximum: int | None
    minimum_jobs: int | None
    maximum_jobs: int | None
    minimum_cores: int | None
    maximum_cores: int | None
    minimum_memory: str | int | None
    maximum_memory: str | int | None
    interval: str | float
    idle_timeout: str | float | None
    max_pending_jobs: int | None
    target_duration: str | float | None
    wait_count: int | None
    pools: Mapping[str, Sequence[int]]
    job_shapes: bool | None
    min_walltime: str | float | None


def adaptive_settings(
    opts: JobOptions, **arguments: Unpack[AdaptArguments]
) -> AdaptiveSettings:
    """``adapt()``'s arguments, with config for those not given, as whole jobs.

    Bounds in workers, jobs, cores or memory are each rounded to whole jobs of
    ``opts`` (minima up, maxima down) and the tightest applies.
    """
    lowest, highest = job_bounds(
        opts,
        jobs=(arguments.get("minimum_jobs"), arguments.get("maximum_jobs")),
        workers=(arguments.get("minimum"), arguments.get("maximum")),
        cores=(arguments.get("minimum_cores"), arguments.get("maximum_cores")),
        memory=(
            memory_bytes(arguments.get("minimum_memory")),
            memory_bytes(arguments.get("maximum_memory")),
        ),
    )
    seconds = check_seconds("interval", arguments.get("interval", "1s"))
    wait_count = arguments.get("wait_count")
    margin = opts.walltime - opts.worker_lifetime
    allowance = _adaptive_setting("startup-allowance", None, 15, check_seconds)
    probe_interval = _adaptive_setting("probe-interval", None, "30s", check_seconds)
    params = PolicyParams(
        minimum_jobs=lowest,
        maximum_jobs=highest,
        workers_per_job=opts.workers_per_job,
        max_pending_jobs=_adaptive_setting(
            "max-pending-jobs",
            arguments.get("max_pending_jobs"),
            100,
            check_positive_int,
        ),
        idle_timeout=_adaptive_setting(
            "idle-timeout", arguments.get("idle_timeout"), "3s", check_seconds
        ),
        scale_down_delay=2.0 if wait_count is None else wait_count * seconds,
        # replacements start this long before a worker's lifetime ends
        replace_ahead=margin + allowance,
        lifetime_margin=margin,
        shapes=shape_settings(opts, arguments, max_age=2 * probe_interval),
    )
    target_duration = arguments.get("target_duration")
    if target_duration is None:
        target_duration = dask.config.get("distributed.adaptive.target-duration", "5s")
    return AdaptiveSettings(
        params=params,
        interval=seconds,
        target_duration=check_seconds("target_duration", target_duration),
        probe_interval=probe_interval,
    )


def shape_settings(
    opts: JobOptions, arguments: AdaptArguments, max_age: float
) -> ShapeParams | None:
    """How new jobs' walltimes are chosen (``None``: always the user's):
    ``hpcdask.adaptive.job-shapes`` (true; a site turns it off with false),
    ``min-walltime`` (10 minutes: shorter jobs are never chosen, and with a
    walltime below it plus a minute nothing is read from the queue),
    ``shape-gain`` (2 minutes: a shorter job must start that much sooner); a
    forecast older than ``max_age`` seconds is not used. Jobs of several nodes
    or with GPUs keep the user's walltime: the forecast places one-node jobs
    by cores and memory only."""
    on, min_walltime = arguments.get("job_shapes"), arguments.get("min_walltime")
    setting = _setting("adaptive.job-shapes", True) if on is None else on
    if not isinstance(setting, bool):
        name = "hpcdask.adaptive.job-shapes" if on is None else "job_shapes"
        raise InvalidOptionError(name, setting, "expected true or false")
    floor = _adaptive_setting("min-walltime", min_walltime, "10m", check_seconds)
    floor = 60.0 * math.ceil(floor / 60)  # Slurm counts whole minutes
    if not setting or opts.walltime < floor + 60 or opts.nodes > 1 or opts.gpus:
        return None
    return ShapeParams(
        walltime=float(opts.walltime),
        min_walltime=floor,
        gain=_adaptive_setting("shape-gain", None, "2m", check_seconds),
        cpus=opts.job_cpu or opts.cores,
        memory=opts.job_mem or opts.memory,
        partitions=tuple(opts.queue.split(",")) if opts.queue else (),
        max_age=max_age,
    )


_T = TypeVar("_T")


def _adaptive_setting(
    name: str, given: object, default: object, check: Callable[[str, object], _T]
) -> _T:
    """An ``adapt()`` argument, or ``hpcdask.adaptive.<name>`` when not given,
    checked and named in errors as the user gave it."""
    if given is not None:
        return check(name.replace("-", "_"), given)
    return check(f"hpcdask.adaptive.{name}", _setting(f"adaptive.{name}", default))


def profiles_setting() -> Mapping[str, object]:
    """``hpcdask.profiles``: name -> the profile's raw mapping."""
    profiles = dask.config.get("hpcdask.profiles", default=None) or {}
    if not isinstance(profiles, Mapping):
        raise InvalidOptionError(
            "hpcdask.profiles", profiles, "expected a mapping of name -> profile"
        )
    return profiles


def dashboard_link_template() -> tuple[str, str]:
    """``distributed.dashboard.link`` and the scheme the dashboard serves."""
    tls = dask.config.get("distributed.scheduler.dashboard.tls.cert", default=None)
    template = str(dask.config.get("distributed.dashboard.link"))
    return template, "https" if tls else "http"


def repr_interval() -> float:
    """Seconds between two updates of a cluster's live notebook widget."""
    value = dask.config.get("distributed.deploy.cluster-repr-interval", "500ms")
    return float(parse_timedelta(value, default="ms") or 0.5)


def scheduler_job_config() -> tuple[object, Mapping[str, object], object]:
    """``hpcdask.scheduler-in``, ``hpcdask.scheduler-job`` and
    ``hpcdask.registry-directory`` as set (checked in :mod:`hpcdask.jobmode`)."""
    where = _setting("scheduler-in", None)
    job = _setting("scheduler-job", None) or {}
    if not isinstance(job, Mapping):
        raise InvalidOptionError("hpcdask.scheduler-job", job, "expected a mapping")
    return where, job, _setting("registry-directory", None)


def config_snapshot() -> dict[str, object]:
    """The ``hpcdask`` and ``jobqueue`` config of this process, for a scheduler
    job to resolve options exactly as the notebook would."""
    return {key: dask.config.get(key, default={}) for key in ("hpcdask", "jobqueue")}
