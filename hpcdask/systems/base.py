"""What a batch system adapter declares, and the backend that runs its commands.

An adapter (:class:`BatchSystem`, :class:`QueueCommands`) is pure: it turns
options into directive lines and argv lists, and command output into
:class:`~hpcdask.models.JobStatus`. It never runs anything. A :class:`Backend`
submits, queries and cancels jobs: :class:`CommandBackend` runs an adapter's argv
through :mod:`hpcdask.runner`; the local backend (:mod:`hpcdask.systems.local`)
runs job scripts as processes.
"""

from __future__ import annotations

import abc
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Protocol

from hpcdask.errors import BatchCommandError, JobSubmissionError
from hpcdask.models import JobState, JobStatus, QueuedJob
from hpcdask.options import JobOptions
from hpcdask.runner import Runner

__all__ = ["Backend", "BatchSystem", "CommandBackend", "QueueCommands"]


class BatchSystem:
    """How a system's job scripts look: directives and where logs go."""

    #: short name, as in config keys: ``slurm``, ``pbs``.
    name: str = ""
    #: prefix of directive lines, e.g. ``#SBATCH``.
    directive_prefix: str = ""
    #: variables that hold the job id inside a job, first one set wins.
    job_id_variables: tuple[str, ...] = ()
    #: whether the system writes the job's stdout/stderr where we ask
    #: (``False``: the script redirects them itself).
    writes_logs: bool = True

    #: whether one submission can start several jobs (a job array).
    supports_arrays: bool = False
    #: variables holding the array index inside an array job, first set wins.
    array_index_variables: tuple[str, ...] = ()

    def render_directives(self, opts: JobOptions, array_size: int = 1) -> list[str]:
        """All directive lines of a job script, extra directives last."""
        lines = [
            f"{self.directive_prefix} {d}" for d in self.directives(opts, array_size)
        ]
        lines += [f"{self.directive_prefix} {d}" for d in opts.job_extra_directives]
        return [
            line
            for line in lines
            if not any(skip in line for skip in opts.job_directives_skip)
        ]

    def directives(self, opts: JobOptions, array_size: int = 1) -> list[str]:
        """Directive bodies (without the prefix) built from the options."""
        return []

    def array_job_ids(self, base_id: str, size: int) -> list[str]:
        """The ids of the elements of an array submitted as ``base_id``."""
        raise NotImplementedError(f"{self.name} has no job arrays")

    def log_paths(self, opts: JobOptions, job_id: str) -> tuple[str, str]:
        """Where the job's stdout and stderr end up."""
        stem = f"{opts.log_directory}/{opts.job_name}-{job_id}"
        return f"{stem}.out", f"{stem}.err"


class QueueCommands(BatchSystem, abc.ABC):
    """A batch system driven by commands: submit, status, cancel, and the
    user-wide listing and cancel of the ``hpcdask`` command."""

    @abc.abstractmethod
    def submit_argv(self, script_path: str) -> list[str]:
        """The command that queues the script at ``script_path``."""

    @abc.abstractmethod
    def status_argv(self, job_ids: Sequence[str]) -> list[str]:
        """One command asking the state of all ``job_ids``."""

    @abc.abstractmethod
    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        """One command cancelling all ``job_ids``."""

    @abc.abstractmethod
    def parse_job_id(self, stdout: str) -> str:
        """The job id from the submit command's output."""

    @abc.abstractmethod
    def parse_status(
        self, stdout: str, job_ids: Sequence[str]
    ) -> Mapping[str, JobStatus]:
        """States of the jobs found in the status command's output."""

    def gone_job_ids(
        self, returncode: int, stderr: str, job_ids: Sequence[str]
    ) -> set[str]:
        """Which of ``job_ids`` a failed status command said it does not know."""
        return set()

    @abc.abstractmethod
    def list_argv(self, user: str, names: Sequence[str] | None) -> list[str]:
        """One command listing the jobs of ``user`` (those named ``names``)."""

    @abc.abstractmethod
    def parse_listing(self, stdout: str, user: str) -> list[QueuedJob]:
        """The jobs of ``user`` in ``list_argv``'s output, with their names."""

    @abc.abstractmethod
    def cancel_by_name_argv(
        self, user: str, name: str, jobs: Sequence[QueuedJob]
    ) -> list[str]:
        """ONE command cancelling the queued jobs of ``user`` named ``name``
        (``jobs``: what the listing found of them)."""


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

    async def list_jobs(
        self, user: str, names: Sequence[str] | None = None
    ) -> list[QueuedJob]:
        """The live jobs of ``user`` (named ``names``, when given); one command."""
        result = await self.runner.run(
            self.system.list_argv(user, names), timeout=self.timeout
        )
        if not result.ok:
            raise BatchCommandError(result.argv, result.returncode, result.stderr)
        return [
            job
            for job in self.system.parse_listing(result.stdout, user)
            if not job.status.state.is_terminal and (not names or job.name in names)
        ]

    async def cancel_by_name(
        self, user: str, name: str, dry_run: bool = False
    ) -> list[QueuedJob]:
        """Cancel all live jobs of ``user`` named ``name`` with one command;
        return what was found."""
        jobs = await self.list_jobs(user, [name])
        if jobs and not dry_run:
            result = await self.runner.run(
                self.system.cancel_by_name_argv(user, name, jobs), timeout=self.timeout
            )
            if not result.ok:
                raise BatchCommandError(result.argv, result.returncode, result.stderr)
        return jobs
