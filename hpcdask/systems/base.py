"""What a batch system adapter declares.

An adapter is pure: it turns options into directive lines and argv lists, and
command output into :class:`~hpcdask.models.JobStatus`. It never runs anything; the
job table runs its argv through :mod:`hpcdask.runner`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence

from hpcdask.config import JobOptions
from hpcdask.models import JobStatus


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
    """A batch system driven by commands: submit, status, cancel."""

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
