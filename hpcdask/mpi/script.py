"""Render batch scripts for MPI runs: a cluster's job options, one ``mpirun``.

``SLURMCluster(...).mpi_job_script("analysis.py", nodes=2)`` gives the script of a
non-interactive run of ``analysis.py`` with the same queue, account, walltime,
memory, threads per worker, prologue and extra directives as the notebook's
cluster: one batch job whose ``mpirun`` starts ``hpcdask-mpi run`` on every rank
(:mod:`hpcdask.mpi.cli`); with ``launcher="srun"``, Slurm's ``srun`` starts
``hpcdask-srun run``, which needs no MPI (:mod:`hpcdask.mpi.slurm`). Pure
functions: nothing is written or submitted here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from hpcdask.errors import InvalidOptionError
from hpcdask.format import format_memory_limit
from hpcdask.mpi.roles import MIN_RANKS
from hpcdask.options import JobOptions
from hpcdask.script import log_redirection_lines
from hpcdask.systems.base import BatchSystem
from hpcdask.validation import shell_word

__all__ = ["LAUNCHERS", "mpi_launch_argv", "render_mpi_job_script"]

#: launchers the script may use; ``srun`` (no MPI: ``hpcdask-srun``) only under Slurm.
LAUNCHERS = ("mpirun", "mpiexec", "srun")

# protocols whose credentials a batch run does not have
_NEEDS_CREDENTIALS = ("tls://", "wss://")


def _check_counts(nodes: object, ntasks: object) -> tuple[int, int | None]:
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise InvalidOptionError("nodes", nodes, "expected a positive integer")
    if ntasks is None:
        return nodes, None
    if isinstance(ntasks, bool) or not isinstance(ntasks, int):
        raise InvalidOptionError("ntasks", ntasks, "expected an integer")
    if ntasks < MIN_RANKS:
        raise InvalidOptionError(
            "ntasks",
            ntasks,
            f"an MPI run needs at least {MIN_RANKS} ranks "
            "(scheduler, client, one worker)",
        )
    if ntasks < nodes:
        raise InvalidOptionError("ntasks", ntasks, f"fewer ranks than nodes ({nodes})")
    return nodes, ntasks


def default_ntasks(opts: JobOptions, nodes: int) -> int:
    """As many ranks as the cluster's jobs would have worker processes, at least 3."""
    return max(MIN_RANKS, nodes * opts.processes)


def mpi_launch_argv(
    opts: JobOptions,
    script: str,
    args: Sequence[str] = (),
    *,
    ntasks: int,
    launcher: str = "mpirun",
    launcher_args: Sequence[str] = (),
    mpi_args: Sequence[str] = (),
    module: bool = False,
) -> list[str]:
    """The launch command as shell words: ``mpirun -np N python -m hpcdask.mpi
    run [options] script [args]`` (``srun -n N python -m hpcdask.mpi.srun run
    ...``), worker settings taken from ``opts``.

    ``script`` is a path, or ``package.module:function``, or with ``module=True``
    a module run as ``python -m`` would. ``mpi_args`` are further ``hpcdask-mpi
    run`` options (e.g. ``["--no-dashboard"]``).
    """
    if launcher not in LAUNCHERS:
        raise InvalidOptionError("launcher", launcher, f"expected one of {LAUNCHERS}")
    count_flag = "-n" if launcher == "srun" else "-np"
    words = [launcher, count_flag, str(ntasks)]
    words += [shell_word("launcher_args", a) for a in launcher_args]
    command = "hpcdask.mpi.srun" if launcher == "srun" else "hpcdask.mpi"
    words += [shell_word("python", opts.python), "-m", command, "run"]
    words += [
        "--nthreads",
        str(opts.threads_per_worker),
        "--memory-limit",
        format_memory_limit(opts.memory_per_worker),
        "--nanny" if opts.nanny else "--no-nanny",
    ]
    if opts.interface:
        words += ["--interface", shell_word("interface", opts.interface)]
    if opts.local_directory:
        words += [
            "--local-directory",
            shell_word("local_directory", opts.local_directory),
        ]
    if opts.protocol and opts.protocol not in _NEEDS_CREDENTIALS:
        words += ["--protocol", shell_word("protocol", opts.protocol)]
    words += [shell_word("mpi_args", a) for a in mpi_args]
    if module:
        words += ["-m", shell_word("script", script)]
    else:
        words.append(shell_word("script", script))
    words += [shell_word("args", a) for a in args]
    return words


