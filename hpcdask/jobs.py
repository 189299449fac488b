"""The job table: which batch jobs exist, what the queue says about them.

All queue I/O of a cluster goes through here: submit, one batched status query per
poll, one cancel command per batch of ids, and the tail of a failed job's log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from hpcdask.config import JobOptions
from hpcdask.errors import BatchCommandError, JobFailedError, JobSubmissionError
from hpcdask.models import JobRecord, JobState, JobStatus
from hpcdask.runner import Runner
from hpcdask.systems.base import BatchSystem, QueueCommands
from hpcdask.validation import name_pattern

if TYPE_CHECKING:
    import pandas

logger = logging.getLogger(__name__)


class Backend(Protocol):
    """Submits, queries and cancels jobs of one batch system."""

    @property
    def system(self) -> BatchSystem:
        """How this backend's job scripts look."""
        ...

    async def submit(self, script: str, log_directory: str) -> str:
        """Queue ``script``; return its job id. Raises JobSubmissionError."""
        ...

    async def status(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """States of ``job_ids``; raises BatchCommandError if nobody answered."""
        ...

    async def cancel(self, job_ids: Sequence[str]) -> None:
        """Cancel ``job_ids``; ids that already ended are not an error."""
        ...


class CommandBackend:
    """A :class:`Backend` that runs a :class:`QueueCommands` system's argv."""

    def __init__(
        self, system: QueueCommands, runner: Runner, timeout: float = 60.0
    ) -> None:
        self.system = system
        self.runner = runner
        self.timeout = timeout

    async def submit(self, script: str, log_directory: str) -> str:
        fd, path = tempfile.mkstemp(prefix="hpcdask-", suffix=".sh")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(script)
            # from the log directory, so files the system writes there land there
            result = await self.runner.run(
                self.system.submit_argv(path), timeout=self.timeout, cwd=log_directory
            )
        finally:
            os.unlink(path)
        if not result.ok:
            raise JobSubmissionError(
                result.argv, result.returncode, result.stderr or result.stdout
            )
        try:
            return self.system.parse_job_id(result.stdout)
        except ValueError as e:
            raise JobSubmissionError(result.argv, result.returncode, str(e)) from e

    async def status(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        result = await self.runner.run(
            self.system.status_argv(job_ids), timeout=self.timeout
        )
        parsed = self.system.parse_status(result.stdout, job_ids)
        gone = self.system.gone_job_ids(result.returncode, result.stderr, job_ids)
        if not result.ok and not parsed and not gone:
            raise BatchCommandError(result.argv, result.returncode, result.stderr)
        out: dict[str, JobStatus] = {}
        for job_id in job_ids:
            if job_id in parsed:
                out[job_id] = parsed[job_id]
            elif result.ok or job_id in gone:
                out[job_id] = JobStatus(JobState.GONE)
            else:
                out[job_id] = JobStatus(JobState.UNKNOWN)
        return out

    async def cancel(self, job_ids: Sequence[str]) -> None:
        result = await self.runner.run(
            self.system.cancel_argv(job_ids), timeout=self.timeout
        )
        if not result.ok:
            # qdel exits non-zero for ids that already ended; the caller asks
            # the queue which of them are still live
            raise BatchCommandError(
                result.argv, result.returncode, result.stderr or result.stdout
            )


class JobTable:
    """The jobs of one cluster, keyed by their spec name.

    Parameters
    ----------
    backend
        where jobs are submitted.
    options
        the cluster's job options (log directory and job name name the logs).
    """

    def __init__(self, backend: Backend, options: JobOptions) -> None:
        self.backend = backend
        self.options = options
        self.log_directory = options.log_directory
        self.records: dict[str, JobRecord] = {}
        self.controller_error: str = ""
        self._patterns: dict[str, re.Pattern[str]] = {}
        self._submit_slots = asyncio.Semaphore(4)

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

    def stderr_tail(self, record: JobRecord, lines: int = 20) -> list[str]:
        """The last ``lines`` lines of the job's stderr log (empty if none)."""
        if not record.stderr_path:
            return []
        try:
            with open(record.stderr_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                text = f.read().decode(errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    def failure(self, record: JobRecord) -> JobFailedError:
        """The error that tells the user why ``record`` never ran workers."""
        return JobFailedError(
            record.job_id,
            record.state.value,
            record.reason
            or (f"exit code {record.exit_code}" if record.exit_code else ""),
            self.stderr_tail(record),
        )

    # -- I/O -------------------------------------------------------------------

    async def submit(self, names: Sequence[str], script: str) -> list[JobRecord]:
        """Queue the jobs ``names`` with one submission of ``script``.

        Several names need a system with job arrays (``script`` is then an array
        script). Raises JobSubmissionError; the records then show FAILED.
        """
        system = self.backend.system
        if len(names) > 1 and not system.supports_arrays:
            raise ValueError(f"{system.name} cannot submit {len(names)} jobs at once")
        now = time.time()
        records = [JobRecord(name=name, submit_time=now) for name in names]
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
                record.state = JobState.FAILED
            raise
        ids = (
            [base_id] if len(names) == 1 else system.array_job_ids(base_id, len(names))
        )
        for record, job_id in zip(records, ids, strict=True):
            record.job_id = job_id
            record.state = JobState.PENDING
            record.stdout_path, record.stderr_path = system.log_paths(
                self.options, job_id
            )
        return records

    async def poll(self) -> list[JobRecord]:
        """Ask the queue about every live job at once.

        Returns the records that reached a terminal state in this poll. When the
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
        ended = []
        for record in live:
            status = statuses.get(record.job_id)
            if status is None:
                continue
            record.apply(status)
            if record.state.is_terminal:
                if record.end_time is None:
                    record.end_time = time.time()
                ended.append(record)
        return ended

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
        if connected:
            record.workers.add(worker_name)
            record.workers_seen += 1
            record.connected_time = record.connected_time or time.time()
            if record.state in (JobState.SUBMITTING, JobState.PENDING):
                # a connected worker is proof the job runs; squeue may lag
                record.state = JobState.RUNNING
                record.reason = ""
                record.start_time = record.start_time or time.time()
        else:
            record.workers.discard(worker_name)
        return record

    def shown_state(self, record: JobRecord) -> tuple[str, str]:
        """The state and reason to show for ``record``: while the controller
        does not answer, a live job's state is ``unknown`` (the table keeps its
        last known state, and acts on nothing until the controller is back)."""
        if self.controller_error and not record.state.is_terminal:
            last = f"last known: {record.state.value}"
            if record.reason:
                last += f", {record.reason}"
            return JobState.UNKNOWN.value, last
        return record.state.value, record.reason

    def frame(self, now: float | None = None) -> pandas.DataFrame:
        """The job table as a DataFrame, newest job last."""
        import pandas

        now = time.time() if now is None else now
        shown = {name: self.shown_state(r) for name, r in self.records.items()}
        rows = [
            {
                "job_id": r.job_id,
                "name": r.name,
                "state": shown[r.name][0],
                "reason": shown[r.name][1],
                "workers": len(r.workers),
                "node": r.node,
                "submit_time": _timestamp(r.submit_time),
                "start_time": _timestamp(r.start_time),
                "end_time": _timestamp(r.end_time),
                "walltime_left": _timedelta(r.walltime_left(now)),
            }
            for r in self.records.values()
        ]
        columns = [
            "job_id", "name", "state", "reason", "workers", "node",
            "submit_time", "start_time", "end_time", "walltime_left",
        ]  # fmt: skip
        frame: pandas.DataFrame = pandas.DataFrame(rows, columns=columns)
        return frame


def _timestamp(value: float | None) -> object:
    import pandas

    return pandas.NaT if value is None else pandas.Timestamp(value, unit="s")


def _timedelta(value: float | None) -> object:
    import pandas

    return pandas.NaT if value is None else pandas.Timedelta(seconds=round(value))


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
