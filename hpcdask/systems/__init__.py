"""Batch-system adapters: pure translations between options, argv and output,
and the backends that run them."""

from __future__ import annotations

from hpcdask.options import JobOptions
from hpcdask.runner import SubprocessRunner
from hpcdask.systems.base import Backend, CommandBackend, QueueCommands
from hpcdask.systems.local import LocalBackend
from hpcdask.systems.pbs import PBS
from hpcdask.systems.slurm import Slurm

__all__ = ["make_backend", "queue_system"]

#: the systems whose jobs live in a queue, by name.
QUEUE_SYSTEMS: dict[str, type[QueueCommands]] = {"slurm": Slurm, "pbs": PBS}


def queue_system(name: str) -> QueueCommands:
    """The adapter of the queue system ``name`` (``slurm``, ``pbs``)."""
    return QUEUE_SYSTEMS[name]()


def make_backend(opts: JobOptions) -> Backend:
    """The backend for ``opts.system``; no I/O happens here."""
    if opts.system in QUEUE_SYSTEMS:
        return CommandBackend(queue_system(opts.system), SubprocessRunner())
    return LocalBackend(walltime=opts.walltime)
