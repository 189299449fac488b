"""The fleet: which jobs a cluster wants, and making the queue agree.

:class:`Fleet` is the one writer of the wanted job set (what distributed's
``SpecCluster`` calls ``worker_spec``: job name -> spec) and of the set of jobs
on their way out. Everything that changes them — ``scale()``, ``scale_down()``,
a job that ended, an adaptive :class:`~hpcdask.models.ScaleDecision` — is a
method here; :meth:`Fleet.sync` then submits and cancels through the job table
until the queue holds the wanted jobs. A scale-up is one submission (a job array
where the system has them); jobs that go have their workers retired first (data
handed over), then are cancelled with one command.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from distributed.core import Status

from hpcdask.errors import BatchCommandError
from hpcdask.forecast import JobShape
from hpcdask.jobs import JobTable, wait_until_ended
from hpcdask.models import ClusterTag, JobRecord, ScaleDecision
from hpcdask.options import JobOptions
from hpcdask.submission import (
    Batch,
    BatchJob,
    JobSpec,
    cancel_unknown,
    may_have_queued,
    shape_batches,
)

__all__ = ["BatchJob", "Fleet", "JobSpec", "SchedulerActions", "cancel_unknown"]

logger = logging.getLogger(__name__)

#: renders the job script of some jobs (names), of a walltime (``None``: the
#: pool's)
Render = Callable[[list[str], float | None], str]


class SchedulerActions(Protocol):
    """What the fleet asks of the scheduler."""

    async def retire(self, worker_names: list[str]) -> None:
        """Retire these workers, their data handed over to others."""
        ...

    def drain(self, job_names: Iterable[str]) -> None:
        """Give no new task to the workers of these jobs."""
        ...

    def forget(self, worker_names: list[str]) -> None:
        """Remove these workers now (in the background): their job ended or
        was requeued, and a worker still connected is on a node cut off from
        the queue."""
        ...


class QueueSync:
    """Makes the queue hold a set of wanted jobs: submits the missing ones (in
    job arrays, shielded from cancelled callers) and cancels the unwanted,
    their workers retired first. :class:`Fleet` decides what is wanted.
    """

    def __init__(
        self,
        table: JobTable,
        render: Render,
        scheduler: SchedulerActions,
        tag: ClusterTag | None,
        pool: str,
        options: JobOptions | None,
    ) -> None:
        self.table = table
        self.render = render
        self.scheduler = scheduler
        self.tag = tag
        self.pool = pool
        self.options = options
        #: job name -> spec: the jobs the cluster wants (SpecCluster's worker_spec)
        self.wanted: dict[str, JobSpec] = {}
        #: job name -> handle of a submitted job (SpecCluster's workers)
        self.handles: dict[str, BatchJob] = {}
        #: jobs being retired or cancelled, no longer wanted
        self.leaving: set[str] = set()
        #: the shapes (walltime, why) of wanted jobs not yet submitted, when
        #: the adaptive policy chose them
        self.shapes: dict[str, JobShape | None] = {}
        self.closing = False
        #: a submission failed in a way that may have queued its job all the
        #: same: look for the cluster's tag in the queue when it closes
        self.unconfirmed = False
        #: names being submitted, and the submissions under way
        self._in_flight: set[str] = set()
        self._submissions: set[asyncio.Future[None]] = set()
        self._lock = asyncio.Lock()
        self._sync_waiting: asyncio.Future[None] | None = None

    # -- making the queue agree ------------------------------------------------

    def sync(self) -> asyncio.Future[None]:
        """Submit and cancel until the queue holds the wanted jobs; calls made
        while one is waiting share it."""
        if self._sync_waiting is None:
            self._sync_waiting = asyncio.ensure_future(self._sync())
        return self._sync_waiting

    async def _sync(self) -> None:
        async with self._lock:
            self._sync_waiting = None
            for name in [n for n in self.shapes if n not in self.wanted]:
                del self.shapes[name]
            # submit first: new jobs queue while old ones hand their data over
            busy = self.handles.keys() | self._in_flight
            to_open = [n for n in self.wanted if n not in busy]
            to_close = [n for n in self.handles if n not in self.wanted]
            try:
                if to_open:
                    await self._start(to_open)
            finally:
                if to_close:
                    await self._stop(to_close)

    async def _start(self, names: list[str]) -> None:
        """Submit jobs for ``names``: job arrays where the system has them (as
        large as the site allows), else one job per submission.

        The submissions are shielded: when the caller is cancelled (a tick
        stopped by ``close()``, ``scale()`` or a new ``adapt()``), they finish
        all the same and their jobs are recorded, so nothing is queued unseen.
        """
        backend = self.table.backend
        size = await backend.max_array_size() if len(names) > 1 else 1
        shapes = [self.shapes.pop(n, None) for n in names]
        batches = shape_batches(names, shapes, size)
        self._in_flight.update(names)
        task = asyncio.ensure_future(self._submit(batches))
        self._submissions.add(task)
        task.add_done_callback(self._submissions.discard)
        await asyncio.shield(task)

    async def _submit(self, batches: list[Batch]) -> None:
        try:
            results = await asyncio.gather(
                *(self._submit_batch(batch, shape) for shape, batch in batches),
                return_exceptions=True,
            )
        finally:
            self._in_flight.difference_update(n for _, b in batches for n in b)
        errors: list[BaseException] = []
        for (_, batch), result in zip(batches, results, strict=True):
            if isinstance(result, BaseException):
                for name in batch:
                    self.wanted.pop(name, None)
                errors.append(result)
                continue
            for record in result:
                self.handles[record.name] = BatchJob(record)
            ids = ", ".join(r.job_id for r in result)
            logger.info("submitted %d job(s): %s", len(result), ids)
        if any(may_have_queued(e) for e in errors):
            # a submission that timed out may still have queued its job: find
            # it by the cluster's tag
            self.unconfirmed = True
            await cancel_unknown(self.table, self.tag)
        if errors:
            raise errors[0]

    async def _submit_batch(
        self, names: list[str], shape: JobShape | None
    ) -> list[JobRecord]:
        """One submission of the jobs ``names``, of ``shape``'s walltime (none:
        the pool's)."""
        walltime, note = (shape.walltime, shape.note) if shape else (None, "")
        script = self.render(names, walltime)
        return await self.table.submit(
            names, script, self.pool, self.options, walltime, note
        )

    async def submissions_done(self) -> None:
        """Wait for the submissions under way (started by a cancelled caller)."""
        if self._submissions:
            await asyncio.gather(*self._submissions, return_exceptions=True)

    def forget_all(self) -> None:
        """The cluster has closed: no job is wanted or held any more."""
        self.wanted.clear()
        self.handles.clear()

    async def _stop(self, names: list[str]) -> None:
        records = [self.table.records[n] for n in names if n in self.table.records]
        if not self.closing:
            # hand the workers' data over before their jobs go
            worker_names = [w for r in records for w in r.workers]
            if worker_names:
                await self.scheduler.retire(worker_names)
        try:
            await self.table.cancel(records)
        except BatchCommandError:
            if not self.closing:
                raise  # the handles stay: the next sync cancels them again
            # closing: the job manager reports what is left, and how to cancel it
        for name in names:
            job = self.handles.pop(name, None)
            if job is not None:
                await job.close()
        if self.closing:
            await wait_until_ended(self.table, records, timeout=15)


