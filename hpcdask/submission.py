"""What one submission of the fleet is made of, and what it leaves behind.

:class:`BatchJob` is the handle ``SpecCluster`` holds for each submitted job;
:func:`shape_batches` groups the jobs to submit into submissions of one walltime
each (job arrays no larger than the site allows); :func:`cancel_unknown` finds
the jobs a submission that timed out may have queued all the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Generator

from distributed.core import Status

from hpcdask.errors import JobSubmissionError
from hpcdask.forecast import JobShape
from hpcdask.jobs import JobTable
from hpcdask.models import ClusterTag, JobRecord

__all__ = [
    "BatchJob",
    "JobSpec",
    "cancel_unknown",
    "may_have_queued",
    "shape_batches",
]

#: what SpecCluster holds for one wanted job: its handle class, and the
#: suffixes of its workers' names when it runs several
JobSpec = dict[str, object]

#: one submission: the shape of its jobs (``None``: the pool's walltime) and
#: their names
Batch = tuple[JobShape | None, list[str]]

logger = logging.getLogger(__name__)


class BatchJob:
    """SpecCluster's handle on one batch job (what it holds for each entry of its
    ``workers``); the job table does the queue I/O."""

    def __init__(self, record: JobRecord) -> None:
        self.record = record
        self.name = record.name
        self.status = Status.running

    def __await__(self) -> Generator[None, None, BatchJob]:
        # submitted is started, as far as SpecCluster's ``await cluster`` goes
        yield from asyncio.sleep(0).__await__()
        return self

    async def close(self) -> None:
        """Forget the job (the job table cancels it)."""
        self.status = Status.closed

    def __repr__(self) -> str:
        record = self.record
        return f"<BatchJob {self.name} job_id={record.job_id} {record.state.value}>"


def shape_batches(
    names: list[str], shapes: list[JobShape | None], size: int
) -> list[Batch]:
    """One submission per shape (walltime), of at most ``size`` jobs each."""
    groups: dict[JobShape | None, list[str]] = {}
    for name, shape in zip(names, shapes, strict=True):
        groups.setdefault(shape, []).append(name)
    return [
        (shape, group[i : i + size])
        for shape, group in groups.items()
        for i in range(0, len(group), size)
    ]


def may_have_queued(error: BaseException) -> bool:
    """Whether a failed submission may have queued its job all the same: not
    when the queue refused it, but when it timed out (the command was killed)."""
    if isinstance(error, JobSubmissionError):
        return error.returncode == 124
    return not isinstance(error, ValueError)


async def cancel_unknown(table: JobTable, tag: ClusterTag | None) -> list[str]:
    """Cancel the jobs in the queue that carry ``tag`` but that ``table`` does
    not know (their submission timed out, or was cut short); their ids."""
    if tag is None:
        return []
    known = {r.job_id for r in table.records.values()}
    jobs = await table.backend.jobs_tagged(tag)
    unknown = [job.job_id for job in jobs if job.job_id not in known]
    if unknown:
        logger.warning(
            "cancelling %d job(s) of this cluster whose submission was not "
            "confirmed: %s",
            len(unknown),
            ", ".join(unknown),
        )
        await table.backend.cancel(unknown)
    return unknown
