"""Everything hpcdask reads from dask config, read here and nowhere else.

Job options, for each option of system ``S`` (``slurm``, ``pbs`` or ``local``):

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict, TypeVar

import dask.config
import yaml
from dask.utils import parse_bytes, parse_timedelta

from hpcdask.errors import InvalidOptionError
from hpcdask.models import PolicyParams
from hpcdask.options import (
    DEFAULTS,
    DEPRECATED_NAMES,
    OPTION_HELP,
    SYSTEMS,
    JobOptions,
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
    "default_config_path",
    "profiles_setting",
    "render_config",
    "repr_interval",
    "resolve_job_options",
    "security_setting",
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
    raw: dict[str, object] = {}
    for option, default in DEFAULTS.items():
        value = kwargs.get(option)
        if value is None:
            value = config_value(system, option)
        if value is None:
            value = default
        raw[option] = value
    return validate_options(system, raw)


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


def cluster_settings() -> ClusterSettings:
    """Read ``hpcdask.poll-interval``, ``hpcdask.security`` and
    ``hpcdask.adaptive.pending-report-after``.

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
    queued jobs are cancelled (default: 2 s worth).
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


def adaptive_settings(
    opts: JobOptions, **arguments: Unpack[AdaptArguments]
) -> AdaptiveSettings:
    """``adapt()``'s arguments, with config for those not given, as whole jobs.

    Bounds in workers, jobs, cores or memory are each rounded to whole jobs of
    ``opts`` (minima up, maxima down) and the tightest applies.
    """
    lowest, highest = _job_bounds(
        opts,
        jobs=(arguments.get("minimum_jobs"), arguments.get("maximum_jobs")),
        workers=(arguments.get("minimum"), arguments.get("maximum")),
        cores=(arguments.get("minimum_cores"), arguments.get("maximum_cores")),
        memory=(
            _bytes(arguments.get("minimum_memory")),
            _bytes(arguments.get("maximum_memory")),
        ),
    )
    seconds = check_seconds("interval", arguments.get("interval", "1s"))
    wait_count = arguments.get("wait_count")
    margin = opts.walltime - opts.worker_lifetime
    allowance = _adaptive_setting("startup-allowance", None, 15, check_seconds)
    params = PolicyParams(
        minimum_jobs=lowest,
        maximum_jobs=highest,
        workers_per_job=opts.processes,
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
    )
    target_duration = arguments.get("target_duration")
    if target_duration is None:
        target_duration = dask.config.get("distributed.adaptive.target-duration", "5s")
    return AdaptiveSettings(
        params=params,
        interval=seconds,
        target_duration=check_seconds("target_duration", target_duration),
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


Bounds = tuple[int | None, int | None]


def _job_bounds(
    opts: JobOptions, jobs: Bounds, workers: Bounds, cores: Bounds, memory: Bounds
) -> tuple[int, int]:
    """The tightest of several (minimum, maximum) pairs, in whole jobs."""
    lows = [jobs[0] or 0]
    highs = [jobs[1] if jobs[1] is not None else 2**31]
    for (low, high), per_job in (
        (workers, opts.processes),
        (cores, opts.cores),
        (memory, opts.memory),
    ):
        if low is not None:
            lows.append(math.ceil(low / per_job))
        if high is not None:
            highs.append(high // per_job)
    return max(lows), min(highs)


def _bytes(size: str | int | None) -> int | None:
    return None if size is None else int(parse_bytes(size))


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


def render_config() -> str:
    """A commented ``hpcdask.yaml``: every option with its default, all commented.

    As written the file sets nothing, so it hides no site-wide setting and no
    ``jobqueue.<system>.*`` value (an existing ``jobqueue.yaml``), which hpcdask
    reads for whatever is left unset. Removing the leading ``# `` from an option's
    line and from the lines of its parents sets it.
    """
    lines = [
        "# hpcdask configuration, read by dask from ~/.config/dask/ (or /etc/dask/).",
        "# Nothing is set yet: to set an option, remove the leading '# ' from its",
        "# line and from its parents' lines ('hpcdask:', '  slurm:'). Options left",
        "# unset are read from jobqueue.<system>.* (a dask-jobqueue jobqueue.yaml),",
        "# then take the defaults shown. Constructor arguments override all of these.",
        "#",
        "# hpcdask:",
        "#   # how often the queue is asked about a cluster's jobs (one command)",
        "#   poll-interval: 5s",
        "#   # TLS with a certificate made per cluster; false: unencrypted, and",
        "#   # anyone who reaches the scheduler's port can run code in it",
        "#   security: true",
    ]
    for system in SYSTEMS:
        lines.append(f"#   {system}:")
        for option, default in DEFAULTS.items():
            key = option.replace("_", "-")
            value = yaml.safe_dump(default, default_flow_style=True)
            value = value.strip().removesuffix("...").strip()
            lines.append(f"#     {key}: {value}  # {OPTION_HELP[option]}")
    lines += [
        "#   # site profiles: SLURMCluster.from_profile(NAME), `hpcdask profiles`;",
        "#   # keys: system, description, directives and any option above",
        "#   profiles:",
        "#     small:",
        "#       description: 2 cores, 4 GB, 8 hours",
        "#       system: slurm",
        "#       queue: shared",
        "#       cores: 2",
        "#       memory: 4GB",
        '#       walltime: "08:00:00"',
        "#     gpu-small:",
        "#       system: slurm",
        "#       queue: gpu",
        "#       cores: 8",
        "#       memory: 32GB",
        '#       directives: ["--gres=gpu:1"]',
    ]
    return "\n".join(lines) + "\n"


def default_config_path() -> str:
    """Where ``hpcdask config`` writes: ``$DASK_CONFIG`` or ~/.config/dask."""
    root = os.environ.get("DASK_CONFIG") or os.path.join(
        os.path.expanduser("~"), ".config", "dask"
    )
    return os.path.join(root, "hpcdask.yaml")
