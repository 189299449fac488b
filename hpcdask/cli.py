"""The ``hpcdask`` command.

::

    hpcdask profiles                     # the site profiles in dask config
    hpcdask job-script --profile small   # the script a cluster would submit
    hpcdask jobs [--name NAME]           # your hpcdask jobs in the queue
    hpcdask cancel NAME                  # cancel all queued jobs named NAME
    hpcdask list                         # your clusters with a scheduler job
    hpcdask config [--output PATH]       # write a commented config file
    hpcdask mpi ...                      # the MPI launcher (hpcdask-mpi)

Argument parsing and printing only: the work is done by the library (profiles,
option resolution, script rendering, the Slurm, PBS and SGE adapters' parsers), and
every queue command runs as an argv list through :mod:`hpcdask.runner`. Errors are
one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import time
from collections.abc import Sequence
from typing import NoReturn

from hpcdask import systems
from hpcdask.cli_clusters import add_list_command
from hpcdask.config import resolve_job_options, security_setting
from hpcdask.configfile import default_config_path, render_config
from hpcdask.errors import CommandError, HPCDaskError, InvalidOptionError
from hpcdask.listing import Owner, group_by_cluster, render_groups, text_table
from hpcdask.models import ClusterTag
from hpcdask.options import SYSTEMS, JobOptions
from hpcdask.profiles import load_profile, load_profiles
from hpcdask.runner import current_user, host_name
from hpcdask.systems import QUEUE_SYSTEMS, make_backend
from hpcdask.systems.base import CommandBackend
from hpcdask.validation import check_identifier

__all__ = ["main"]

#: what the job-script command puts where a cluster puts its scheduler's host and
#: port (after the protocol: tls:// by default).
PLACEHOLDER_ADDRESS = "SCHEDULER-ADDRESS:8786"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# -- the queue --------------------------------------------------------------------


def detect_system(system: str | None, queue_only: bool = False) -> str:
    """``system``, or the batch system found here: Slurm when ``sbatch`` is on
    PATH, else Grid Engine when ``SGE_ROOT`` is set, else PBS when ``qsub`` is."""
    if system is None:
        if shutil.which("sbatch"):
            system = "slurm"
        elif os.environ.get("SGE_ROOT"):
            system = "sge"
        elif shutil.which("qsub"):
            system = "pbs"
        else:
            raise CommandError(
                "no batch system found (no sbatch or qsub on PATH, no SGE_ROOT); "
                "pass --system"
            )
    if queue_only and system not in QUEUE_SYSTEMS:
        raise CommandError(
            f"--system {system} has no queue: its jobs live in the notebook's process"
        )
    return system


def queue_backend(system: str) -> CommandBackend:
    """The backend that lists and cancels the user's jobs of ``system``."""
    return systems.queue_backend(system)


def check_job_name(name: str) -> str:
    """A job name to select jobs by: no ``,`` (scancel would read a list)."""
    check_identifier("name", name)
    if "," in name:
        raise InvalidOptionError("name", name, "one job name, without ','")
    return name


# -- subcommands -----------------------------------------------------------------


def cmd_profiles(args: argparse.Namespace) -> int:
    profiles = load_profiles()
    if not profiles:
        print(
            "no profiles configured: add them under hpcdask.profiles in dask "
            "config (see `hpcdask config` and docs/profiles.md)"
        )
        return 0
    rows: list[tuple[str, ...]] = [
        ("NAME", "SYSTEM", "QUEUE", "CORES", "MEMORY", "WALLTIME", "DESCRIPTION")
    ]
    for profile in profiles:
        rows.append(
            (
                profile.name,
                profile.system or "(any)",
                *profile.summary(),
                profile.description,
            )
        )
    print(text_table(rows))
    return 0


def job_options_of(args: argparse.Namespace) -> JobOptions:
    overrides: dict[str, object] = {
        key: value
        for key, value in (
            ("cores", args.cores),
            ("memory", args.memory),
            ("processes", args.processes),
            ("nodes", args.nodes),
            ("walltime", args.walltime),
            ("queue", args.queue),
            ("account", args.account),
            ("name", args.name),
            ("job_extra_directives", args.directive or None),
        )
        if value is not None
    }
    if args.profile:
        profile = load_profile(args.profile)
        return profile.job_options(args.system or "", **overrides)
    return resolve_job_options(detect_system(args.system), **overrides)


