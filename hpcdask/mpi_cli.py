"""The ``hpcdask-mpi`` command: a Dask cluster inside one ``mpirun``.

::

    mpirun -np 8 hpcdask-mpi run analysis.py ARGS...      # a script as the client
    mpirun -np 8 hpcdask-mpi run -m package.module ARGS... # a module, as python -m
    mpirun -np 8 hpcdask-mpi run package.module:main ARGS  # a function, as main()
    mpirun -np 8 hpcdask-mpi serve --scheduler-file s.json # scheduler + workers only

``run``: rank 0 is the scheduler, rank 1 runs the script (``distributed.Client()``
connects to the scheduler), ranks 2 and up are workers; every rank exits with the
script's exit code. ``serve``: rank 0 is the scheduler and every other rank a
worker; a client elsewhere connects with ``Client(scheduler_file=...)`` and ends
the run with ``client.shutdown()``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import runpy
import sys
from collections.abc import Callable, Sequence
from typing import Any

from hpcdask.mpi import (
    ClusterOptions,
    WorldTooSmallError,
    check_options,
    run,
    serve,
)

__all__ = ["main", "parse_args", "resolve_target"]


def _memory_limit(text: str) -> str | float | None:
    if text.lower() in ("none", "0"):
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _worker_options(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from e
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def _add_cluster_options(parser: argparse.ArgumentParser) -> None:
    defaults = ClusterOptions()
    group = parser.add_argument_group("cluster")
    group.add_argument("--interface", help="network interface, e.g. ib0")
    group.add_argument(
        "--nthreads", type=int, default=defaults.nthreads, help="threads per worker"
    )
    group.add_argument(
        "--memory-limit",
        type=_memory_limit,
        default=defaults.memory_limit,
        help="memory per worker, e.g. 4GB ('auto': dask's share; 'none': no limit)",
    )
    group.add_argument("--local-directory", help="directory for worker scratch files")
    group.add_argument(
        "--nanny",
        action=argparse.BooleanOptionalAction,
        default=defaults.nanny,
        help="run each worker under a nanny that restarts it",
    )
    group.add_argument(
        "--dashboard",
        action=argparse.BooleanOptionalAction,
        default=defaults.dashboard,
        help="serve the scheduler's dashboard",
    )
    group.add_argument(
        "--dashboard-address",
        default=defaults.dashboard_address,
        help="dashboard address (default %(default)s; ':0' for any free port)",
    )
    group.add_argument("--protocol", help="comm protocol, e.g. tcp:// or ucx://")
    group.add_argument(
        "--worker-class",
        default=defaults.worker_class,
        help="import path of the worker class (default %(default)s)",
    )
    group.add_argument(
        "--worker-options",
        type=_worker_options,
        default={},
        help="JSON object of further worker keyword arguments",
    )
    group.add_argument("--scheduler-file", help="write the scheduler's address here")
    group.add_argument(
        "--scheduler-port",
        type=int,
        default=defaults.scheduler_port,
        help="scheduler port (default: any free port)",
    )
    group.add_argument(
        "--log-level",
        default=defaults.log_level,
        help="level of dask's logs (default %(default)s; 'dask' keeps dask's config)",
    )
    group.add_argument(
        "--failure-timeout",
        type=_positive_float,
        default=defaults.failure_timeout,
        help="seconds before a lost rank ends the job (default %(default)s)",
    )
    group.add_argument(
        "--shutdown-timeout",
        type=_positive_float,
        default=defaults.shutdown_timeout,
        help="seconds the shutdown may take (default %(default)s)",
    )


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
    _add_cluster_options(run_parser)
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
    _add_cluster_options(serve_parser)
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
    if args.log_level == "dask":
        args.log_level = None
    return args


def cluster_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`hpcdask.mpi.run` / ``serve`` from ``args``."""
    options = {
        "interface": args.interface,
        "nthreads": args.nthreads,
        "memory_limit": args.memory_limit,
        "local_directory": args.local_directory,
        "nanny": args.nanny,
        "dashboard": args.dashboard,
        "dashboard_address": args.dashboard_address,
        "protocol": args.protocol,
        "worker_class": args.worker_class,
        "worker_options": args.worker_options,
        "scheduler_file": args.scheduler_file,
        "scheduler_port": args.scheduler_port,
        "log_level": args.log_level,
        "failure_timeout": args.failure_timeout,
        "shutdown_timeout": args.shutdown_timeout,
    }
    check_options(ClusterOptions(**options))
    return options


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
    try:
        if args.command == "serve":
            return serve(**options)
        function, script_argv = resolve_target(args.module, args.target)
        return run(_run_as_client, function, script_argv, exit=False, **options)
    except WorldTooSmallError as e:
        if _world_rank() == 0:
            print(f"hpcdask-mpi: error: {e}", file=sys.stderr)
        return 2


def _world_rank() -> int:
    from mpi4py import MPI

    return int(MPI.COMM_WORLD.Get_rank())


if __name__ == "__main__":
    sys.exit(main())
