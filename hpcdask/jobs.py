"""The job table: which batch jobs exist, what the queue says about them.

All queue I/O of a cluster goes through here: submit, one batched status query per
poll, one cancel command per batch of ids, and the tail of a failed job's log. The
table is also the one keeper of failed starts (jobs that ended before their
workers connected) and says in the log when a job has waited long in the queue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence

from hpcdask.errors import BatchCommandError, JobFailedError
from hpcdask.models import QUEUED, JobRecord, JobState, JobStatus
from hpcdask.options import JobOptions
from hpcdask.systems.base import Backend
from hpcdask.validation import name_pattern

__all__ = [
    "JobTable",
    "cancel_strays",
    "failure_of",
    "stderr_tail",
    "wait_until_ended",
    "worker_suffixes",
]

logger = logging.getLogger(__name__)


def _new_records(
    names: Sequence[str], pool: str, time_limit: float | None, note: str
) -> list[JobRecord]:
    """The records of jobs being submitted now (``time_limit``: a walltime
    chosen for them, ``note``: why)."""
    submitting = JobStatus(
        JobState.SUBMITTING, submit_time=time.time(), time_limit=time_limit
    )
    return [JobRecord(name, status=submitting, pool=pool, note=note) for name in names]


class JobTable:
    """The jobs of one cluster, keyed by their name.

    Parameters
    ----------
    backend
        where jobs are submitted.
    options
        the cluster's job options (log directory and job name name the logs).
    pending_report_after
        seconds a job may wait in the queue before the log says so, and why.
    on_ended
        called with every job the queue reports ended, by whichever poll saw it
        (also the one inside :meth:`cancel`).
    on_requeued
        called with every job the queue put back in the queue after it had
        started (a node failure, a preemption, ``scontrol requeue``).
    """

    def __init__(
        self,
        backend: Backend,
        options: JobOptions,
        pending_report_after: float = 60,
        on_ended: Callable[[JobRecord], None] = lambda record: None,
        on_requeued: Callable[[JobRecord], None] = lambda record: None,
    ) -> None:
        self.backend = backend
        self.on_ended = on_ended
        self.on_requeued = on_requeued
        self.options = options
        self.log_directory = options.log_directory
        self.pending_report_after = pending_report_after
        self.records: dict[str, JobRecord] = {}
        #: why the controller did not answer the last poll ("" when it did)
        self.controller_error: str = ""
        #: jobs that ended before their workers connected, oldest first
        self.failures: list[JobFailedError] = []
        self.failed_records: list[JobRecord] = []
        self._patterns: dict[str, re.Pattern[str]] = {}
        self._submit_slots = asyncio.Semaphore(4)
        self._pending_reported: set[str] = set()

    # -- queries ---------------------------------------------------------------

    def live(self) -> list[JobRecord]:
        """Jobs that are queued, running, or being submitted."""
        return [r for r in self.records.values() if not r.state.is_terminal]

    def job_of_worker(self, worker_name: str) -> JobRecord | None:
        """The job whose workers are called ``worker_name``.

        A job ``name`` runs workers ``name`` (one process), ``name-0``, ``name-1``
        (several processes, or one per node of a multi-node job) or ``name-0-0``,
        ``name-0-1``, ... (``name-<node>-<process>``); see
        :func:`worker_suffixes`. A name with ``$VARS`` is matched after the
        job's shell expanded it.
        """
        stem = worker_name
        for _ in range(3):  # the name itself, then without one or two suffixes
            record = self.records.get(stem)
            if record is not None:
                return record
            stem, _, suffix = stem.rpartition("-")
            if not suffix.isdigit():
                break
        for name, pattern in self._patterns.items():
            if pattern.fullmatch(worker_name):
                return self.records[name]
        return None

    def failed_start_times(self, pool: str | None = None) -> tuple[float, ...]:
        """When each failed start (of ``pool``'s jobs, if given) ended."""
        return tuple(
            r.status.end_time or 0.0
            for r in self.failed_records
            if pool is None or r.pool == pool
        )

    def last_start(self, pool: str | None = None) -> float | None:
        """When a job (of ``pool``, if given) last had its first worker connect."""
        starts = [
            r.connected_time
            for r in self.records.values()
            if r.connected_time and (pool is None or r.pool == pool)
        ]
        return max(starts) if starts else None

    def startup_time(self, recent: int = 20) -> float:
        """Median charged start-up of recent jobs: job start to connected worker."""
        times = sorted(
            r.connected_time - r.status.start_time
            for r in list(self.records.values())[-recent:]
            if r.connected_time is not None and r.status.start_time is not None
        )
        return times[len(times) // 2] if times else 0.0

    def shown_status(self, record: JobRecord) -> JobStatus:
        """The status to show for ``record``: while the controller does not
        answer, a live job shows as ``unknown`` with its last known state as the
        reason (the table keeps that state, and acts on nothing until the
        controller is back)."""
        status = record.status
        if self.controller_error and not status.state.is_terminal:
            last = f"last known: {status.state.value}"
            if status.reason:
                last += f", {status.reason}"
            return status._replace(state=JobState.UNKNOWN, reason=last)
        return status

    # -- I/O -------------------------------------------------------------------

    async def submit(
        self,
        names: Sequence[str],
        script: str,
        pool: str = "",
        options: JobOptions | None = None,
        time_limit: float | None = None,
        note: str = "",
    ) -> list[JobRecord]:
        """Queue the jobs ``names`` of ``pool`` with one submission of ``script``.

        Several names need a system with job arrays (``script`` is then an array
        script). ``options`` are the pool's (default: the table's), which name
        the log files; ``time_limit`` is the walltime the script asks for, when
        it is not the pool's, and ``note`` why. Raises JobSubmissionError; the
        records then show FAILED.
        """
        opts = options or self.options
        system = self.backend.system
        if len(names) > 1 and not system.supports_arrays:
            raise ValueError(f"{system.name} cannot submit {len(names)} jobs at once")
        limit = opts.walltime if time_limit is None else time_limit
        records = _new_records(names, pool, limit, note)
        for record in records:
            self.records[record.name] = record
            if "$" in record.name:
                pattern = name_pattern(record.name).pattern + r"(?:-\d+){0,2}"
                self._patterns[record.name] = re.compile(pattern)
        os.makedirs(opts.log_directory, exist_ok=True)
        try:
            async with self._submit_slots:
                base_id = await self.backend.submit(script, opts.log_directory)
        except Exception:
            for record in records:
                record.status = record.status._replace(state=JobState.FAILED)
            raise
        ids = (
            [base_id] if len(names) == 1 else system.array_job_ids(base_id, len(names))
        )
        for record, job_id in zip(records, ids, strict=True):
            record.job_id = job_id
            record.status = record.status._replace(state=JobState.PENDING)
            record.stdout_path, record.stderr_path = system.log_paths(opts, job_id)
        return records

    async def poll(self) -> list[JobRecord]:
        """Ask the queue about every live job at once.

        Returns the records that reached a terminal state in this poll, after
        handing each to ``on_ended``; those that ended before their workers
        connected are recorded as failed starts (:attr:`failures`). When the
        controller does not answer, every job keeps its last known state.
        """
        live = [r for r in self.live() if r.job_id]
        if not live:
            return []
        try:
            statuses = await self.backend.status([r.job_id for r in live])
        except BatchCommandError as e:
            if self.controller_error != str(e):
                logger.warning("batch controller not answering: %s", e)
            self.controller_error = str(e)
            return []
        if self.controller_error:
            logger.info("batch controller answering again")
        self.controller_error = ""
        now = time.time()
        ended = []
        for record in live:
            status = statuses.get(record.job_id)
            if status is None:
                continue
            requeues = record.requeues
            record.observe(status, now)
            if record.requeues > requeues:
                self.on_requeued(record)
            if record.state.is_terminal:
                if record.status.end_time is None:
                    record.status = record.status._replace(end_time=now)
                ended.append(record)
                self._note_ended(record)
        report_long_pending(
            self.live(), now, self.pending_report_after, self._pending_reported
        )
        return ended

    def _note_ended(self, record: JobRecord) -> None:
        if record.failed_start:
            failure = failure_of(record)
            self.failures.append(failure)
            self.failed_records.append(record)
            logger.error("%s", failure)
        self.on_ended(record)

    async def cancel(self, records: Iterable[JobRecord], attempts: int = 4) -> None:
        """Cancel jobs with one command.

        When the command fails, the queue is asked which jobs are still live and
        only those are cancelled again, with backoff; the last failure raises.
        """
        live = [r for r in records if r.job_id and not r.state.is_terminal]
        for record in live:
            record.cancel_requested = True
        for attempt in range(attempts):
            if not live:
                return
            try:
                await self.backend.cancel([r.job_id for r in live])
                return
            except BatchCommandError as e:
                await self.poll()
                live = [r for r in live if not r.state.is_terminal]
                if live and attempt == attempts - 1:
                    raise
                if live:
                    logger.warning("cancel failed (%s); retrying", e)
                    await asyncio.sleep(0.5 * 2**attempt)

    def note_worker(self, worker_name: str, connected: bool) -> JobRecord | None:
        """Record that a worker of some job connected or left."""
        record = self.job_of_worker(worker_name)
        if record is None:
            return None
        if not connected:
            record.workers.discard(worker_name)
            return record
        now = time.time()
        record.workers.add(worker_name)
        record.workers_seen += 1
        record.connected_time = record.connected_time or now
        if record.state in (JobState.SUBMITTING, JobState.PENDING):
            # a connected worker is proof the job runs; squeue may lag
            record.status = record.status._replace(
                state=JobState.RUNNING,
                reason="",
                start_time=record.status.start_time or now,
            )
        return record


async def wait_until_ended(
    table: JobTable, records: Sequence[JobRecord], timeout: float, interval: float = 0.5
) -> bool:
    """Poll until ``records`` all ended; False if some are still live at timeout."""
    deadline = time.monotonic() + timeout
    while any(not r.state.is_terminal for r in records):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
        await table.poll()
    return True


async def cancel_strays(table: JobTable) -> None:
    """As the cluster closes, after its fleets cancelled theirs: the jobs no
    fleet holds (retired, or ending on their own) that the last poll still
    saw live. Look again, and cancel those that are."""
    stray = [r for r in table.live() if r.job_id]
    if stray:
        await table.poll()
        stray = [r for r in stray if not r.state.is_terminal]
    if stray:
        await table.cancel(stray)
        await wait_until_ended(table, stray, timeout=15)


def report_long_pending(
    live: Iterable[JobRecord], now: float, after: float, reported: set[str]
) -> None:
    """Say once per job (``reported`` holds those said) when it has been
    queued for more than ``after`` seconds, and why."""
    for record in live:
        submitted = record.status.submit_time
        if (
            record.state in QUEUED
            and record.name not in reported
            and record.workers_seen == 0
            and submitted is not None
            and now - submitted > after
        ):
            reported.add(record.name)
            logger.warning(
                "job %s pending for %.0f s: %s",
                record.job_id,
                now - submitted,
                record.status.reason or record.state.value,
            )


def stderr_tail(path: str, lines: int = 20) -> list[str]:
    """The last ``lines`` lines of a job's stderr log (empty if there is none)."""
    if not path:
        return []
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def failure_of(record: JobRecord) -> JobFailedError:
    """The error that tells the user why ``record`` never ran workers."""
    status = record.status
    return JobFailedError(
        record.job_id,
        status.state.value,
        status.reason or (f"exit code {status.exit_code}" if status.exit_code else ""),
        stderr_tail(record.stderr_path),
    )


def worker_suffixes(opts: JobOptions) -> list[str]:
    """What follows a job's name in the names of its workers.

    ``[""]`` for one worker; ``-<process>`` for several processes
    (``dask worker --nworkers`` adds it), ``-<node>`` for several nodes (the
    job script adds the node's index), both for both: a 2-node job of 2
    processes runs ``JOB-0-0``, ``JOB-0-1``, ``JOB-1-0``, ``JOB-1-1``.
    """
    nodes = [f"-{n}" for n in range(opts.nodes)] if opts.nodes > 1 else [""]
    processes = [f"-{p}" for p in range(opts.processes)] if opts.processes > 1 else [""]
    return [node + process for node in nodes for process in processes]
