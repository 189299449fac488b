"""The exceptions hpcdask raises.

::

    HPCDaskError                    base of everything below
    ├── BatchCommandError           a batch command (sbatch, qsub, squeue...) failed
    │   └── JobSubmissionError      the queue refused a job (bad partition, account...)
    ├── JobFailedError              a job ended before its workers connected
    ├── CommandError                the hpcdask command cannot do what was asked
    └── MPIClusterError             the MPI launcher cannot set a cluster up
        └── WorldTooSmallError      too few ranks for the roles asked (a ValueError)

:mod:`hpcdask.mpi` re-exports the last two.

Bad arguments raise ``ValueError`` (subclass :class:`InvalidOptionError`), named
after the argument, before anything is submitted.
"""

from __future__ import annotations

from collections.abc import Sequence


class HPCDaskError(Exception):
    """Base class of hpcdask's own errors."""


class InvalidOptionError(HPCDaskError, ValueError):
    """An argument or config value that cannot reach a job script safely."""

    def __init__(self, option: str, value: object, why: str) -> None:
        self.option = option
        self.value = value
        self.why = why
        super().__init__(f"invalid {option}={value!r}: {why}")


class BatchCommandError(HPCDaskError):
    """A batch-system command exited non-zero or could not be run."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        message = stderr.strip() or f"exit code {returncode}"
        super().__init__(f"{argv[0]} failed: {message}")


class JobSubmissionError(BatchCommandError):
    """The batch system refused to queue a job."""


class JobFailedError(HPCDaskError):
    """A batch job ended before any of its Dask workers connected."""

    def __init__(
        self, job_id: str, state: str, reason: str, log_tail: Sequence[str]
    ) -> None:
        self.job_id = job_id
        self.state = state
        self.reason = reason
        self.log_tail = list(log_tail)
        lines = [f"job {job_id} ended ({state}) before its workers connected"]
        if reason:
            lines[0] += f"; queue reason: {reason}"
        if self.log_tail:
            lines.append("last lines of its stderr log:")
            lines.extend("    " + line for line in self.log_tail)
        else:
            lines.append("its stderr log is empty or missing")
        super().__init__("\n".join(lines))


class CommandError(HPCDaskError):
    """A problem with what the user asked the ``hpcdask`` command, reported as
    one line."""


class MPIClusterError(HPCDaskError):
    """The MPI cluster cannot be set up as asked."""


class WorldTooSmallError(MPIClusterError, ValueError):
    """The communicator has too few ranks for the roles asked for."""

    def __init__(
        self,
        size: int,
        needed: int,
        roles: str,
        unit: str = "MPI ranks",
        start: str = "mpirun -np",
    ) -> None:
        self.size = size
        self.needed = needed
        super().__init__(
            f"hpcdask's launcher needs at least {needed} {unit} ({roles}); "
            f"this run has {size}: start it with e.g. `{start} {needed} ...`"
        )
