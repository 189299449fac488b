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

__all__ = ["JobTable", "failure_of", "stderr_tail", "wait_until_ended"]

logger = logging.getLogger(__name__)


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
    """

    def __init__(
        self,
        backend: Backend,
        options: JobOptions,
        pending_report_after: float = 60,
        on_ended: Callable[[JobRecord], None] = lambda record: None,
    ) -> None:
        self.backend = backend
        self.on_ended = on_ended
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

        A job ``name`` runs workers ``name`` (one process) or ``name-0``, ``name-1``
        (several); a name with ``$VARS`` is matched after the job's shell expanded it.
        """
        record = self.records.get(worker_name)
        if record is None:
            stem, _, suffix = worker_name.rpartition("-")
            if suffix.isdigit():
                record = self.records.get(stem)
        if record is not None:
            return record
        for name, pattern in self._patterns.items():
            if pattern.fullmatch(worker_name):
                return self.records[name]
        return None

    def failed_start_times(self) -> tuple[float, ...]:
        """When each failed start ended."""
        return tuple(r.status.end_time or 0.0 for r in self.failed_records)

    def last_start(self) -> float | None:
        """When a job last had its first worker connect."""
        starts = [r.connected_time for r in self.records.values() if r.connected_time]
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
        time_limit: float | None = None,
        note: str = "",
    ) -> list[JobRecord]:
        """Queue the jobs ``names`` with one submission of ``script``.

        Several names need a system with job arrays (``script`` is then an array
        script). ``time_limit`` is the walltime the script asks for, when it is
        not the cluster's, and ``note`` why. Raises JobSubmissionError; the
        records then show FAILED.
        """
        system = self.backend.system
        if len(names) > 1 and not system.supports_arrays:
            raise ValueError(f"{system.name} cannot submit {len(names)} jobs at once")
        now = time.time()
        submitting = JobStatus(
            JobState.SUBMITTING, submit_time=now, time_limit=time_limit
        )
        records = [JobRecord(name, status=submitting, note=note) for name in names]
        for record in records:
            self.records[record.name] = record
            if "$" in record.name:
                pattern = name_pattern(record.name).pattern + r"(?:-\d+)?"
                self._patterns[record.name] = re.compile(pattern)
        os.makedirs(self.log_directory, exist_ok=True)
        try:
            async with self._submit_slots:
                base_id = await self.backend.submit(script, self.log_directory)
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
            record.stdout_path, record.stderr_path = system.log_paths(
                self.options, job_id
            )
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
            record.observe(status, now)
            if record.state.is_terminal:
                if record.status.end_time is None:
                    record.status = record.status._replace(end_time=now)
                ended.append(record)
                self._note_ended(record)
        self._report_long_pending(now)
        return ended

    def _note_ended(self, record: JobRecord) -> None:
        if record.failed_start:
            failure = failure_of(record)
            self.failures.append(failure)
            self.failed_records.append(record)
            logger.error("%s", failure)
        self.on_ended(record)

    def _report_long_pending(self, now: float) -> None:
        """Say once per job when it has been pending for long, and why."""
        for record in self.live():
            submitted = record.status.submit_time
            if (
                record.state in QUEUED
                and record.name not in self._pending_reported
                and record.workers_seen == 0
                and submitted is not None
                and now - submitted > self.pending_report_after
            ):
                self._pending_reported.add(record.name)
                logger.warning(
                    "job %s pending for %.0f s: %s",
                    record.job_id,
                    now - submitted,
                    record.status.reason or record.state.value,
                )

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