class Fleet(QueueSync):
    """The wanted jobs of one cluster and the handles of those submitted.

    Parameters
    ----------
    table
        the cluster's job table (all queue I/O).
    render
        the job script for a list of job names (an array script for several)
        and their walltime (``None``: the pool's).
    name
        the prefix of job names: jobs are ``name-0``, ``name-1``, ...
    suffixes
        what a job's name is followed by in its workers' names: ``[""]`` for
        one worker, ``["-0", "-1", ...]`` for several (see
        :func:`hpcdask.jobs.worker_suffixes`).
    scheduler
        what the fleet asks of the scheduler (retire, drain).
    tag
        the cluster's tag, stored with its jobs in the queue.
    pool
        the worker pool whose jobs these are ("": the cluster's default pool),
        with its ``options`` (which name the jobs' log files).
    """

    def __init__(
        self,
        table: JobTable,
        render: Render,
        name: str,
        suffixes: list[str],
        scheduler: SchedulerActions,
        tag: ClusterTag | None = None,
        pool: str = "",
        options: JobOptions | None = None,
    ) -> None:
        super().__init__(table, render, scheduler, tag, pool, options)
        self.name = name
        #: replace a job that ended while wanted (off while adapting: the
        #: policy decides)
        self.replace_ended = True
        self._spec: JobSpec = {"cls": BatchJob, "options": {}}
        if suffixes != [""]:
            self._spec["group"] = list(suffixes)
        self._counter = 0

    # -- the wanted set --------------------------------------------------------

    def next_name(self) -> str:
        """The next job name never used by this cluster (names are not reused:
        a replacement's workers must not collide with a dying job's)."""
        while (name := f"{self.name}-{self._counter}") in self.wanted or (
            name in self.table.records
        ):
            self._counter += 1
        return name

    def _add(self, shape: JobShape | None = None) -> None:
        self.wanted[name := self.next_name()] = self._spec
        self.shapes[name] = shape
        self._counter += 1

    def set_target(self, jobs: int) -> None:
        """Want ``jobs`` jobs. On the way down, jobs without connected workers go
        first (newest first), then the newest running ones."""
        names = list(self.wanted)
        if len(names) > jobs:

            def has_workers(name: str) -> bool:
                record = self.table.records.get(name)
                return bool(record and record.workers)

            order = [n for n in reversed(names) if not has_workers(n)]
            order += [n for n in reversed(names) if has_workers(n)]
            for name in order[: len(names) - jobs]:
                del self.wanted[name]
        if not self.closing:
            while len(self.wanted) < jobs:
                self._add()

    def remove_jobs_of(self, worker_names: Iterable[str]) -> None:
        """Stop wanting the jobs that run these workers (whole jobs only)."""
        for worker in worker_names:
            record = self.table.job_of_worker(worker)
            self.wanted.pop(record.name if record else worker, None)

    def job_ended(self, record: JobRecord) -> None:
        """A job the queue reports ended: drop it, and replace it if it was
        still wanted (not a failed start, not while adapting, not cancelled)."""
        if record.cancel_requested:
            return
        job = self.handles.pop(record.name, None)
        if job is not None:
            job.status = Status.closed
        self.forget_workers(record)
        if record.failed_start or not self.replace_ended:
            self.wanted.pop(record.name, None)
            return
        if record.name in self.wanted and not self.closing:
            status = record.status
            logger.warning(
                "job %s (%s) ended: %s%s; submitting a replacement",
                record.job_id,
                record.name,
                status.state.value,
                f" ({status.reason})" if status.reason else "",
            )
            del self.wanted[record.name]
            self._add()
            self.sync()

    def job_requeued(self, record: JobRecord) -> None:
        """A job the queue put back in the queue after it started: it still
        counts as wanted capacity; its old workers go."""
        reason = record.status.reason or record.state.value
        logger.warning("job %s (%s) requeued: %s", record.job_id, record.name, reason)
        self.forget_workers(record)

    def forget_workers(self, record: JobRecord) -> None:
        """Remove the workers still connected of a job the queue says ended
        (:meth:`job_ended`) or requeued: they are on a node cut off from the
        queue, and hold their tasks until their connections time out (minutes)
        and their names, which a restarted job's workers need."""
        if record.workers:
            self.scheduler.forget(sorted(record.workers))

    async def apply(self, decision: ScaleDecision) -> None:
        """Follow an adaptive decision: one submission for all new jobs, one
        cancel command for all jobs that go."""
        if decision.drain:
            self.scheduler.drain(decision.drain)
        for name in (*decision.cancel, *decision.retire):
            if self.wanted.pop(name, None) is not None:
                self.leaving.add(name)
        shapes = decision.shapes or (JobShape(decision.submit, 0.0),)
        for shape in shapes:
            for _ in range(shape.count):
                self._add(shape if shape.walltime else None)
        try:
            await self.sync()
        finally:
            self.leaving.difference_update(
                [name for name in self.leaving if name not in self.handles]
            )
