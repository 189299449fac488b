"""Times and durations as batch systems print them."""

from __future__ import annotations

import re
import time
from datetime import datetime

_DURATION = re.compile(r"(?:(\d+)-)?(?:(\d+):)?(?:(\d+):)?(\d+)")
_CLOCK_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%a %b %d %H:%M:%S %Y", "%a %b %d %Y %H:%M:%S")


def parse_clock(text: str) -> float | None:
    """A local wall-clock time ("2026-11-21T23:59:00", "Sat Nov 21 23:59:00 2026")
    as a POSIX timestamp; ``None`` for "N/A", "Unknown", "None" or blank."""
    text = " ".join(text.split())
    if not text:
        return None
    if text.isdigit():  # PBS Pro prints epoch seconds with some options
        return float(text)
    for fmt in _CLOCK_FORMATS:
        try:
            return time.mktime(datetime.strptime(text, fmt).timetuple())
        except ValueError:
            continue
    return None


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
