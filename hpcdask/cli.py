"""The ``hpcdask`` command.

::

    hpcdask profiles                     # the site profiles in dask config
    hpcdask job-script --profile small   # the script a cluster would submit
    hpcdask jobs [--name NAME]           # your hpcdask jobs in the queue
    hpcdask cancel NAME                  # cancel all queued jobs named NAME
    hpcdask config [--output PATH]       # write a commented config file
    hpcdask mpi ...                      # the MPI launcher (hpcdask-mpi)

Argument parsing and printing only: the work is done by the library (profiles,
option resolution, script rendering, the Slurm and PBS adapters' parsers), and
every queue command runs as an argv list through :mod:`hpcdask.runner`. Errors are
one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pwd
import re
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import yaml

from hpcdask.config import DEFAULTS, SYSTEMS, JobOptions, resolve_job_options
from hpcdask.errors import HPCDaskError, InvalidOptionError
from hpcdask.models import JobStatus
from hpcdask.profiles import load_profile, load_profiles
from hpcdask.runner import Runner, SubprocessRunner
from hpcdask.systems.pbs import parse_qstat_full, status_from_attributes
from hpcdask.systems.slurm import SQUEUE_FORMAT, parse_squeue
from hpcdask.validation import check_identifier
from hpcdask.widget import format_bytes, format_duration

__all__ = ["main"]

#: what the job-script command puts where a cluster puts its scheduler's host and
#: port (after the protocol: tls:// by default).
PLACEHOLDER_ADDRESS = "SCHEDULER-ADDRESS:8786"

#: one line of help per job option, for ``hpcdask config``.
OPTION_HELP: dict[str, str] = {
    "name": "worker name prefix; jobs are NAME-0, NAME-1... (plain $VARS allowed)",
    "cores": "cores per job (required here or as an argument)",
    "memory": "memory per job, e.g. 109GB (required here or as an argument)",
    "processes": "worker processes per job (default: about sqrt(cores))",
    "python": "python on the compute nodes (default: this interpreter)",
    "interface": "network interface workers and scheduler use, e.g. ib0",
    "death_timeout": "seconds a worker waits for a lost scheduler",
    "local_directory": "worker scratch space, e.g. $TMPDIR",
    "worker_command": "module that starts the workers",
    "worker_extra_args": "extra arguments of the worker command",
    "shebang": "first line of the job script",
    "queue": "queue (Slurm partition)",
    "account": "account / project charged",
    "walltime": "walltime per job (default 00:30:00)",
    "job_name": "the batch job name (default: name without $VARS)",
    "job_script_prologue": "shell lines run before the workers start",
    "job_script_epilogue": "shell lines run after the workers stop",
    "job_extra_directives": "extra directive lines, e.g. --gres=gpu:1",
    "job_directives_skip": "directive lines containing these are left out",
    "log_directory": "job stdout/stderr (default ~/.hpcdask/logs)",
    "shared_temp_directory": "TLS files for workers, 0700 (default: security/ "
    "beside log_directory)",
    "nanny": "run workers under a nanny process",
    "worker_start_method": "how a nanny starts its worker: fork, spawn, forkserver",
    "protocol": "tcp:// or tls://",
    "scheduler_options": "extra arguments of the Scheduler",
    "job_cpu": "Slurm --cpus-per-task (default: cores)",
    "job_mem": "Slurm --mem (default: memory)",
    "resource_spec": "PBS -l resources (default select=1:ncpus=..:mem=..)",
}


class CommandError(HPCDaskError):
    """A problem with what the user asked for, reported as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# -- queue queries ----------------------------------------------------------------


@dataclass(frozen=True)
class QueuedJob:
    """One job in the queue as ``hpcdask jobs`` lists it."""

    job_id: str
    name: str
    status: JobStatus


def current_user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def detect_system(system: str | None, queue_only: bool = False) -> str:
    """``system``, or the batch system whose commands are on PATH."""
    if system is None:
        if shutil.which("sbatch"):
            system = "slurm"
        elif shutil.which("qsub"):
            system = "pbs"
        else:
            raise CommandError(
                "no batch system found (no sbatch or qsub on PATH); pass --system"
            )
    if queue_only and system not in ("slurm", "pbs"):
        raise CommandError(
            f"--system {system} has no queue: its jobs live in the notebook's process"
        )
    return system