def _mpi_options(
    opts: JobOptions, system: BatchSystem, nodes: int, ntasks: int
) -> JobOptions:
    """``opts`` with the resources of ``ntasks`` ranks on ``nodes`` nodes.

    Each rank gets the threads of one of the cluster's worker processes; memory
    stays per node, as for the cluster's jobs.
    """
    threads = opts.threads_per_worker
    if system.name == "slurm":
        extra = (f"--nodes={nodes}", f"--ntasks={ntasks}")
        return dataclasses.replace(
            opts,
            job_cpu=threads,
            job_extra_directives=(*extra, *opts.job_extra_directives),
        )
    if system.name == "pbs" and opts.resource_spec is None:
        per_node = math.ceil(ntasks / nodes)
        memory_mb = math.ceil(opts.memory / 2**20)
        spec = (
            f"select={nodes}:ncpus={per_node * threads}:mpiprocs={per_node}"
            f":ompthreads={threads}:mem={memory_mb}mb"
        )
        return dataclasses.replace(opts, resource_spec=spec)
    return opts


def render_mpi_job_script(
    opts: JobOptions,
    system: BatchSystem,
    script: str,
    args: Sequence[str] = (),
    *,
    nodes: int = 1,
    ntasks: int | None = None,
    launcher: str = "mpirun",
    launcher_args: Sequence[str] = (),
    mpi_args: Sequence[str] = (),
    module: bool = False,
) -> str:
    """The batch script of one MPI run of ``script`` with a cluster's options.

    Parameters
    ----------
    opts, system
        the cluster's resolved job options and batch system adapter; their
        directives, log files, prologue and epilogue are used as for its jobs.
    script, args
        what rank 1 runs (see :func:`mpi_launch_argv`) and its arguments.
    nodes
        nodes to ask for.
    ntasks
        MPI ranks in all (default: ``nodes * processes``, at least 3); two of
        them are the scheduler and the client, the others workers.
    launcher, launcher_args
        ``"mpirun"`` (default), ``"mpiexec"`` or ``"srun"`` (Slurm's tasks,
        no MPI), and its extra arguments (e.g. ``["--bind-to", "none"]``).
    mpi_args, module
        further ``hpcdask-mpi run`` options; run ``script`` as ``python -m``.

    Returns
    -------
    str
        the script; nothing is written or submitted.

    Raises
    ------
    ValueError
        (:class:`~hpcdask.errors.InvalidOptionError`) for a bad count, launcher
        or a value that cannot be one shell word.
    """
    nodes, given = _check_counts(nodes, ntasks)
    total = given if given is not None else default_ntasks(opts, nodes)
    if launcher == "srun" and system.name != "slurm":
        raise InvalidOptionError("launcher", launcher, "srun needs Slurm")
    command = mpi_launch_argv(
        opts,
        script,
        args,
        ntasks=total,
        launcher=launcher,
        launcher_args=launcher_args,
        mpi_args=mpi_args,
        module=module,
    )
    return _script_text(opts, system, _mpi_options(opts, system, nodes, total), command)


def _script_text(
    opts: JobOptions, system: BatchSystem, mpi_opts: JobOptions, command: list[str]
) -> str:
    """The job script around ``command``: the cluster's shebang, prologue and
    epilogue, and the directives of ``mpi_opts`` (one job of many tasks)."""
    single_task = f"{system.directive_prefix} -n 1"
    lines = [opts.shebang, ""]
    directives = [d for d in system.render_directives(mpi_opts) if d != single_task]
    if directives:
        lines += [*directives, ""]
    if not system.writes_logs:
        lines += log_redirection_lines(mpi_opts, system)
    lines += opts.job_script_prologue
    lines.append(" ".join(command))
    lines += opts.job_script_epilogue
    return "\n".join(lines) + "\n"
