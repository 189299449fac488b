"""Named site profiles from dask config: ``hpcdask.profiles.<name>``.

A site admin writes, e.g. in ``/etc/dask/hpcdask.yaml``::

    hpcdask:
      profiles:
        small:
          description: 2 cores, 4 GB, 8 hours
          system: slurm
          queue: shared
          cores: 2
          memory: 4GB
          walltime: "08:00:00"
        gpu-small:
          system: slurm
          queue: gpu
          cores: 8
          memory: 32GB
          gpus: 1
        cpu-and-gpu:
          system: slurm
          queue: regular
          cores: 32
          memory: 64GB
          pools:
            gpu: {queue: gpu, cores: 8, memory: 64GB, gpus: 4}

and users write ``SLURMCluster.from_profile("small")`` or
``HPCCluster.from_profile("gpu-small")``. A profile's keys are ``system``,
``description``, ``directives`` (extra directive lines, dask-jobqueue's
``job_extra_directives``), ``scheduler_in`` and ``scheduler_job`` (where the
scheduler runs, and its job's options: :mod:`hpcdask.jobmode`), ``pools``
(worker pools besides the default one, each a mapping of job options:
:mod:`hpcdask.pools`) and any job option (:data:`hpcdask.options.DEFAULTS`,
``-`` or ``_`` spelling). Values a profile leaves out come from
``hpcdask.<system>.*`` / ``jobqueue.<system>.*`` config as for any cluster. An
unknown key or system is an :class:`~hpcdask.errors.InvalidOptionError` naming it.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hpcdask.config import profiles_setting, resolve_job_options
from hpcdask.errors import InvalidOptionError
from hpcdask.format import format_bytes, format_duration
from hpcdask.jobmode import resolve_scheduler_in, resolve_scheduler_job
from hpcdask.options import DEFAULTS, SYSTEMS, JobOptions
from hpcdask.poolnames import checked_pools

__all__ = ["Profile", "load_profile", "load_profiles", "profile_names"]

#: the cluster's own arguments a profile may set (not job options)
CLUSTER_KEYS = ("scheduler_in", "scheduler_job", "pools")
#: keys a profile may hold besides the job options.
PROFILE_KEYS = ("system", "description", "directives", *CLUSTER_KEYS)


@dataclass(frozen=True)
class Profile:
    """One named profile: a batch system and constructor arguments for it.

    Parameters
    ----------
    name
        the profile's name (its key under ``hpcdask.profiles``).
    system
        ``"slurm"``, ``"pbs"``, ``"local"``, or ``None`` when the profile leaves
        it to the cluster class it is used with.
    description
        a line for people choosing a profile.
    options
        job options (keys of :data:`hpcdask.options.DEFAULTS`).
    cluster_options
        the cluster's own arguments that are not job options
        (:data:`CLUSTER_KEYS`: where the scheduler runs, its job's options).
    """

    name: str
    system: str | None
    description: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    cluster_options: Mapping[str, Any] = field(default_factory=dict)

    def system_for(self, cluster_system: str) -> str:
        """The system a cluster class of ``cluster_system`` ("" for any) runs this
        profile on; raises when they disagree or neither names one."""
        if self.system and cluster_system and self.system != cluster_system:
            raise InvalidOptionError(
                f"hpcdask.profiles.{self.name}.system",
                self.system,
                f"this profile is for {self.system}, not {cluster_system}: use "
                "HPCCluster.from_profile to pick the class from the profile",
            )
        system = self.system or cluster_system
        if not system:
            raise InvalidOptionError(
                f"hpcdask.profiles.{self.name}.system",
                None,
                f"the profile names no system; set one of {SYSTEMS}",
            )
        return system

    def cluster_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Constructor arguments: the profile's options, then ``overrides``."""
        return {**self.options, **self.cluster_options, **overrides}

    def summary(self) -> tuple[str, str, str, str]:
        """Queue, cores, memory and walltime, as ``hpcdask profiles`` lists them
        (resolved with config when the profile names its system)."""
        if not self.system:
            raw = self.options
            queue, cores, memory, walltime = (
                str(raw.get(k, "-")) for k in ("queue", "cores", "memory", "walltime")
            )
            return queue, cores, memory, walltime
        opts = self.job_options()
        return (
            opts.queue or "-",
            str(opts.cores),
            format_bytes(opts.memory),
            format_duration(opts.walltime),
        )

    def job_options(self, system: str = "", **overrides: Any) -> JobOptions:
        """The validated job options this profile gives (config fills the rest)."""
        return resolve_job_options(
            self.system_for(system), **{**self.options, **overrides}
        )


def profile_names() -> list[str]:
    """Names of the profiles in dask config, sorted."""
    return sorted(str(name) for name in profiles_setting())


def load_profile(name: str) -> Profile:
    """The profile ``name`` from dask config, checked.

    Raises
    ------
    InvalidOptionError
        (a ``ValueError``) when there is no such profile, or it has a key or a
        system hpcdask does not know.
    """
    profiles = profiles_setting()
    if name not in profiles:
        known = ", ".join(sorted(map(str, profiles))) or "none are configured"
        raise InvalidOptionError(
            "profile", name, f"no such profile in hpcdask.profiles (known: {known})"
        )
    return parse_profile(name, profiles[name])


def load_profiles() -> list[Profile]:
    """Every profile in dask config, checked, sorted by name."""
    profiles = profiles_setting()
    return [parse_profile(str(name), profiles[name]) for name in sorted(profiles)]


def parse_profile(name: str, raw: object) -> Profile:
    """Check one profile's mapping and turn it into a :class:`Profile`."""
    where = f"hpcdask.profiles.{name}"
    if not isinstance(raw, Mapping):
        raise InvalidOptionError(where, raw, "expected a mapping of options")
    known = (*PROFILE_KEYS, *DEFAULTS)
    options: dict[str, Any] = {}
    cluster_options: dict[str, Any] = {}
    system: str | None = None
    description = ""
    for key, value in raw.items():
        option = _option_name(key)
        if option not in known:
            close = _suggest(option, known)
            hint = f"; did you mean {close!r}?" if close else ""
            raise InvalidOptionError(
                f"{where}.{key}",
                value,
                f"unknown profile key{hint} (known: {', '.join(sorted(known))})",
            )
        if option == "system":
            if value not in SYSTEMS:
                raise InvalidOptionError(
                    f"{where}.system",
                    value,
                    f"unknown system; expected one of {', '.join(SYSTEMS)}",
                )
            system = str(value)
            continue
        if option == "description":
            description = str(value)
            continue
        if option in CLUSTER_KEYS:
            checked = _check_cluster_key(f"{where}.{key}", option, value)
            cluster_options[option] = checked
            continue
        if option in options:
            raise InvalidOptionError(
                f"{where}.{key}",
                value,
                "given twice (directives and job_extra_directives, or the - and _ "
                "spellings of one key)",
            )
        options[option] = value
    return Profile(name, system, description, options, cluster_options)


def _check_cluster_key(where: str, option: str, value: object) -> Any:
    """Check a profile's ``scheduler_in``, ``scheduler_job`` or ``pools`` as
    the cluster will, naming the profile's key when it is wrong; the value the
    cluster is given."""
    if option == "pools":
        return _parse_pools(where, value)
    try:
        if option == "scheduler_in":
            resolve_scheduler_in(value, None)
        elif not isinstance(value, Mapping):
            raise InvalidOptionError(option, value, "expected a mapping")
        else:
            resolve_scheduler_job(value, {})
    except InvalidOptionError as e:
        raise InvalidOptionError(where, value, str(e)) from e
    return value


def _parse_pools(where: str, value: object) -> dict[str, dict[str, Any]]:
    """A profile's ``pools``: each pool's name checked, its keys job options
    (``-`` or ``_`` spelling, ``directives`` as in the profile)."""
    try:
        pools = checked_pools(value)
    except InvalidOptionError as e:
        raise InvalidOptionError(where, value, e.why) from e
    parsed: dict[str, dict[str, Any]] = {}
    for pool, raw in pools.items():
        options: dict[str, Any] = {}
        for key, option_value in raw.items():
            option = _option_name(key)
            if option not in DEFAULTS:
                close = _suggest(option, list(DEFAULTS))
                hint = f"; did you mean {close!r}?" if close else ""
                raise InvalidOptionError(
                    f"{where}.{pool}.{key}", option_value, f"not a job option{hint}"
                )
            options[option] = option_value
        parsed[pool] = options
    return parsed


def _option_name(key: object) -> str:
    """A profile key as the cluster's argument: ``_`` for ``-``, and
    ``directives`` as ``job_extra_directives``."""
    option = str(key).replace("-", "_")
    return "job_extra_directives" if option == "directives" else option


def _suggest(key: str, known: Sequence[str]) -> str | None:
    """The known key ``key`` was probably meant as: a close spelling ("queu"),
    else one with the same first four letters ("wallclock" -> "walltime")."""
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return close[0]
    same_start = [k for k in known if len(key) >= 4 and k.startswith(key[:4])]
    return same_start[0] if len(same_start) == 1 else None
