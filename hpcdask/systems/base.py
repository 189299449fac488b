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
import asyncio
import os
import tempfile
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import ClassVar, Protocol

from hpcdask.errors import BatchCommandError, JobSubmissionError
from hpcdask.forecast import QueueForecast
from hpcdask.models import ClusterTag, JobState, JobStatus, QueuedJob
from hpcdask.options import JobOptions
from hpcdask.runner import Completed, Runner, current_user

__all__ = ["Backend", "BatchSystem", "CommandBackend", "QueueCommands"]

#: job array size when the site's limit cannot be read (Slurm's default)
DEFAULT_MAX_ARRAY = 1001
#: status output longer than this (bytes) is parsed in a thread
_PARSE_IN_THREAD = 256 * 1024


class BatchSystem:
    """How a system's job scripts look: directives and where logs go."""

    #: short name, as in config keys: ``slurm``, ``pbs``, ``sge``.
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
    #: the index of an array's first element (Grid Engine counts from 1).
    first_array_index: int = 0

    #: the variable holding a task's node index (0, 1, ...) in a multi-node
    #: job, on each node; empty: the system runs single-node jobs only
    node_index_variable: str = ""
    #: whether tasks of :meth:`node_launcher` start in the script's directory
    #: with its environment (``srun`` does; ``pbsdsh`` starts them in the
    #: job's original environment, in the home directory)
    launcher_keeps_environment: bool = True

    def node_launcher(self, opts: JobOptions, all_or_none: bool = False) -> list[str]:
        """The words that run a command once on every node of a job with
        ``opts.nodes`` nodes (only used when ``opts.nodes > 1``); with
        ``all_or_none``, a task that fails ends the others, where the system
        can."""
        raise NotImplementedError(f"{self.name} runs single-node jobs only")

    def render_directives(
        self, opts: JobOptions, array_size: int = 1, tag: ClusterTag | None = None
    ) -> list[str]:
        """All directive lines of a job script, extra directives last; ``tag``
        (the cluster's) is stored with the job where the system can keep it."""
        tagged = tag is not None and self.can_tag(opts)
        lines = [
            f"{self.directive_prefix} {d}"
            for d in self.directives(opts, array_size)
            + (self.tag_directives(tag) if tag and tagged else [])
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

    def tag_directives(self, tag: ClusterTag) -> list[str]:
        """Directive bodies that store ``tag`` with the job (none by default)."""
        return []

    def can_tag(self, opts: JobOptions) -> bool:
        """Whether jobs with ``opts`` can carry the cluster's tag (not when the
        user's own directives use the field it is stored in)."""
        return True

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

    #: environment hpcdask's own commands run with (e.g. a time format that
    #: cannot be misread, whatever the user's environment says)
    command_env: ClassVar[Mapping[str, str]] = MappingProxyType({})
    #: at most this many job ids in one status or cancel command (an argument
    #: list has a size limit)
    ids_per_command: int = 2000

    @abc.abstractmethod
    def submit_argv(self, script_path: str) -> list[str]:
        """The command that queues the script at ``script_path``."""

    @abc.abstractmethod
    def status_argv(self, job_ids: Sequence[str]) -> list[str]:
        """One command asking the state of all ``job_ids`` (at most
        :attr:`ids_per_command` of them)."""

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

    def history_argv(self, job_ids: Sequence[str], stderr: str) -> list[str] | None:
        """A command asking how the jobs among ``job_ids`` that a status
        command's ``stderr`` called finished have ended (job history), if the
        system keeps it; its output goes to :meth:`parse_status`."""
        return None

    def config_argv(self) -> list[str] | None:
        """A command printing the site's limits (see :meth:`parse_max_array`)."""
        return None

    def parse_max_array(self, stdout: str) -> int | None:
        """The most jobs one array submission may hold, from ``config_argv``."""
        return None

    def controller_argv(self) -> list[str] | None:
        """A quick command whose output names the batch controller's host
        (``None``: the system has none)."""
        return None

    def parse_controller(self, stdout: str) -> str | None:
        """The controller's host name in :meth:`controller_argv`'s output."""
        return None

    def forecast_argvs(self, partitions: Sequence[str]) -> list[list[str]] | None:
        """Commands that read the queue's plan for jobs in ``partitions``
        (empty: the default one), when the system can say when a job would
        start; their outputs go to :meth:`parse_forecast`."""
        return None

    def parse_forecast(self, outputs: Sequence[str], now: float) -> QueueForecast:
        """The plan from the outputs of :meth:`forecast_argvs`, read at ``now``."""
        raise NotImplementedError(f"{self.name} has no start forecast")

    @abc.abstractmethod
    def list_argv(self, user: str) -> list[str]:
        """One command listing the jobs of ``user``."""

    @abc.abstractmethod
    def parse_listing(self, stdout: str, user: str) -> list[QueuedJob]:
        """The jobs of ``user`` in ``list_argv``'s output, with their names and
        their clusters' tags."""


class Backend(Protocol):
    """Submits, queries and cancels jobs of one batch system."""

    @property
    def system(self) -> BatchSystem:
        """How this backend's job scripts look."""
        ...

    async def submit(self, script: str, log_directory: str) -> str:
        """Queue ``script``; return its job id. Raises JobSubmissionError."""
        ...

    async def controller_host(self) -> str | None:
        """The batch controller's host name, if the system has one and says it."""
        ...

    async def status(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """States of ``job_ids``; raises BatchCommandError if nobody answered."""
        ...

    async def cancel(self, job_ids: Sequence[str]) -> None:
        """Cancel ``job_ids``; ids that already ended are not an error."""
        ...

    async def max_array_size(self) -> int:
        """The most jobs one submission may start."""
        ...

    async def jobs_tagged(self, tag: ClusterTag) -> list[QueuedJob]:
        """The live jobs in the queue that carry ``tag``."""
        ...


class CommandBackend:
    """A :class:`Backend` that runs a :class:`QueueCommands` system's argv."""

    def __init__(
        self, system: QueueCommands, runner: Runner, timeout: float = 60.0
    ) -> None:
        self.system = system
        self.runner = runner
        self.timeout = timeout
        self._max_array: int | None = None

    async def submit(self, script: str, log_directory: str) -> str:
        fd, path = tempfile.mkstemp(prefix="hpcdask-", suffix=".sh")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(script)
            # from the log directory, so files the system writes there land there
            result = await self._run(self.system.submit_argv(path), cwd=log_directory)
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

    async def controller_host(self) -> str | None:
        argv = self.system.controller_argv()
        if argv is None:
            return None
        # a hint for the scheduler's address, never a reason to fail (nor to
        # wait long: the cluster's start waits for it)
        result = await self.runner.run(
            argv, timeout=min(self.timeout, 5.0), env=self.system.command_env
        )
        return self.system.parse_controller(result.stdout) if result.ok else None

    async def _run(self, argv: Sequence[str], cwd: str | None = None) -> Completed:
        return await self.runner.run(
            argv, timeout=self.timeout, cwd=cwd, env=self.system.command_env
        )

    def _chunks(self, job_ids: Sequence[str]) -> list[Sequence[str]]:
        size = self.system.ids_per_command
        return [job_ids[i : i + size] for i in range(0, len(job_ids), size)]

    async def max_array_size(self) -> int:
        """The most jobs one submission may start (asked of the site once)."""
        if self._max_array is None:
            self._max_array = 1
            if self.system.supports_arrays:
                argv = self.system.config_argv()
                result = await self._run(argv) if argv else None
                limit = self.system.parse_max_array(result.stdout) if result else None
                self._max_array = limit or DEFAULT_MAX_ARRAY
        return self._max_array

    async def status(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """States of ``job_ids``: one command per :attr:`QueueCommands.ids_per_command`
        ids; raises BatchCommandError when the controller did not answer."""
        out: dict[str, JobStatus] = {}
        for chunk in self._chunks(job_ids):
            out.update(await self._status(chunk))
        return out

    async def _status(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        result = await self._run(self.system.status_argv(job_ids))
        parse = self.system.parse_status
        if len(result.stdout) > _PARSE_IN_THREAD:
            # thousands of jobs: parse beside the event loop the scheduler runs on
            parsed = dict(await asyncio.to_thread(parse, result.stdout, job_ids))
        else:
            parsed = dict(parse(result.stdout, job_ids))
        history = self.system.history_argv(job_ids, result.stderr)
        if history is not None:
            ended = await self._run(history)
            parsed.update(self.system.parse_status(ended.stdout, job_ids))
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
        for chunk in self._chunks(job_ids):
            result = await self._run(self.system.cancel_argv(chunk))
            if not result.ok:
                # qdel exits non-zero for ids that already ended; the caller
                # asks the queue which of them are still live
                raise BatchCommandError(
                    result.argv, result.returncode, result.stderr or result.stdout
                )

    async def jobs_tagged(self, tag: ClusterTag) -> list[QueuedJob]:
        return [j for j in await self.list_jobs(current_user()) if j.tag == tag]

    async def forecast(
        self, partitions: Sequence[str], now: float
    ) -> QueueForecast | None:
        """The queue's plan for jobs in ``partitions`` (``None``: the system
        cannot say); raises BatchCommandError when a command fails."""
        argvs = self.system.forecast_argvs(partitions)
        if argvs is None:
            return None
        outputs = []
        for argv in argvs:
            result = await self._run(argv)
            if not result.ok:
                raise BatchCommandError(result.argv, result.returncode, result.stderr)
            outputs.append(result.stdout)
        if sum(len(out) for out in outputs) > _PARSE_IN_THREAD:
            return await asyncio.to_thread(self.system.parse_forecast, outputs, now)
        return self.system.parse_forecast(outputs, now)

    async def list_jobs(self, user: str) -> list[QueuedJob]:
        """The live jobs of ``user``, with their clusters' tags; one command."""
        result = await self._run(self.system.list_argv(user))
        if not result.ok:
            raise BatchCommandError(result.argv, result.returncode, result.stderr)
        return [
            job
            for job in self.system.parse_listing(result.stdout, user)
            if not job.status.state.is_terminal
        ]
