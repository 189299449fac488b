"""What code written for dask-jobqueue reads of a cluster's internals.

dask-jobqueue clusters keep a ``_dummy_job`` (a job object never submitted) and
downstream projects read it: its ``job_header``, ``job_script()``, the worker
sizes. :class:`DummyJob` answers the same attributes from hpcdask's options. It
is deprecated: ``cluster.job_options`` and ``cluster.job_script()`` say the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hpcdask.options import JobOptions
from hpcdask.systems.base import BatchSystem, QueueCommands

__all__ = ["DummyJob"]

DEPRECATION = (
    "cluster._dummy_job is kept for code written for dask-jobqueue and will go: "
    "read cluster.job_options and cluster.job_script() instead"
)


@dataclass(frozen=True)
class DummyJob:
    """dask-jobqueue's ``Job`` attributes for a cluster's next job."""

    options: JobOptions
    system: BatchSystem
    script: Callable[[], str]

    def job_script(self) -> str:
        """The script the next job would be submitted with."""
        return self.script()

    @property
    def job_header(self) -> str:
        """The directive lines, as dask-jobqueue joins them."""
        return "\n".join(self.system.render_directives(self.options))

    @property
    def job_name(self) -> str:
        return self.options.job_name

    @property
    def name(self) -> str:
        return self.options.name

    @property
    def shebang(self) -> str:
        return self.options.shebang

    @property
    def log_directory(self) -> str:
        return self.options.log_directory

    @property
    def worker_cores(self) -> int:
        return self.options.cores

    @property
    def worker_memory(self) -> int:
        return self.options.memory

    @property
    def worker_processes(self) -> int:
        return self.options.processes

    @property
    def worker_process_threads(self) -> int:
        return self.options.threads_per_worker

    @property
    def worker_process_memory(self) -> int:
        return self.options.memory_per_worker

    @property
    def job_id(self) -> None:
        """Never submitted."""
        return None

    @property
    def submit_command(self) -> str:
        """The submit command, without the script's path."""
        if isinstance(self.system, QueueCommands):
            return " ".join(self.system.submit_argv("")).strip()
        return ""

    @property
    def cancel_command(self) -> str:
        if isinstance(self.system, QueueCommands):
            return " ".join(self.system.cancel_argv([]))
        return ""
