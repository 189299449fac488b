"""Human units, written once: durations, sizes, counts.

Pure functions used by the job scripts (walltimes, worker memory limits) and by
every display (the repr, the widget, the dashboard page, the ``hpcdask`` command).
"""

from __future__ import annotations

import math

__all__ = [
    "format_bytes",
    "format_count",
    "format_duration",
    "format_hms",
    "format_memory_limit",
    "plural",
]

_EXACT_UNITS = (("GiB", 2**30), ("MiB", 2**20), ("GB", 10**9), ("MB", 10**6))


def format_hms(seconds: float) -> str:
    """``HH:MM:SS`` (hours may pass 24), rounded to the second; what ``sbatch -t``
    and ``qsub -l walltime=`` read and what people read."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def format_duration(seconds: float | None) -> str:
    """:func:`format_hms`, or ``-`` when the duration is unknown."""
    if seconds is None or math.isnan(seconds):
        return "-"
    return format_hms(seconds)


def format_bytes(size: int) -> str:
    """A memory size the way it was probably given: "4 GB", "16 GiB", "1.50 GiB"."""
    for unit, factor in (("TB", 10**12), ("TiB", 2**40), ("GB", 10**9), ("GiB", 2**30)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if size >= factor:
            return f"{size / factor:.2f} {unit}"
    return f"{size} B"


def format_memory_limit(size: int) -> str:
    """A byte count as dask reads it, exact: "4GiB" when it divides, else bytes."""
    for unit, factor in _EXACT_UNITS:
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def plural(n: int, noun: str) -> str:
    """``"1 core"``, ``"2 cores"``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def format_count(value: float) -> str:
    """A bound that may be unlimited: ``"4"``, ``"∞"``."""
    return "∞" if math.isinf(value) else f"{value:g}"
