"""The ``hpcdask-mpi`` and ``hpcdask-srun`` commands: a Dask cluster inside one
``mpirun``, or inside one ``srun`` without MPI.

::

    mpirun -np 8 hpcdask-mpi run analysis.py ARGS...      # a script as the client
    mpirun -np 8 hpcdask-mpi run -m package.module ARGS... # a module, as python -m
    mpirun -np 8 hpcdask-mpi run package.module:main ARGS  # a function, as main()
    mpirun -np 8 hpcdask-mpi serve --scheduler-file s.json # scheduler + workers only
    srun -n 8 hpcdask-srun run analysis.py ARGS...         # the same, Slurm's tasks

``run``: rank 0 is the scheduler, rank 1 runs the script (``distributed.Client()``
connects to the scheduler), ranks 2 and up are workers; every rank exits with the
script's exit code. ``serve``: rank 0 is the scheduler and every other rank a
worker; a client elsewhere connects with ``Client(scheduler_file=...)`` and ends
the run with ``client.shutdown()``; it takes the options of dask-mpi's command.
The flags come from the fields of :class:`~hpcdask.mpi.options.ClusterOptions`,
:class:`~hpcdask.mpi.options.Placement` and
:class:`~hpcdask.mpi.slurm.SrunOptions`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import runpy
import sys
from collections.abc import Callable, Mapping, Sequence

from hpcdask.errors import MPIClusterError, WorldTooSmallError
from hpcdask.mpi.api import mpi_control, run_with, serve_with
from hpcdask.mpi.control import ControlPlane
from hpcdask.mpi.options import (
    ClusterOptions,
    Placement,
    add_arguments,
    from_arguments,
)
from hpcdask.mpi.slurm import SlurmStep, SrunControl, SrunOptions

__all__ = [
    "build_parser",
    "cluster_options",
    "main",
    "parse_args",
    "resolve_target",
    "srun_main",
]

#: each command's launcher: what starts its ranks, and what it is called
_COMMANDS = {"mpirun": "hpcdask-mpi", "srun": "hpcdask-srun"}


def build_parser(launcher: str = "mpirun") -> argparse.ArgumentParser:
    """The argument parser of ``hpcdask-mpi`` (or ``hpcdask-srun``)."""
    where = "one mpirun" if launcher == "mpirun" else "one srun (no MPI)"
    parser = argparse.ArgumentParser(
        prog=_COMMANDS[launcher],
        description=f"A Dask cluster inside {where}: rank 0 scheduler, "
        "rank 1 your script (run) or nothing (serve), other ranks workers.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser(
        "run",
        help="run a script, module or function as the client",
        description="Run TARGET on the client rank (1) of the cluster. TARGET is "
        "a script path, or MODULE:FUNCTION (called with no arguments, like a "
        "console script); with -m, a module run as `python -m` does.",
    )
    serve_parser = commands.add_parser(
        "serve",
        help="only a scheduler (rank 0) and workers (other ranks)",
        description="Start a scheduler on rank 0 and a worker on every other "
        "rank, for a client elsewhere. Ends when the scheduler is shut down "
        "(client.shutdown()). Takes dask-mpi's options.",
    )
    for sub in (run_parser, serve_parser):
        add_arguments(sub)
        exclude = ("client_rank",) if sub is serve_parser else ()
        add_arguments(sub, Placement, "ranks", exclude)
        if launcher == "srun":
            add_arguments(sub, SrunOptions, "srun")
    run_parser.add_argument(
        "--scheduler-address", help="with --no-scheduler: the scheduler to join"
    )
    run_parser.add_argument(
        "-m", dest="module", metavar="MODULE", help="run a module as python -m does"
    )
    run_parser.add_argument(
        "target",
        nargs=argparse.REMAINDER,
        metavar="TARGET [ARGS]",
        help="script path or MODULE:FUNCTION, then its arguments",
    )
    serve_parser.add_argument(
        "scheduler_address",
        nargs="?",
        metavar="SCHEDULER_ADDRESS",
        help="with --no-scheduler: the scheduler to join",
    )
    serve_parser.set_defaults(module=None, target=[])
    return parser


def parse_args(argv: Sequence[str], launcher: str = "mpirun") -> argparse.Namespace:
    """Parse the command line; exits with usage on an error, like argparse."""
    parser = build_parser(launcher)
    args = parser.parse_args(list(argv))
    if args.command == "run" and not args.module and not args.target:
        parser.error("run: give a script, MODULE:FUNCTION, or -m MODULE")
    if args.command == "serve" and args.scheduler and not args.scheduler_file:
        parser.error("serve: --scheduler-file is needed for clients to connect")
    if not args.scheduler and not (args.scheduler_address or args.scheduler_file):
        parser.error("--no-scheduler: give SCHEDULER_ADDRESS or --scheduler-file")
    try:
        cluster_options(args)
    except ValueError as e:
        parser.error(str(e))
    return args


def cluster_options(args: argparse.Namespace) -> ClusterOptions:
    """The options of :func:`hpcdask.mpi.run` / ``serve`` from ``args``;
    :class:`ValueError` for a bad value."""
    return from_arguments(args, ClusterOptions)


def resolve_target(
    module: str | None, target: Sequence[str], prog: str = "hpcdask-mpi"
) -> tuple[Callable[[], object], list[str]]:
    """What rank 1 calls, and the ``sys.argv`` it sees; nothing is imported yet."""
    if module:
        argv = [module, *target]

        def run_module() -> object:
            sys.path.insert(0, os.getcwd())
            runpy.run_module(module, run_name="__main__", alter_sys=True)
            return None

        return run_module, argv

    name, rest = target[0], list(target[1:])
    if ":" in name and not os.path.exists(name):
        module_name, _, function_name = name.partition(":")

        def call_function() -> object:
            sys.path.insert(0, os.getcwd())
            function = importlib.import_module(module_name)
            for attribute in function_name.split("."):
                function = getattr(function, attribute)
            return function()  # type: ignore[operator]

        return call_function, [name, *rest]

    def run_script() -> object:
        # as `python script.py`: its directory first on sys.path, argv[0] as given
        if not os.path.isfile(name):
            print(
                f"{prog}: can't open file {os.path.abspath(name)!r}: No such file",
                file=sys.stderr,
            )
            return 2
        sys.path.insert(0, os.path.dirname(os.path.abspath(name)))
        runpy.run_path(name, run_name="__main__")
        return None

    return run_script, [name, *rest]


def _run_as_client(function: Callable[[], object], argv: list[str]) -> object:
    sys.argv = argv
    return function()


def main(argv: Sequence[str] | None = None, launcher: str = "mpirun") -> int:
    """The ``hpcdask-mpi`` command; returns the exit code for this rank."""
    name = _COMMANDS[launcher]
    args = parse_args(sys.argv[1:] if argv is None else argv, launcher)
    if launcher == "mpirun" and not mpi4py_installed():
        print(
            f"{name}: error: mpi4py is not installed; "
            "pip install 'hpcdask[mpi]' adds it (or, under srun: hpcdask-srun)",
            file=sys.stderr,
        )
        return 2
    if launcher == "mpirun" and srun_without_mpi(os.environ):
        print(
            f"{name}: note: srun started this task without an MPI process "
            "manager; if MPI fails to start, run `srun hpcdask-srun ...` instead",
            file=sys.stderr,
        )
    try:
        control = _control(launcher, args)
    except MPIClusterError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return 2
    options = cluster_options(args)
    placement = from_arguments(args, Placement)
    try:
        if args.command == "serve":
            address = args.scheduler_address
            return serve_with(
                options, control=control, placement=placement, address=address
            )
        function, script_argv = resolve_target(args.module, args.target, name)
        return run_with(
            options,
            _run_as_client,
            function,
            script_argv,
            exit=False,
            control=control,
            placement=placement,
            address=args.scheduler_address,
        )
    except (WorldTooSmallError, ValueError) as e:
        if control.rank == 0:
            print(f"{name}: error: {e}", file=sys.stderr)
        return 2


def srun_main(argv: Sequence[str] | None = None) -> int:
    """The ``hpcdask-srun`` command: ``hpcdask-mpi`` for ``srun``'s tasks."""
    return main(argv, launcher="srun")


def _control(launcher: str, args: argparse.Namespace) -> ControlPlane:
    if launcher == "mpirun":
        return mpi_control()
    step = SlurmStep.from_environ(os.environ)
    return SrunControl(step, from_arguments(args, SrunOptions))


#: what MPI process managers set in each process they start (Open MPI's
#: mpirun, PMIx, PMI-1/2 as srun --mpi=... and MPICH's hydra do)
_MPI_STARTED = ("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE")


def srun_without_mpi(environ: Mapping[str, str]) -> bool:
    """Whether rank 0 of an srun step runs with no MPI process manager around:
    MPI cannot start there unless it was built with Slurm's PMI."""
    started_by_srun = "SLURM_STEP_ID" in environ and "SLURM_PROCID" in environ
    return (
        started_by_srun
        and environ.get("SLURM_PROCID") == "0"
        and not any(name in environ for name in _MPI_STARTED)
    )


def mpi4py_installed() -> bool:
    """Whether mpi4py can be imported (it is not imported here)."""
    return importlib.util.find_spec("mpi4py") is not None


if __name__ == "__main__":
    sys.exit(main())