def check_job_name(name: str) -> str:
    """A job name to select jobs by: no ``,`` (scancel would read a list)."""
    check_identifier("name", name)
    if "," in name:
        raise InvalidOptionError("name", name, "one job name, without ','")
    return name


def list_argv(system: str, user: str, names: Sequence[str] | None) -> list[str]:
    """One command listing the queued jobs of ``user`` (named ``names``)."""
    if system == "slurm":
        argv = [
            "squeue",
            "--noheader",
            f"--user={user}",
            f"--format={SQUEUE_FORMAT}|%j",
        ]
        if names:
            argv.append(f"--name={','.join(names)}")
        return argv
    # PBS has no portable name filter; qstat -f of all jobs is one query
    return ["qstat", "-f"]


def parse_listing(
    system: str, stdout: str, user: str, names: Sequence[str] | None
) -> list[QueuedJob]:
    """The queued jobs of ``user`` named ``names`` in ``list_argv``'s output."""
    jobs: list[QueuedJob] = []
    if system == "slurm":
        for line in stdout.splitlines():
            fields, _, name = line.strip().rpartition("|")
            for job_id, status in parse_squeue(fields).items():
                jobs.append(QueuedJob(job_id, name, status))
    else:
        for job_id, attrs in parse_qstat_full(stdout).items():
            # Job_Owner is "user@host"; Slurm's wrapper's euser is "user(uid)"
            owner = attrs.get("Job_Owner") or attrs.get("euser", "")
            if re.split(r"[@(]", owner)[0] == user:
                name = attrs.get("Job_Name", "")
                jobs.append(QueuedJob(job_id, name, status_from_attributes(attrs)))
    return [
        job
        for job in jobs
        if not job.status.state.is_terminal and (not names or job.name in names)
    ]


def cancel_argv(
    system: str, user: str, name: str, jobs: Sequence[QueuedJob]
) -> list[str]:
    """ONE command cancelling every queued job of ``user`` named ``name``.

    Slurm selects by name and user itself (jobs queued after the listing are
    cancelled too); PBS's ``qdel`` takes the ids the listing found.
    """
    if system == "slurm":
        return ["scancel", f"--user={user}", f"--name={name}"]
    return ["qdel", *(job.job_id for job in jobs)]


async def list_jobs(
    runner: Runner, system: str, user: str, names: Sequence[str] | None
) -> list[QueuedJob]:
    result = await runner.run(list_argv(system, user, names))
    if not result.ok:
        raise CommandError(
            f"{result.argv[0]} failed: "
            + (result.stderr.strip() or f"exit code {result.returncode}")
        )
    return parse_listing(system, result.stdout, user, names)


async def cancel_jobs(
    runner: Runner, system: str, user: str, name: str, dry_run: bool = False
) -> list[QueuedJob]:
    """Cancel all queued jobs of ``user`` named ``name``; return what was found."""
    jobs = await list_jobs(runner, system, user, [name])
    if jobs and not dry_run:
        result = await runner.run(cancel_argv(system, user, name, jobs))
        if not result.ok:
            raise CommandError(
                f"{result.argv[0]} failed: "
                + (result.stderr.strip() or f"exit code {result.returncode}")
            )
    return jobs


def render_jobs(jobs: Sequence[QueuedJob], now: float) -> str:
    """A table of jobs, like squeue's but with walltime left."""
    rows = [("JOBID", "NAME", "STATE", "REASON", "NODE", "AGE", "WALLTIME LEFT")]
    for job in jobs:
        status = job.status
        left = None
        if status.start_time is not None and status.time_limit is not None:
            left = max(0.0, status.start_time + status.time_limit - now)
        elif status.time_limit is not None:
            left = status.time_limit
        rows.append(
            (
                job.job_id,
                job.name,
                status.state.value,
                status.reason or "-",
                status.node or "-",
                format_duration(
                    None if status.submit_time is None else now - status.submit_time
                ),
                format_duration(left),
            )
        )
    return _table(rows)


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


