"""``adapt()``'s bounds in workers, jobs, cores or memory, as whole jobs.

Pure: the tightest of the bounds given, each rounded to whole jobs of the
cluster's (or pool's) job options; :func:`hpcdask.config.adaptive_settings`
reads the arguments and config around it.
"""

from __future__ import annotations

import math

from dask.utils import parse_bytes

from hpcdask.errors import InvalidOptionError
from hpcdask.options import JobOptions

__all__ = ["Bounds", "job_bounds", "memory_bytes"]

Bounds = tuple[int | None, int | None]


def job_bounds(
    opts: JobOptions, jobs: Bounds, workers: Bounds, cores: Bounds, memory: Bounds
) -> tuple[int, int]:
    """The tightest of several (minimum, maximum) pairs, in whole jobs.

    A minimum rounds up to whole jobs; a maximum rounds down, but never below
    one job when it is positive (``maximum=2`` with 4 workers per job allows one
    job, as ``scale(2)`` asks for one): a bound never silently forbids scaling.
    """
    given = {"jobs": (jobs, 1), "workers": (workers, opts.workers_per_job)}
    given |= {"cores": (cores, opts.cores_per_job)}
    given |= {"memory": (memory, opts.memory_per_job)}
    lows: list[tuple[int, str]] = [(0, "")]
    highs: list[tuple[int, str]] = [(2**31, "")]
    for unit, ((low, high), per_job) in given.items():
        if low is not None:
            lows.append((math.ceil(low / per_job), f"minimum {low} {unit}"))
        if high is not None:
            jobs_at_most = high // per_job if high >= per_job or high <= 0 else 1
            highs.append((jobs_at_most, f"maximum {high} {unit}"))
    (lowest, low_said), (highest, high_said) = max(lows), min(highs)
    if lowest > highest:
        raise InvalidOptionError(
            "adapt",
            f"{low_said}, {high_said}",
            f"the minimum is {lowest} job(s) and the maximum {highest} "
            f"({opts.workers_per_job} worker(s), {opts.cores_per_job} cores per job)",
        )
    return lowest, highest


def memory_bytes(size: str | int | None) -> int | None:
    return None if size is None else int(parse_bytes(size))
