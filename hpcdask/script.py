"""Render job scripts: pure functions of options, never writing files.

A job script checks that the scheduler answers (:mod:`hpcdask.network`), then
starts the workers: in a one-node job the script runs ``dask worker`` itself;
in a job of several nodes the system's launcher (``srun``, ``pbsdsh``) runs it
once on every node, and each node names its workers ``JOB-<node index>``.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from hpcdask.format import format_memory_limit
from hpcdask.models import ClusterTag
from hpcdask.network import PREFLIGHT_TIMEOUT, preflight_words
from hpcdask.options import JobOptions
from hpcdask.systems.base import BatchSystem
from hpcdask.validation import command_word, shell_word

_START_METHOD = "DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD"


def worker_argv(
    opts: JobOptions,
    scheduler_address: str,
    name_word: str | None,
    security_args: Sequence[str] = (),
    nworkers: int | None = None,
) -> list[str]:
    """The worker command as shell words (variables left for the job's shell).

    ``name_word`` is the worker name already rendered as a shell word (``None``:
    no ``--name``, the node's launcher adds it); ``nworkers`` the processes this
    command starts (default ``opts.processes``; 1 where each worker is started
    on its own GPUs).
    """
    words = [
        command_word("python", opts.python),
        "-m",
        opts.worker_command,
        shell_word("scheduler address", scheduler_address),
    ]
    if name_word is not None:
        words += ["--name", name_word]
    words += [
        "--nthreads",
        str(opts.threads_per_worker),
        "--memory-limit",
        format_memory_limit(opts.memory_per_worker),
        "--nworkers",
        str(opts.processes if nworkers is None else nworkers),
        "--nanny" if opts.nanny else "--no-nanny",
        "--death-timeout",
        f"{opts.death_timeout:g}",
    ]
    if "--lifetime" not in opts.worker_extra_args:
        words += ["--lifetime", f"{opts.worker_lifetime}s"]
    if not {"--dashboard", "--dashboard-address"} & set(opts.worker_extra_args):
        # a worker's own dashboard is out of reach on a compute node (the
        # scheduler's shows every worker) and importing Bokeh for it doubles a
        # worker's start-up time
        words.append("--no-dashboard")
    if opts.local_directory:
        words += [
            "--local-directory",
            shell_word("local_directory", opts.local_directory),
        ]
    if opts.worker_resources:
        resources = ",".join(f"{k}={v:g}" for k, v in opts.worker_resources.items())
        words += ["--resources", shell_word("resources", resources)]
    if opts.worker_interface_name:
        words += ["--interface", opts.worker_interface_name]
    if opts.protocol:
        words += ["--protocol", opts.protocol]
    words += [shell_word("security", arg) for arg in security_args]
    words += [shell_word("worker_extra_args", arg) for arg in opts.worker_extra_args]
    return words


def render_job_script(
    opts: JobOptions,
    system: BatchSystem,
    scheduler_address: str,
    names: Sequence[str],
    security_args: Sequence[str] = (),
    workdir: str | None = None,
    tag: ClusterTag | None = None,
) -> str:
    """The whole batch script that starts the Dask workers of the jobs ``names``.

    One name renders one job; several render one job array whose element ``i``
    runs the workers called ``names[i]``. With ``workdir`` the workers start
    there (the client's directory, so the modules beside a notebook import).
    ``tag``, the cluster's, is stored with the job where the system can keep it.
    Names are expanded after the prologue, so they may use what it sets
    (``name="run-$RUN"`` with ``RUN=...`` in ``job_script_prologue``).
    """
    if not names:
        raise ValueError("no job names to render a script for")
    lines = [opts.shebang, ""]
    directives = system.render_directives(opts, len(names), tag)
    if directives:
        lines += [*directives, ""]
    if not system.writes_logs:
        lines += log_redirection_lines(opts, system)
    if workdir is not None:
        lines.append(f"cd {shell_word('workdir', workdir)} || exit 1")
    exports = {_START_METHOD: opts.worker_start_method} if opts.nanny else {}
    # before the prologue, so a site's prologue may still choose otherwise
    lines += [f"export {name}={value}" for name, value in exports.items()]
    lines += opts.job_script_prologue
    # after the prologue, which may not know of these variables
    if len(names) == 1:
        name_word = shell_word("name", names[0])
    else:
        lines += _array_names(system, names)
        name_word = '"${HPCDASK_NAMES[$HPCDASK_ARRAY_INDEX]}"'
    lines += _start_lines(
        opts, system, scheduler_address, name_word, security_args, workdir, exports
    )
    lines += opts.job_script_epilogue
    return "\n".join(lines) + "\n"


def _start_lines(
    opts: JobOptions,
    system: BatchSystem,
    scheduler_address: str,
    name_word: str,
    security_args: Sequence[str],
    workdir: str | None,
    exports: Mapping[str, str],
) -> list[str]:
    """The pre-flight check, then the workers, on one node or on every node."""
    check = preflight_words(
        opts.python,
        scheduler_address,
        security_args,
        timeout=min(PREFLIGHT_TIMEOUT, opts.death_timeout),
        interface=opts.worker_interface_name,
    )
    pinned = opts.gpus_per_worker > 0 and opts.processes > 1
    if opts.nodes == 1 and not pinned:
        argv = worker_argv(opts, scheduler_address, name_word, security_args)
        return [" ".join(check) + " || exit 1", " ".join(argv)]
    argv = worker_argv(
        opts, scheduler_address, None, security_args, 1 if pinned else None
    )
    node = _node_wrapper(system, opts, name_word, workdir, exports)
    if opts.nodes == 1:
        return [" ".join(check) + " || exit 1", " ".join([*node, *argv])]
    # every node's check runs to its end, so each says what it found
    launch_check = system.node_launcher(opts)
    launch_workers = system.node_launcher(opts, all_or_none=True)
    return [
        " ".join([*launch_check, *check]) + " || exit 1",
        " ".join([*launch_workers, *node, *argv]),
    ]


#: ``bash -c`` script that starts ``$1`` workers, each with its own ``$2`` of
#: the GPUs the queue granted (``CUDA_VISIBLE_DEVICES``), named ``$name-<i>``:
#: the worker command follows; ``name`` is set before it
_PINNED_WORKERS = r"""
n=$1 k=$2; shift 2
IFS=, read -r -a gpus <<< "${CUDA_VISIBLE_DEVICES:-}"
if [ "${#gpus[@]}" -lt $((n * k)) ]; then
  echo "hpcdask: $name was granted ${#gpus[@]} GPU(s)" \
    "(CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-unset});" \
    "its $n workers need $((n * k))" >&2
  exit 1
fi
pids=()
for ((i = 0; i < n; i++)); do
  CUDA_VISIBLE_DEVICES=$(IFS=,; echo "${gpus[*]:i*k:k}") "$@" --name "$name-$i" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
exit $rc"""


def _node_wrapper(
    system: BatchSystem,
    opts: JobOptions,
    name_word: str,
    workdir: str | None,
    exports: Mapping[str, str],
) -> list[str]:
    """A shell that adds ``--name`` to the worker command: ``JOB-<node index>``
    on each node of a multi-node job (the job's own shell would expand the
    index of the first node), and ``-<i>`` for each worker on GPUs of its own.

    A launcher whose tasks start in the job's original environment (pbsdsh)
    gets the script's exports and directory passed along.
    """
    node = f"-${system.node_index_variable}" if opts.nodes > 1 else ""
    body = f'exec "$@" --name "$0{node}"'
    if opts.gpus_per_worker > 0 and opts.processes > 1:
        body = f'name="$0{node}"' + _PINNED_WORKERS
    args = [name_word]
    env: list[str] = []
    if opts.nodes > 1 and not system.launcher_keeps_environment:
        env = ["/usr/bin/env", *(f"{k}={v}" for k, v in exports.items())]
        if workdir is not None:
            body = 'cd "$1" && shift && ' + body
            args.append(shell_word("workdir", workdir))
    if opts.gpus_per_worker > 0 and opts.processes > 1:
        args += [str(opts.processes), str(opts.gpus_per_worker)]
    shell = "/bin/bash" if env else "bash"
    return [*env, shell, "-c", shlex.quote(body), *args]


def _array_names(system: BatchSystem, names: Sequence[str]) -> list[str]:
    """Each element of a job array picks its worker name by its array index
    (counted from the system's first index)."""
    first = system.first_array_index
    index = str(first)
    for variable in reversed(system.array_index_variables):
        index = f"${{{variable}:-{index}}}"
    if first:
        index = f"$(( {index} - {first} ))"
    words = " ".join(shell_word("name", n) for n in names)
    return [f"HPCDASK_NAMES=({words})", f'HPCDASK_ARRAY_INDEX="{index}"']


def log_redirection_lines(opts: JobOptions, system: BatchSystem) -> list[str]:
    """Send the script's output to the log files the job table reads.

    The job id comes from the first of the system's variables that is set; the
    stems match :meth:`BatchSystem.log_paths`.
    """
    stdout, stderr = system.log_paths(opts, "${HPCDASK_JOB_ID}")
    lines = [f'exec >>"{stdout}" 2>>"{stderr}"']
    if system.job_id_variables:
        expansion = "${HPCDASK_JOB_ID"
        for variable in system.job_id_variables:
            expansion += f":-${{{variable}"
        expansion += "}" * (len(system.job_id_variables) + 1)
        lines.insert(0, f'export HPCDASK_JOB_ID="{expansion}"')
    return lines


def render_scheduler_script(
    opts: JobOptions,
    system: BatchSystem,
    entry_directory: str,
    workdir: str | None = None,
) -> str:
    """The batch script of a scheduler job (``scheduler_in="job"``): the
    directives of ``opts`` (see :func:`hpcdask.jobmode.scheduler_job_options`),
    the prologue, then the cluster's keeper (:mod:`hpcdask.keeper`) in place of
    the shell, so that the batch system's SIGTERM at walltime or cancel reaches
    it and it can cancel its workers' jobs before it ends."""
    lines = [opts.shebang, ""]
    directives = system.render_directives(opts, 1, None)
    if directives:
        lines += [*directives, ""]
    if not system.writes_logs:
        lines += log_redirection_lines(opts, system)
    if workdir is not None:
        lines.append(f"cd {shell_word('workdir', workdir)} || exit 1")
    lines += opts.job_script_prologue
    python = command_word("python", opts.python)
    entry = shell_word("registry entry", entry_directory)
    lines.append(f"exec {python} -m hpcdask.keeper {entry}")
    return "\n".join(lines) + "\n"
