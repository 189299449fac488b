"""The ``hpcdask-mpi`` command (also ``python -m hpcdask.mpi``): a Dask cluster
inside one ``mpirun``.

::

    mpirun -np 8 hpcdask-mpi run analysis.py ARGS...      # a script as the client
    mpirun -np 8 hpcdask-mpi run -m package.module ARGS... # a module, as python -m
    mpirun -np 8 hpcdask-mpi run package.module:main ARGS  # a function, as main()
    mpirun -np 8 hpcdask-mpi serve --scheduler-file s.json # scheduler + workers only

``run``: rank 0 is the scheduler, rank 1 runs the script (``distributed.Client()``
connects to the scheduler), ranks 2 and up are workers; every rank exits with the
script's exit code. ``serve``: rank 0 is the scheduler and every other rank a
worker; a client elsewhere connects with ``Client(scheduler_file=...)`` and ends
the run with ``client.shutdown()``. The cluster flags come from the fields of
:class:`~hpcdask.mpi.options.ClusterOptions`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import runpy
import sys
from collections.abc import Callable, Sequence

from hpcdask.errors import WorldTooSmallError
from hpcdask.mpi.api import run_with, serve_with
from hpcdask.mpi.options import ClusterOptions, add_arguments, from_arguments

__all__ = ["build_parser", "cluster_options", "main", "parse_args", "resolve_target"]


def build_parser() -> argparse.ArgumentParser:
    """The ``hpcdask-mpi`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="hpcdask-mpi",
        description="A Dask cluster inside one mpirun: rank 0 scheduler, "
        "rank 1 your script (run) or nothing (serve), other ranks workers.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser(
        "run",
        help="run a script, module or function as the client",
        description="Run TARGET on rank 1 as the client of the cluster. TARGET is "
        "a script path, or MODULE:FUNCTION (called with no arguments, like a "
        "console script); with -m, a module run as `python -m` does.",
    )
    add_arguments(run_parser)
    run_parser.add_argument(
        "-m", dest="module", metavar="MODULE", help="run a module as python -m does"
    )
    run_parser.add_argument(
        "target",
        nargs=argparse.REMAINDER,
        metavar="TARGET [ARGS]",
        help="script path or MODULE:FUNCTION, then its arguments",
    )
    serve_parser = commands.add_parser(
        "serve",
        help="only a scheduler (rank 0) and workers (other ranks)",
        description="Start a scheduler on rank 0 and a worker on every other "
        "rank, for a client elsewhere. Ends when the scheduler is shut down "
        "(client.shutdown()).",
    )
    add_arguments(serve_parser)
    serve_parser.set_defaults(module=None, target=[])
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line; exits with usage on an error, like argparse."""
    parser = build_parser()
    args = parser.parse_args(list(argv))
    if args.command == "run" and not args.module and not args.target:
        parser.error("run: give a script, MODULE:FUNCTION, or -m MODULE")
    if args.command == "serve" and not args.scheduler_file:
        parser.error("serve: --scheduler-file is needed for clients to connect")
    return args


def cluster_options(args: argparse.Namespace) -> ClusterOptions:
    """The options of :func:`hpcdask.mpi.run` / ``serve`` from ``args``;
    :class:`ValueError` for a bad value."""
    return from_arguments(args, ClusterOptions)


def resolve_target(
    module: str | None, target: Sequence[str]
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
                f"hpcdask-mpi: can't open file {os.path.abspath(name)!r}: No such file",
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


def main(argv: Sequence[str] | None = None) -> int:
    """The ``hpcdask-mpi`` command; returns the exit code for this rank."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    options = cluster_options(args)
    if not mpi4py_installed():
        print(
            "hpcdask-mpi: error: mpi4py is not installed; "
            "pip install 'hpcdask[mpi]' adds it",
            file=sys.stderr,
        )
        return 2
    try:
        if args.command == "serve":
            return serve_with(options)
        function, script_argv = resolve_target(args.module, args.target)
        return run_with(options, _run_as_client, function, script_argv, exit=False)
    except WorldTooSmallError as e:
        if _world_rank() == 0:
            print(f"hpcdask-mpi: error: {e}", file=sys.stderr)
        return 2


def mpi4py_installed() -> bool:
    """Whether mpi4py can be imported (it is not imported here)."""
    return importlib.util.find_spec("mpi4py") is not None


def _world_rank() -> int:
    from mpi4py import MPI

    return int(MPI.COMM_WORLD.Get_rank())


if __name__ == "__main__":
    sys.exit(main())