def cmd_job_script(args: argparse.Namespace) -> int:
    from hpcdask.script import render_job_script
    from hpcdask.security import placeholder_security_args, with_tls_protocol

    opts = job_options_of(args)
    system = make_backend(opts).system
    security_args: list[str] = []
    if security_setting():
        # TLS, as a cluster made here has it by default; each cluster writes
        # its own credentials, so their directory's name is a placeholder
        opts = with_tls_protocol(opts)
        security_args = placeholder_security_args(opts)
    address = (
        args.scheduler_address or f"{opts.protocol or 'tcp://'}{PLACEHOLDER_ADDRESS}"
    )
    # as a cluster made here renders it: its workers start in this directory;
    # each cluster tags its jobs with its own process and a nonce: placeholders
    tag = ClusterTag(host_name(), 0, 0, "XXXXXX")
    script = render_job_script(
        opts, system, address, [f"{opts.name}-0"], security_args, os.getcwd(), tag
    )
    sys.stdout.write(script)
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    system = detect_system(args.system, queue_only=True)
    user = current_user()
    jobs = asyncio.run(queue_backend(system).list_jobs(user))
    if args.name:
        jobs = [j for j in jobs if j.name in args.name]
    groups = [
        g for g in group_by_cluster(jobs, host_name()) if args.all or g.tag is not None
    ]
    if not groups:
        which = "" if args.all else " in hpcdask clusters"
        print(f"no queued jobs of {user}{which}")
        return 0
    print(render_groups(groups, time.time()))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from hpcdask.security import credentials_directory, remove_stale_private_dirs

    system = detect_system(args.system, queue_only=True)
    wanted = None if args.cluster is None else ClusterTag.parse(args.cluster)
    if args.cluster is not None and wanted is None:
        raise InvalidOptionError(
            "--cluster", args.cluster, "expected a tag as hpcdask jobs shows it"
        )
    name = None if args.name is None else check_job_name(args.name)
    backend = queue_backend(system)
    jobs = asyncio.run(backend.list_jobs(current_user()))
    chosen, spared = [], []
    for group in group_by_cluster(jobs, host_name()):
        mine = [j for j in group.jobs if name is None or j.name == name]
        if not mine or group.tag is None:
            continue
        if group.tag == wanted or (wanted is None and group.owner is Owner.GONE):
            chosen.append(group)
        elif wanted is None:
            spared.append(group)
    ids = [j.job_id for g in chosen for j in g.jobs if name is None or j.name == name]
    if ids and not args.dry_run:
        asyncio.run(backend.cancel(ids))
    verb = "would cancel" if args.dry_run else "cancelled"
    for group in chosen:
        print(f"{verb} the jobs of {group.label}")
    print(f"{verb} {len(ids)} job(s){': ' + ' '.join(ids) if ids else ''}")
    for group in spared:
        print(f"left alone: {len(group.jobs)} job(s) of {group.label}; "
              f"cancel them with --cluster {group.tag}")  # fmt: skip
    # the TLS files of clusters whose process died without closing (kill -9)
    directory = credentials_directory(_default_options(system))
    stale = remove_stale_private_dirs(directory, dry_run=args.dry_run)
    if stale:
        verb = "would remove" if args.dry_run else "removed"
        noun = "directory" if len(stale) == 1 else "directories"
        print(f"{verb} {len(stale)} stale credential {noun} in {directory}")
    return 0


def _default_options(
    system: str, kwargs: dict[str, object] | None = None
) -> JobOptions:
    # options resolved as for any cluster; cores, memory and processes are
    # given only so that the options resolve without them in config
    required = {"cores": 1, "memory": 1, "processes": 1}
    return resolve_job_options(system, **{**(kwargs or {}), **required})


def cmd_config(args: argparse.Namespace) -> int:
    text = render_config()
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    path = os.path.expanduser(args.output or default_config_path())
    if os.path.exists(path) and not args.force:
        raise CommandError(f"{path} exists; use --force to replace it or --output")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    print(f"wrote {path}")
    return 0


def run_mpi(argv: Sequence[str]) -> int:
    """``hpcdask mpi ARGS`` is ``hpcdask-mpi ARGS`` (which says so when mpi4py
    is missing)."""
    from hpcdask.mpi import cli as mpi_cli

    return mpi_cli.main(list(argv))