# -- the config file -----------------------------------------------------------------


def render_config() -> str:
    """A commented ``hpcdask.yaml``: every option with its default, all commented.

    As written the file sets nothing, so it hides no site-wide setting and no
    ``jobqueue.<system>.*`` value (an existing ``jobqueue.yaml``), which hpcdask
    reads for whatever is left unset. Removing the leading ``# `` from an option's
    line and from the lines of its parents sets it.
    """
    lines = [
        "# hpcdask configuration, read by dask from ~/.config/dask/ (or /etc/dask/).",
        "# Nothing is set yet: to set an option, remove the leading '# ' from its",
        "# line and from its parents' lines ('hpcdask:', '  slurm:'). Options left",
        "# unset are read from jobqueue.<system>.* (a dask-jobqueue jobqueue.yaml),",
        "# then take the defaults shown. Constructor arguments override all of these.",
        "#",
        "# hpcdask:",
        "#   # how often the queue is asked about a cluster's jobs (one command)",
        "#   poll-interval: 5s",
        "#   # TLS with a certificate made per cluster; false: unencrypted, and",
        "#   # anyone who reaches the scheduler's port can run code in it",
        "#   security: true",
    ]
    for system in SYSTEMS:
        lines.append(f"#   {system}:")
        for option, default in DEFAULTS.items():
            key = option.replace("_", "-")
            value = yaml.safe_dump(default, default_flow_style=True)
            value = value.strip().removesuffix("...").strip()
            lines.append(f"#     {key}: {value}  # {OPTION_HELP[option]}")
    lines += [
        "#   # site profiles: SLURMCluster.from_profile(NAME), `hpcdask profiles`;",
        "#   # keys: system, description, directives and any option above",
        "#   profiles:",
        "#     small:",
        "#       description: 2 cores, 4 GB, 8 hours",
        "#       system: slurm",
        "#       queue: shared",
        "#       cores: 2",
        "#       memory: 4GB",
        '#       walltime: "08:00:00"',
        "#     gpu-small:",
        "#       system: slurm",
        "#       queue: gpu",
        "#       cores: 8",
        "#       memory: 32GB",
        '#       directives: ["--gres=gpu:1"]',
    ]
    return "\n".join(lines) + "\n"


def default_config_path() -> str:
    root = os.environ.get("DASK_CONFIG") or os.path.join(
        os.path.expanduser("~"), ".config", "dask"
    )
    return os.path.join(root, "hpcdask.yaml")


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
        cells: tuple[str, ...]
        if profile.system:
            opts = profile.job_options()
            cells = (
                opts.queue or "-",
                str(opts.cores),
                format_bytes(opts.memory),
                format_duration(opts.walltime),
            )
        else:
            raw = profile.options
            cells = tuple(
                str(raw.get(k, "-")) for k in ("queue", "cores", "memory", "walltime")
            )
        rows.append(
            (profile.name, profile.system or "(any)", *cells, profile.description)
        )
    print(_table(rows))
    return 0


