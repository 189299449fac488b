"""Times and durations as batch systems print them."""

from __future__ import annotations

import functools
import re
import time
from datetime import datetime

_DURATION = re.compile(r"(?:(\d+)-)?(?:(\d+):)?(?:(\d+):)?(\d+)")
_CLOCK_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%a %b %d %H:%M:%S %Y", "%a %b %d %Y %H:%M:%S")


@functools.lru_cache(maxsize=65536)
def parse_clock(text: str) -> float | None:
    """A local wall-clock time ("2026-11-21T23:59:00", "Sat Nov 21 23:59:00 2026")
    or epoch seconds ("1796034833", what hpcdask asks Slurm for) as a POSIX
    timestamp; ``None`` for "N/A", "Unknown", "None" or blank.

    Cached: a poll of thousands of jobs meets the same times poll after poll.
    """
    if text.isdigit():
        return float(text)
    text = " ".join(text.split())
    if not text:
        return None
    if text.isdigit():  # PBS Pro prints epoch seconds with some options
        return float(text)
    fields = _clock_fields(text)
    if fields is not None:
        return time.mktime((*fields, 0, 0, -1))
    for fmt in _CLOCK_FORMATS:
        try:
            return time.mktime(datetime.strptime(text, fmt).timetuple())
        except ValueError:
            continue
    return None


_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                "Nov", "Dec")  # fmt: skip
_MONTHS = {month: number for number, month in enumerate(_MONTH_NAMES, start=1)}
_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)")
_CTIME = re.compile(
    r"[A-Z][a-z]{2} ([A-Z][a-z]{2}) +(\d+) (\d\d):(\d\d):(\d\d) (\d{4})"
)


def _clock_fields(text: str) -> tuple[int, int, int, int, int, int] | None:
    """(year, month, day, hour, minute, second) of the two common forms, read
    without strptime (which costs ten times more)."""
    iso = _ISO.fullmatch(text)
    if iso:
        y, mo, d, h, mi, s = map(int, iso.groups())
        return y, mo, d, h, mi, s
    ctime = _CTIME.fullmatch(text)
    if ctime and ctime.group(1) in _MONTHS:
        month, day, hour, minute, second, year = ctime.groups()
        return (
            int(year),
            _MONTHS[month],
            int(day),
            int(hour),
            int(minute),
            int(second),
        )
    return None


@functools.lru_cache(maxsize=4096)
def parse_duration(text: str) -> float | None:
    """A duration "[D-][HH:]MM:SS" in seconds; ``None`` for "UNLIMITED" and the like.

    Slurm prints ``M:SS`` below an hour, ``H:MM:SS`` below a day and
    ``D-HH:MM:SS`` above; PBS prints ``HH:MM:SS``.
    """
    match = _DURATION.fullmatch(text.strip())
    if not match:
        return None
    days, first, second, last = match.groups()
    parts = [int(p) for p in (first, second) if p is not None] + [int(last)]
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + part
    if len(parts) == 1 and days is not None:
        # "D-HH" carries hours only
        seconds = int(last) * 3600
    return float(seconds + int(days or 0) * 86400)