# -- parsing ---------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hpcdask",
        description="Dask clusters on HPC batch queues: profiles, job scripts, "
        "your jobs in the queue, cleanup, config.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = commands.add_parser(
        "profiles", help="list the site profiles (hpcdask.profiles in dask config)"
    )
    p.set_defaults(run=cmd_profiles)
    _add_job_script(commands)
    _add_jobs_and_cancel(commands)
    add_list_command(commands)
    p = commands.add_parser(
        "config",
        help="write a commented default config file",
        description="Write hpcdask.yaml with every option commented out "
        "(default: ~/.config/dask/hpcdask.yaml).",
    )
    p.add_argument("--output", metavar="PATH", help="where to write; - for stdout")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(run=cmd_config)
    # listed for --help; main() hands its arguments to hpcdask-mpi unparsed
    commands.add_parser(
        "mpi", help="run a Dask cluster inside mpirun (as hpcdask-mpi; see "
        "hpcdask mpi --help)", add_help=False
    )  # fmt: skip
    return parser


def _add_job_script(commands: argparse._SubParsersAction[_Parser]) -> None:
    p = commands.add_parser(
        "job-script",
        help="print the job script a cluster would submit",
        description="Print the job script for a profile or for options (config "
        "fills in the rest). The scheduler address is a placeholder: a cluster "
        "puts its own there.",
    )
    p.add_argument("--profile", help="a site profile (see `hpcdask profiles`)")
    p.add_argument("--system", choices=SYSTEMS, help="default: the profile's, or "
                   "the batch system found on PATH")  # fmt: skip
    p.add_argument("--cores", type=int)
    p.add_argument("--memory", help="per job, e.g. 16GB")
    p.add_argument("--processes", type=int, help="worker processes per job")
    p.add_argument("--nodes", type=int, help="nodes per job (default 1)")
    p.add_argument("--walltime", help="e.g. 01:00:00")
    p.add_argument("--queue")
    p.add_argument("--account")
    p.add_argument("--name", help="worker name prefix")
    p.add_argument("--directive", action="append", metavar="LINE",
                   help="an extra directive line (repeatable)")  # fmt: skip
    p.add_argument("--scheduler-address",
                   help=f"default: tls://{PLACEHOLDER_ADDRESS}")  # fmt: skip
    p.set_defaults(run=cmd_job_script)


def _add_jobs_and_cancel(commands: argparse._SubParsersAction[_Parser]) -> None:
    p = commands.add_parser(
        "jobs",
        help="list your hpcdask clusters' jobs in the queue, with state and reason",
        description="List your queued and running jobs by hpcdask cluster (the "
        "tag every job carries), whatever their names, and whether each "
        "cluster's process still runs.",
    )
    p.add_argument("--name", action="append", metavar="NAME",
                   help="only jobs of this job name (repeatable)")  # fmt: skip
    p.add_argument("--all", action="store_true",
                   help="also your jobs of no hpcdask cluster")  # fmt: skip
    p.add_argument("--system", choices=tuple(QUEUE_SYSTEMS))
    p.set_defaults(run=cmd_jobs)
    p = commands.add_parser(
        "cancel",
        help="cancel the jobs of hpcdask clusters whose process is gone",
        description="Cancel, with one scancel/qdel, every job of your hpcdask "
        "clusters whose process is gone (a notebook kernel that died), or of "
        "the cluster --cluster names; the jobs of live clusters are left alone. "
        "Also removes the TLS files that dead clusters of this host left.",
    )
    p.add_argument("name", metavar="NAME", nargs="?",
                   help="only the jobs of this job name")  # fmt: skip
    p.add_argument("--cluster", metavar="TAG",
                   help="the cluster whose jobs to cancel, alive or not "
                   "(as hpcdask jobs shows it)")  # fmt: skip
    p.add_argument("--system", choices=tuple(QUEUE_SYSTEMS))
    p.add_argument("--dry-run", action="store_true",
                   help="list what would be cancelled, cancel nothing")  # fmt: skip
    p.set_defaults(run=cmd_cancel)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hpcdask`` command; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["mpi"]:
        return run_mpi(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except (HPCDaskError, ValueError, OSError) as e:
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"hpcdask {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
