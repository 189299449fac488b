"""Batch-system adapters: pure translations between options, argv and output,
and the backends that run them."""

from __future__ import annotations

from hpcdask.config import sge_site
from hpcdask.options import JobOptions
from hpcdask.runner import SubprocessRunner
from hpcdask.systems.base import Backend, CommandBackend, QueueCommands
from hpcdask.systems.local import LocalBackend
from hpcdask.systems.pbs import PBS
from hpcdask.systems.sge import SGE
from hpcdask.systems.sge_backend import SGEBackend, SGEEnvironmentRunner
from hpcdask.systems.slurm import Slurm

__all__ = ["QUEUE_SYSTEMS", "make_backend", "queue_backend", "queue_system"]

#: the systems whose jobs live in a queue, by name.
QUEUE_SYSTEMS: dict[str, type[QueueCommands]] = {
    "slurm": Slurm,
    "pbs": PBS,
    "sge": SGE,
}


def queue_system(name: str) -> QueueCommands:
    """The adapter of the queue system ``name`` (``slurm``, ``pbs``, ``sge``)."""
    return QUEUE_SYSTEMS[name]()


def queue_backend(name: str, command_timeout: float = 60.0) -> CommandBackend:
    """The backend running the commands of the queue system ``name``; Grid
    Engine's run with SGE's environment (:mod:`hpcdask.systems.sge_backend`).
    Batch commands that run longer than ``command_timeout`` seconds are
    killed. No I/O happens here."""
    if name == "sge":
        root, cell = sge_site()
        runner = SGEEnvironmentRunner(root, cell)
        return SGEBackend(SGE(), runner, command_timeout)
    return CommandBackend(queue_system(name), SubprocessRunner(), command_timeout)


def make_backend(opts: JobOptions, command_timeout: float = 60.0) -> Backend:
    """The backend for ``opts.system``; no I/O happens here."""
    if opts.system in QUEUE_SYSTEMS:
        return queue_backend(opts.system, command_timeout)
    return LocalBackend(walltime=opts.walltime)
