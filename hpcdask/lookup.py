"""A user's running scheduler-job clusters: the registry checked against the
queue (``hpcdask list``, ``from_name``, dask-ctl's discovery).

An entry whose scheduler job has left the queue (it ended, was cancelled, hit its
walltime, or its node failed before the job could clean up) is stale: it is
removed with its credentials. So is an entry whose job was never submitted (the
process making it died first), once it is older than :data:`UNSUBMITTED_GRACE`.
When the batch controller does not answer, nothing is removed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from hpcdask.errors import InvalidOptionError
from hpcdask.models import JobState, JobStatus
from hpcdask.registry import Entry, list_entries, read_entry, remove_entry
from hpcdask.systems import QUEUE_SYSTEMS, queue_backend

__all__ = ["UNSUBMITTED_GRACE", "find_cluster", "live_clusters", "stale_entries"]

#: seconds an entry may stay without a submitted job (its submission under way)
UNSUBMITTED_GRACE = 600.0


def stale_entries(
    entries: Sequence[Entry], statuses: dict[str, JobStatus], now: float
) -> list[Entry]:
    """The entries to remove: those whose job the queue reports ended, and
    those never submitted after :data:`UNSUBMITTED_GRACE`. A job the queue did
    not answer about (absent from ``statuses``, or ``UNKNOWN``) is kept."""
    stale = []
    for entry in entries:
        if not entry.submitted:
            if now - _created(entry) > UNSUBMITTED_GRACE:
                stale.append(entry)
            continue
        status = statuses.get(entry.job_id)
        if status is not None and status.state.is_terminal:
            stale.append(entry)
    return stale


def _created(entry: Entry) -> float:
    if entry.created:
        return entry.created
    try:
        return os.stat(entry.directory).st_mtime
    except OSError:
        return 0.0


async def _statuses(entries: Sequence[Entry], timeout: float) -> dict[str, JobStatus]:
    """One status query per batch system for the entries' scheduler jobs."""
    found: dict[str, JobStatus] = {}
    for system in sorted({e.system for e in entries if e.submitted}):
        if system not in QUEUE_SYSTEMS:
            continue
        ids = [e.job_id for e in entries if e.system == system and e.submitted]
        try:
            found.update(await queue_backend(system, timeout).status(ids))
        except Exception:  # the controller does not answer: remove nothing
            found.update({i: JobStatus(JobState.UNKNOWN) for i in ids})
    return found


async def live_clusters(root: str, timeout: float = 60.0) -> list[Entry]:
    """The registered clusters whose scheduler job is still queued or running
    (starting ones included); stale entries are removed on the way."""
    entries = list_entries(root)
    statuses = await _statuses(entries, timeout)
    stale = stale_entries(entries, statuses, time.time())
    for entry in stale:
        remove_entry(entry.directory)
    return [e for e in entries if e not in stale]


async def find_cluster(root: str, name: str, timeout: float = 60.0) -> Entry:
    """The running cluster ``name``.

    Raises
    ------
    hpcdask.InvalidOptionError
        when no such cluster runs (its entry, if stale, is removed), or when its
        scheduler job has not started yet.
    """
    directory = os.path.join(root, name)
    if os.path.isdir(directory):
        entry = read_entry(directory)
        for live in await live_clusters(root, timeout):
            if live.name == name:
                entry = read_entry(directory)  # the scheduler may just have started
                if not entry.running:
                    why = f"its scheduler job {entry.job_id} has not started yet"
                    raise InvalidOptionError("name", name, why)
                return entry
    names = [e.name for e in await live_clusters(root, timeout)]
    known = f"running: {', '.join(names)}" if names else "no cluster runs"
    raise InvalidOptionError(
        "name", name, f"no such cluster ({known}; see `hpcdask list`)"
    )
