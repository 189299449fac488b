"""Start a cluster whose scheduler runs in a batch job (``scheduler_in="job"``).

The notebook side of :mod:`hpcdask.keeper`: make the cluster's registry entry
(:mod:`hpcdask.registry`) with TLS credentials made for it alone and the spec the
job makes the cluster from, submit the scheduler job, and wait until it says
where its scheduler listens. A scheduler job that ends first is a
:class:`~hpcdask.errors.JobFailedError` with its log's tail; one that has not
started within ``start_timeout`` is cancelled. Either way its entry is removed:
nothing is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hpcdask.config import ClusterSettings, config_snapshot
from hpcdask.errors import JobFailedError
from hpcdask.jobmode import SchedulerJob, scheduler_job_options
from hpcdask.jobs import stderr_tail
from hpcdask.options import JobOptions
from hpcdask.registry import (
    ENTRY,
    Entry,
    new_entry,
    read_entry,
    remove_entry,
    write_credentials,
    write_json,
    write_spec,
)
from hpcdask.script import render_scheduler_script
from hpcdask.systems import make_backend, queue_backend

__all__ = ["Launch", "launch", "wait_for_job_to_end"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Launch:
    """What it takes to start a scheduler-job cluster (checked already)."""

    name: str
    root: str
    opts: JobOptions
    kwargs: Mapping[str, Any]
    job: SchedulerJob
    settings: ClusterSettings
    workdir: str


async def launch(plan: Launch) -> Entry:
    """Submit the scheduler job of ``plan`` and wait until its scheduler listens."""
    from distributed.security import Security

    directory = new_entry(plan.root, plan.name)
    try:
        write_credentials(directory, Security.temporary())  # type: ignore[no-untyped-call]
        write_spec(
            directory,
            {
                "name": plan.name,
                "system": plan.opts.system,
                "kwargs": dict(plan.kwargs),
                "config": config_snapshot(),
                "idle_timeout": plan.job.idle_timeout,
                "workdir": plan.workdir,
            },
        )
        opts = scheduler_job_options(plan.opts, plan.job, plan.name)
        os.makedirs(opts.log_directory, exist_ok=True)
        backend = make_backend(opts, plan.settings.command_timeout)
        script = render_scheduler_script(opts, backend.system, directory, plan.workdir)
        job_id = await backend.submit(script, opts.log_directory)
    except BaseException:
        remove_entry(directory)
        raise
    created = time.time()
    write_json(
        directory,
        ENTRY,
        {
            "system": plan.opts.system,
            "job_id": job_id,
            "created": created,
            "log_directory": opts.log_directory,
        },
    )
    logger.info("cluster %s: scheduler job %s submitted", plan.name, job_id)
    try:
        return await _wait_for_scheduler(plan, opts, directory, job_id)
    except BaseException:
        with contextlib.suppress(Exception):
            await backend.cancel([job_id])
        remove_entry(directory)
        raise


async def _wait_for_scheduler(
    plan: Launch, opts: JobOptions, directory: str, job_id: str
) -> Entry:
    backend = make_backend(opts, plan.settings.command_timeout)
    deadline = time.monotonic() + plan.job.start_timeout
    next_poll = 0.0
    while True:
        entry = read_entry(directory)
        if entry.running:
            return entry
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError(
                f"the scheduler job {job_id} of cluster {plan.name} did not start "
                f"within {plan.job.start_timeout:g} s (scheduler_job.start_timeout); "
                "it was cancelled"
            )
        if now >= next_poll:
            next_poll = now + plan.settings.poll_interval
            status = (await backend.status([job_id])).get(job_id)
            if status is not None and status.state.is_terminal:
                await asyncio.sleep(0.5)  # the scheduler may have written just now
                if read_entry(directory).running:
                    continue
                _, stderr = backend.system.log_paths(opts, job_id)
                raise JobFailedError(
                    job_id,
                    status.state.value,
                    status.reason or f"the scheduler job of cluster {plan.name}",
                    stderr_tail(stderr),
                )
        await asyncio.sleep(0.25)


async def wait_for_job_to_end(entry: Entry, settings: ClusterSettings) -> None:
    """Wait until the scheduler job of ``entry`` has left the queue (it cancels
    its workers' jobs first, within ``close_timeout``); cancel it if it has
    not by then."""
    if not entry.job_id:
        return
    backend = queue_backend(entry.system, settings.command_timeout)
    deadline = time.monotonic() + settings.close_timeout + 30
    while time.monotonic() < deadline:
        status = (await backend.status([entry.job_id])).get(entry.job_id)
        if status is None or status.state.is_terminal:
            return
        await asyncio.sleep(0.5)
    logger.warning("scheduler job %s did not end: cancelling it", entry.job_id)
    await backend.cancel([entry.job_id])
