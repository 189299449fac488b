"""Every job option with its built-in default and one line of help: data only.

:mod:`hpcdask.options` validates values of these options (and re-exports the
names here); :mod:`hpcdask.config` reads them from arguments and dask config;
``hpcdask config`` prints the help.
"""

from __future__ import annotations

__all__ = [
    "DEFAULTS",
    "DEPRECATED_NAMES",
    "OPTION_HELP",
    "SYSTEMS",
    "SYSTEM_OPTIONS",
    "deprecated_names",
]

SYSTEMS = ("slurm", "pbs", "sge", "local")

#: Every job option: its built-in default (used when neither argument nor config
#: gives a value) and one line of help (``hpcdask config`` prints it).
_OPTIONS: dict[str, tuple[object, str]] = {
    "name": (
        "dask-worker",
        "worker name prefix; jobs are NAME-0, NAME-1... (plain $VARS allowed)",
    ),
    "cores": (None, "cores per job and node (required here or as an argument)"),
    "memory": (
        None,
        "memory per job and node, e.g. 109GB (required here or as an argument)",
    ),
    "processes": (
        None,
        "worker processes per job and node (default: about sqrt(cores))",
    ),
    "nodes": (1, "nodes per job; workers start on every node (srun / pbsdsh)"),
    "gpus": (0, "GPUs per job and node; one worker per GPU unless processes says"),
    "resources": (
        None,
        "worker resources, e.g. {GPU: 1} (default: each worker's GPUs)",
    ),
    "python": (None, "python on the compute nodes (default: this interpreter)"),
    "interface": (None, "network interface workers and scheduler use, e.g. ib0"),
    "worker_interface": (
        None,
        "the workers' interface when it differs from the scheduler's, e.g. hsn0",
    ),
    "death_timeout": (60, "seconds a worker waits for a lost scheduler"),
    "local_directory": (None, "worker scratch space, e.g. $TMPDIR"),
    "worker_command": (
        "distributed.cli.dask_worker",
        "module that starts the workers",
    ),
    "worker_extra_args": ([], "extra arguments of the worker command"),
    "shebang": ("#!/usr/bin/env bash", "first line of the job script"),
    "queue": (None, "queue (Slurm: a partition, or a list of them)"),
    "account": (None, "account / project charged (SGE: -A account string)"),
    "project": (None, "SGE -P project (Slurm, PBS: the old name of account)"),
    "walltime": (None, "walltime per job (default 00:30:00)"),
    "job_name": (None, "the batch job name (default: name without $VARS)"),
    "job_script_prologue": ([], "shell lines run before the workers start"),
    "job_script_epilogue": ([], "shell lines run after the workers stop"),
    "job_extra_directives": ([], "extra directive lines, e.g. --gres=gpu:1"),
    "job_directives_skip": ([], "directive lines containing these are left out"),
    "log_directory": (None, "job stdout/stderr (default ~/.hpcdask/logs)"),
    "shared_temp_directory": (
        None,
        "TLS files for workers, 0700 (default: security/ beside log_directory)",
    ),
    "nanny": (True, "run workers under a nanny process"),
    # "fork" shares the nanny's imports (16 workers starting together on 2
    # cores: 7.8 s with "spawn", 3.9 s)
    "worker_start_method": (
        "fork",
        "how a nanny starts its worker: fork, spawn, forkserver",
    ),
    "protocol": (None, "tcp:// or tls://"),
    "scheduler_options": ({}, "extra arguments of the Scheduler"),
    "job_cpu": (None, "Slurm --cpus-per-task (default: cores)"),
    "job_mem": (None, "Slurm --mem (default: memory)"),
    "resource_spec": (
        None,
        "PBS / SGE -l resources (PBS default select=1:ncpus=..:mem=..)",
    ),
    "parallel_environment": (
        None,
        "SGE -pe NAME CORES for jobs of several cores, e.g. smp",
    ),
}
#: Built-in defaults, used when neither argument nor config gives a value.
DEFAULTS: dict[str, object] = {name: default for name, (default, _) in _OPTIONS.items()}
#: One line of help per job option.
OPTION_HELP: dict[str, str] = {name: text for name, (_, text) in _OPTIONS.items()}

#: dask-jobqueue's old argument names -> current names.
DEPRECATED_NAMES: dict[str, str] = {
    "env_extra": "job_script_prologue",
    "extra": "worker_extra_args",
    "job_extra": "job_extra_directives",
    "header_skip": "job_directives_skip",
    "project": "account",
}

#: options only some systems have: elsewhere they are neither read from config
#: nor accepted (``project`` stays the old name of ``account`` there).
SYSTEM_OPTIONS = {"project": ("sge",), "parallel_environment": ("sge",)}


def deprecated_names(system: str) -> dict[str, str]:
    """:data:`DEPRECATED_NAMES` less the options ``system`` has (SGE's project)."""
    options = {k for k, systems in SYSTEM_OPTIONS.items() if system in systems}
    return {old: new for old, new in DEPRECATED_NAMES.items() if old not in options}