def job_options_of(args: argparse.Namespace) -> JobOptions:
    overrides: dict[str, Any] = {
        key: value
        for key, value in (
            ("cores", args.cores),
            ("memory", args.memory),
            ("processes", args.processes),
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
    from hpcdask.cluster import make_backend
    from hpcdask.script import render_job_script
    from hpcdask.security import (
        configured_security,
        placeholder_security_args,
        with_tls_protocol,
    )

    opts = job_options_of(args)
    system = make_backend(opts).system
    security_args: list[str] = []
    if configured_security():
        # TLS, as a cluster made here has it by default; each cluster writes
        # its own credentials, so their directory's name is a placeholder
        opts = with_tls_protocol(opts)
        security_args = placeholder_security_args(opts)
    address = (
        args.scheduler_address or f"{opts.protocol or 'tcp://'}{PLACEHOLDER_ADDRESS}"
    )
    # as a cluster made here renders it: its workers start in this directory
    script = render_job_script(
        opts,
        system,
        address,
        [f"{opts.name}-0"],
        security_args,
        workdir=os.getcwd(),
    )
    sys.stdout.write(script)
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    system = detect_system(args.system, queue_only=True)
    user = current_user()
    names = None if args.all else [check_job_name(n) for n in job_names(args, system)]
    jobs = asyncio.run(list_jobs(SubprocessRunner(), system, user, names))
    if not jobs:
        which = "" if names is None else f" named {', '.join(names)}"
        print(f"no queued jobs of {user}{which}")
        return 0
    print(render_jobs(jobs, time.time()))
    return 0


def job_names(args: argparse.Namespace, system: str) -> list[str]:
    """The job names to list: --name, else the names hpcdask gives by default
    (from config) and those of the profiles for ``system``."""
    if args.name:
        return list(dict.fromkeys(args.name))
    names = [_default_job_name(system)]
    for profile in load_profiles():
        if profile.system in (None, system):
            names.append(_default_job_name(system, profile.cluster_kwargs()))
    return list(dict.fromkeys(names))


def _default_options(system: str, kwargs: dict[str, Any] | None = None) -> JobOptions:
    # options resolved as for any cluster; cores, memory and processes are
    # given only so that the options resolve without them in config
    required = {"cores": 1, "memory": 1, "processes": 1}
    return resolve_job_options(system, **{**(kwargs or {}), **required})


def _default_job_name(system: str, kwargs: dict[str, Any] | None = None) -> str:
    return _default_options(system, kwargs).job_name


def cmd_cancel(args: argparse.Namespace) -> int:
    from hpcdask.security import credentials_directory, remove_stale_private_dirs

    system = detect_system(args.system, queue_only=True)
    name = check_job_name(args.name)
    user = current_user()
    jobs = asyncio.run(
        cancel_jobs(SubprocessRunner(), system, user, name, dry_run=args.dry_run)
    )
    if not jobs:
        print(f"no queued jobs of {user} named {name}")
    else:
        ids = " ".join(job.job_id for job in jobs)
        verb = "would cancel" if args.dry_run else "cancelled"
        print(f"{verb} {len(jobs)} job(s) of {user} named {name}: {ids}")
    # the TLS files of clusters whose process died without closing (kill -9)
    directory = credentials_directory(_default_options(system))
    stale = remove_stale_private_dirs(directory, dry_run=args.dry_run)
    if stale:
        verb = "would remove" if args.dry_run else "removed"
        noun = "directory" if len(stale) == 1 else "directories"
        print(f"{verb} {len(stale)} stale credential {noun} in {directory}")
    return 0


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
    p.add_argument("--walltime", help="e.g. 01:00:00")
    p.add_argument("--queue")
    p.add_argument("--account")
    p.add_argument("--name", help="worker name prefix")
    p.add_argument("--directive", action="append", metavar="LINE",
                   help="an extra directive line (repeatable)")  # fmt: skip
    p.add_argument("--scheduler-address",
                   help=f"default: tls://{PLACEHOLDER_ADDRESS}")  # fmt: skip
    p.set_defaults(run=cmd_job_script)

    p = commands.add_parser(
        "jobs",
        help="list your hpcdask jobs in the queue, with state and reason",
        description="List your queued and running jobs whose job name is one "
        "hpcdask uses by default (config and profiles), or --name.",
    )
    p.add_argument("--name", action="append", metavar="NAME",
                   help="job name to list (repeatable)")  # fmt: skip
    p.add_argument("--all", action="store_true", help="all your jobs, any name")
    p.add_argument("--system", choices=("slurm", "pbs"))
    p.set_defaults(run=cmd_jobs)

    p = commands.add_parser(
        "cancel",
        help="cancel all your queued jobs of a cluster, by job name",
        description="Cancel every queued or running job of yours named NAME with "
        "one scancel/qdel, e.g. after a notebook kernel died, and remove the TLS "
        "files that dead clusters of this host left in shared_temp_directory.",
    )
    p.add_argument("name", metavar="NAME", help="the cluster's job name")
    p.add_argument("--system", choices=("slurm", "pbs"))
    p.add_argument("--dry-run", action="store_true",
                   help="list what would be cancelled, cancel nothing")  # fmt: skip
    p.set_defaults(run=cmd_cancel)

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
