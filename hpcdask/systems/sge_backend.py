"""The Grid Engine backend: SGE's environment for its commands, failed starts
from ``Eqw``, and how jobs that left the queue ended (``qacct``).

**The environment.** Grid Engine's commands need ``SGE_ROOT``, ``SGE_CELL``,
the qmaster's port and SGE's ``bin`` directory first on ``PATH``, which its
``$SGE_ROOT/$SGE_CELL/common/settings.sh`` sets. When ``SGE_ROOT`` is known
(config ``hpcdask.sge.sge-root``, else the environment variable), that file
is sourced once, in a child ``/bin/sh``, before the first command, and every
command runs with the environment it makes: on a site where the login shell
already did so this changes nothing; on a machine where another ``qsub`` (a
Torque or Slurm wrapper) comes first on ``PATH``, SGE's is used all the same.
Without ``SGE_ROOT``, commands run with this process's environment.

**One status query per poll.** ``qstat -xml -r`` lists every job of the user.
Jobs newly in an error state (``Eqw``: they never run unless an operator
clears them) cost one more call, ``qstat -j`` for all of them, for the
queue's reason, and one ``qdel``; they are then reported ``failed`` with that
reason (a failed start). Jobs that left the queue cost one ``qacct`` for all
of them, when accounting is on: its record says whether the job completed,
failed (exit code), or was killed at its ``h_rt``; a job hpcdask deleted
itself is ``cancelled`` without asking. A record may lag the job's end by the
site's ``accounting_flush_time``: meanwhile the job shows ``completing``, for
at most :data:`ACCOUNTING_WAIT` seconds, then ``gone``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import pwd
import time
from collections.abc import Mapping, Sequence

from hpcdask.errors import BatchCommandError
from hpcdask.models import JobState, JobStatus, QueuedJob
from hpcdask.runner import Completed, Runner, SubprocessRunner
from hpcdask.systems.base import CommandBackend
from hpcdask.systems.sge import SGE
from hpcdask.systems.sge_output import (
    SGETask,
    parse_contexts,
    parse_error_reasons,
    parse_qacct,
    parse_qdel_unknown,
    parse_qstat_xml,
)

__all__ = ["ACCOUNTING_WAIT", "SGEBackend", "SGEEnvironmentRunner"]

logger = logging.getLogger(__name__)

#: seconds a job that left the queue waits for its accounting record
ACCOUNTING_WAIT = 30.0
#: ``qacct -b`` looks this far before the last time a job was seen live
#: (clock skew between this host and the qmaster's, whole seconds)
_ACCOUNTING_SLACK = 120.0
_NO_FILE = "no jobs running since startup"
# source settings.sh ($1) without `set -u` (it reads $MANPATH unguarded)
_SOURCE = '. "$1" >/dev/null 2>&1 || exit 3; exec env -0'


class SGEEnvironmentRunner:
    """A :class:`~hpcdask.runner.Runner` whose commands get the environment
    ``$SGE_ROOT/$SGE_CELL/common/settings.sh`` makes (this process's own when
    ``root`` is ``None``), loaded once, at the first command."""

    def __init__(self, root: str | None, cell: str = "default") -> None:
        self.settings = (
            os.path.join(root, cell, "common", "settings.sh") if root else ""
        )
        self._runner: SubprocessRunner | None = None
        self._loading = asyncio.Lock()
        #: every argv run, in order (the settings.sh call not counted)
        self.calls: list[tuple[str, ...]] = []

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 60.0,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Completed:
        self.calls.append(tuple(argv))
        async with self._loading:
            if self._runner is None:
                settings, error = await self._load(timeout)
                if error:
                    return Completed(tuple(argv), 127, "", error)
                self._runner = SubprocessRunner(settings)
        return await self._runner.run(argv, timeout=timeout, cwd=cwd, env=env)

    async def _load(self, timeout: float) -> tuple[dict[str, str] | None, str]:
        if not self.settings:
            return None, ""
        if not os.path.isfile(self.settings):
            return None, (
                f"Grid Engine's {self.settings} does not exist: set SGE_ROOT "
                "(and SGE_CELL) or hpcdask.sge.sge-root to where SGE is installed"
            )
        result = await SubprocessRunner().run(
            ["/bin/sh", "-c", _SOURCE, "sh", self.settings], timeout=timeout
        )
        if not result.ok:
            return None, f"sourcing {self.settings} failed (exit {result.returncode})"
        items = (item.partition("=") for item in result.stdout.split("\0"))
        return {key: value for key, sep, value in items if sep and key}, ""


class SGEBackend(CommandBackend):
    """:class:`~hpcdask.systems.base.CommandBackend` for Grid Engine, with
    the extra calls described in this module's docstring."""

    def __init__(
        self,
        system: SGE,
        runner: Runner,
        timeout: float = 60.0,
        user: str | None = None,
    ) -> None:
        super().__init__(system, runner, timeout)
        self.sge = system
        self.user = user or pwd.getpwuid(os.getuid()).pw_name
        #: whether qacct answers (off: jobs that leave the queue are gone)
        self.accounting = True
        self._no_file = False
        #: ids this backend deleted: jobs asked to go, and jobs in error
        self._deleted: set[str] = set()
        #: the failed starts made of jobs in error, and their reasons
        self._errors: dict[str, JobStatus] = {}
        self._reasons: dict[str, str] = {}
        #: when each job (an array: its number) was submitted, last seen live
        self._submitted: dict[str, float] = {}
        self._last_seen: dict[str, float] = {}
        self._left_at: dict[str, float] = {}

    async def status(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        result = await self.runner.run(
            self.sge.status_argv(job_ids), timeout=self.timeout
        )
        try:
            tasks = parse_qstat_xml(result.stdout) if result.ok else None
        except ValueError:
            tasks = None
        if tasks is None:
            raise BatchCommandError(
                result.argv, result.returncode, result.stderr or result.stdout
            )
        now = time.time()
        out: dict[str, JobStatus] = {}
        for job_id in job_ids:
            if job_id in tasks:
                self._last_seen[job_id] = now
                out[job_id] = tasks[job_id].status
        in_error = [i for i in job_ids if i in tasks and tasks[i].in_error]
        if in_error:
            out.update(await self._fail(in_error, tasks, now))
        left = [i for i in job_ids if i not in tasks]
        if left:
            out.update(await self._ended(left, now))
        return out

    async def list_jobs(self, user: str) -> list[QueuedJob]:
        """The user's live jobs; their tags (job contexts, which ``qstat
        -xml`` does not show) from one ``qstat -j`` of them all."""
        jobs = await super().list_jobs(user)
        if not jobs:
            return jobs
        result = await self.runner.run(
            self.sge.contexts_argv([j.job_id for j in jobs]), timeout=self.timeout
        )
        tags = parse_contexts(result.stdout)
        return [
            dataclasses.replace(j, tag=tags.get(j.job_id.split(".")[0])) for j in jobs
        ]

    async def submit(self, script: str, log_directory: str) -> str:
        job_id = await super().submit(script, log_directory)
        self._submitted[job_id] = time.time()
        return job_id

    async def cancel(self, job_ids: Sequence[str]) -> None:
        self._deleted.update(job_ids)
        result = await self.runner.run(
            self.sge.cancel_argv(job_ids), timeout=self.timeout
        )
        # qdel exits 1 when one id is unknown, even if it deleted the others;
        # an id that no longer exists has ended, which is no error here
        unknown = parse_qdel_unknown(result.stdout)
        refused = [
            line
            for line in (result.stdout + result.stderr).splitlines()
            if line.strip() and "does not exist" not in line and "denied" in line
        ]
        if result.returncode == 0 or (unknown and not refused):
            return
        raise BatchCommandError(
            result.argv, result.returncode, result.stderr or result.stdout
        )

    # -- jobs in error: a failed start with the queue's reason, deleted ------

    async def _fail(
        self, job_ids: list[str], tasks: Mapping[str, SGETask], now: float
    ) -> dict[str, JobStatus]:
        """Jobs in error become failed starts, once ``qdel`` removed them."""
        new = [i for i in job_ids if i not in self._reasons]
        if new:
            await self._ask_reasons(new, tasks)
        out: dict[str, JobStatus] = {}
        try:
            await self.cancel(job_ids)
        except BatchCommandError as e:
            logger.warning("could not delete jobs in error %s: %s", job_ids, e)
            for job_id in job_ids:  # held, with the reason; deleted next poll
                out[job_id] = tasks[job_id].status._replace(
                    reason=self._reasons[job_id]
                )
            return out
        for job_id in job_ids:
            status = tasks[job_id].status._replace(
                state=JobState.FAILED,
                reason=self._reasons[job_id],
                end_time=now,
            )
            self._errors[job_id] = out[job_id] = status
        return out

    async def _ask_reasons(
        self, job_ids: list[str], tasks: Mapping[str, SGETask]
    ) -> None:
        result = await self.runner.run(
            self.sge.reasons_argv(job_ids), timeout=self.timeout
        )
        reasons = parse_error_reasons(result.stdout)
        for job_id in job_ids:
            number, _, task = job_id.partition(".")
            by_task = reasons.get(number, {})
            text = by_task.get(int(task or 1)) or next(iter(by_task.values()), "")
            letters = tasks[job_id].letters
            self._reasons[job_id] = (
                f"{letters}: {text}" if text else f"{letters}: error, no reason given"
            )

    # -- jobs that left the queue: how they ended ----------------------------

    async def _ended(self, job_ids: list[str], now: float) -> dict[str, JobStatus]:
        out: dict[str, JobStatus] = {}
        unknown = []
        for job_id in job_ids:
            if job_id in self._errors:
                out[job_id] = self._errors[job_id]
            elif job_id in self._reasons:  # in error, then deleted by others
                out[job_id] = JobStatus(JobState.FAILED, self._reasons[job_id])
            elif job_id in self._deleted:
                out[job_id] = JobStatus(JobState.CANCELLED)
            else:
                unknown.append(job_id)
                self._left_at.setdefault(job_id, now)
        if unknown:
            records = await self._accounting(unknown, now)
            for job_id in unknown:
                out[job_id] = records.get(job_id) or self._waiting(job_id, now)
        return out

    async def _accounting(self, job_ids: list[str], now: float) -> dict[str, JobStatus]:
        if not self.accounting:
            return {}
        seen = [self._seen(i, now) for i in job_ids]
        since = min(seen) - _ACCOUNTING_SLACK
        result = await self.runner.run(
            self.sge.accounting_argv(self.user, since), timeout=self.timeout
        )
        # no accounting file (accounting off, or no job ever ended here):
        # "no jobs running since startup", exit 1
        self._no_file = _NO_FILE in result.stdout + result.stderr
        if result.returncode == 127:
            self._accounting_off(result.stderr)
        return parse_qacct(result.stdout)

    def _seen(self, job_id: str, now: float) -> float:
        """When ``job_id`` was last known live (seen, or submitted)."""
        submitted = self._submitted.get(job_id.split(".")[0], now)
        return self._last_seen.get(job_id, submitted)

    def _waiting(self, job_id: str, now: float) -> JobStatus:
        """A job that left, with no accounting record (yet)."""
        if self.accounting and now - self._left_at[job_id] < ACCOUNTING_WAIT:
            return JobStatus(
                JobState.COMPLETING,
                reason="left the queue; its record not yet in qacct",
            )
        if self.accounting and self._no_file:
            # still no accounting file long after a job ended: accounting is off
            self._accounting_off(f"qacct: {_NO_FILE}")
        return JobStatus(JobState.GONE)

    def _accounting_off(self, why: str) -> None:
        self.accounting = False
        logger.info("no job accounting (%s): jobs that end show as gone", why.strip())
