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


def queue_backend(name: str) -> CommandBackend:
    """The backend running the commands of the queue system ``name``; Grid
    Engine's run with SGE's environment (:mod:`hpcdask.systems.sge_backend`).
    No I/O happens here."""
    if name == "sge":
        root, cell = sge_site()
        return SGEBackend(SGE(), SGEEnvironmentRunner(root, cell))
    return CommandBackend(queue_system(name), SubprocessRunner())


def make_backend(opts: JobOptions) -> Backend:
    """The backend for ``opts.system``; no I/O happens here."""
    if opts.system in QUEUE_SYSTEMS:
        return queue_backend(opts.system)
    return LocalBackend(walltime=opts.walltime)
