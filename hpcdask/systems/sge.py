"""Grid Engine (Son of Grid Engine, Univa/Altair GE): qsub, qstat, qdel, qacct.

Scripts carry ``#$`` directives as dask-jobqueue's ``SGECluster`` writes them
(``-N``, ``-q``, ``-P project``, ``-l resource_spec``, ``-l h_rt=walltime``,
``-cwd``), plus ``-S /bin/bash`` (queues that keep SGE's default
``shell_start_mode posix_compliant`` ignore the ``#!`` line and would run the
script with ``/bin/sh``), ``-pe NAME CORES`` when ``parallel_environment`` is
set, and one log file for stdout and one for stderr per job (``-o``/``-e``
with ``$JOB_ID``/``$TASK_ID``). Job arrays are ``-t 1-N``; task ``i`` is
``BASE.i`` and reads ``SGE_TASK_ID``.

One ``qstat -xml -r`` per poll lists all of the user's jobs (qstat shows only
the caller's). What it cannot say — why a job is in error, how one that left
ended — is asked by the backend (:mod:`hpcdask.systems.sge_backend`) with the
argv built here: ``qstat -j`` for jobs newly in ``Eqw``, ``qacct`` for jobs
that left.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from hpcdask.format import format_hms
from hpcdask.models import ClusterTag, JobStatus, QueuedJob
from hpcdask.options import JobOptions
from hpcdask.systems.base import QueueCommands
from hpcdask.systems.sge_output import parse_qstat_xml, parse_terse_job_id

__all__ = ["SGE", "TAG_VARIABLE"]

#: the job context variable that carries the cluster's tag
TAG_VARIABLE = "HPCDASK_CLUSTER"


class SGE(QueueCommands):
    name = "sge"
    directive_prefix = "#$"
    job_id_variables = ("JOB_ID",)
    supports_arrays = True
    array_index_variables = ("SGE_TASK_ID",)
    first_array_index = 1
    #: the shell that runs the script (hpcdask's scripts need bash)
    shell = "/bin/bash"
    # qstat lists the user's jobs, not ids: one command whatever their number
    ids_per_command = 2**31

    def directives(self, opts: JobOptions, array_size: int = 1) -> list[str]:
        # an array task's id is BASE.TASK: its logs are named the same way
        job_id = "$JOB_ID.$TASK_ID" if array_size > 1 else "$JOB_ID"
        stdout, stderr = self.log_paths(opts, job_id)
        lines = [f"-N {opts.job_name}"]
        if array_size > 1:
            lines.append(f"-t 1-{array_size}")
        if opts.queue:
            lines.append(f"-q {opts.queue}")
        if opts.project:
            lines.append(f"-P {opts.project}")
        if opts.account:
            lines.append(f"-A {opts.account}")
        if opts.parallel_environment:
            lines.append(f"-pe {opts.parallel_environment} {opts.cores}")
        if opts.resource_spec:
            lines.append(f"-l {opts.resource_spec}")
        lines.append(f"-l h_rt={format_hms(opts.walltime)}")
        lines.append(f"-S {self.shell}")
        lines.append("-cwd")
        lines.append(f"-o {stdout}")
        lines.append(f"-e {stderr}")
        return lines

    def submit_argv(self, script_path: str) -> list[str]:
        return ["qsub", "-terse", script_path]

    def array_job_ids(self, base_id: str, size: int) -> list[str]:
        return [f"{base_id}.{i}" for i in range(1, size + 1)]

    def status_argv(self, job_ids: Sequence[str]) -> list[str]:
        # qstat lists jobs, not ids: one call covers the user's jobs; -r adds
        # each job's requests (h_rt, the walltime)
        return ["qstat", "-xml", "-r"]

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        return ["qdel", *job_ids]

    def parse_job_id(self, stdout: str) -> str:
        return parse_terse_job_id(stdout)

    def parse_status(
        self, stdout: str, job_ids: Sequence[str]
    ) -> Mapping[str, JobStatus]:
        tasks = parse_qstat_xml(stdout)
        return {i: tasks[i].status for i in job_ids if i in tasks}

    def tag_directives(self, tag: ClusterTag) -> list[str]:
        # a job context: stored with the job, shown by qstat -j, and leaves
        # the job name as dask-jobqueue users expect it
        return [f"-ac {TAG_VARIABLE}={tag}"]

    def list_argv(self, user: str) -> list[str]:
        return ["qstat", "-xml", "-r", "-u", user]

    def parse_listing(self, stdout: str, user: str) -> list[QueuedJob]:
        # without tags: qstat -xml shows no job context (the backend asks
        # qstat -j for them, see contexts_argv)
        return [
            QueuedJob(task.job_id, task.name, task.status)
            for task in parse_qstat_xml(stdout).values()
            if task.owner == user
        ]

    def contexts_argv(self, job_ids: Sequence[str]) -> list[str]:
        """One ``qstat -j`` showing the jobs' contexts (their tags)."""
        return self.reasons_argv(job_ids)

    # -- what only the SGE backend asks --------------------------------------

    def reasons_argv(self, job_ids: Sequence[str]) -> list[str]:
        """One ``qstat -j`` for the jobs (or tasks) ``job_ids``: their error
        reasons."""
        numbers = dict.fromkeys(job_id.split(".")[0] for job_id in job_ids)
        return ["qstat", "-j", ",".join(numbers)]

    def accounting_argv(self, user: str, ended_after: float) -> list[str]:
        """One ``qacct`` listing every job of ``user`` that ended after the
        POSIX time ``ended_after`` (``-E``: ``-b`` is an end time)."""
        stamp = time.strftime("%Y%m%d%H%M.%S", time.localtime(ended_after))
        return ["qacct", "-o", user, "-E", "-b", stamp, "-j"]
