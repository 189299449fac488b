"""Work the scheduler has never timed asks for a thread per task (in-process
scheduler and client, no workers, no batch system)."""

from __future__ import annotations

import asyncio

from distributed import Client, Scheduler

from hpcdask.probe import unmeasured_tasks


def inc(x: int) -> int:
    return x + 1


async def test_unmeasured_tasks_count_until_their_kind_has_been_timed() -> None:
    async with (
        Scheduler(dashboard_address=":0", port=0) as scheduler,
        Client(scheduler.address, asynchronous=True) as client,
    ):
        futures = client.map(inc, range(12), pure=False)
        for _ in range(100):
            if len(scheduler.queued) + len(scheduler.unrunnable) == 12:
                break
            await asyncio.sleep(0.05)
        assert unmeasured_tasks(scheduler, limit=100) == 12
        assert unmeasured_tasks(scheduler, limit=5) == 5  # the scan is bounded
        # on its 0.5-s guess alone the scheduler asks for 2 workers for 12 tasks
        assert scheduler.adaptive_target(target_duration=5) == 2

        # once a task of the kind has run, the scheduler's own estimate takes over
        (prefix,) = scheduler.task_prefixes.values()
        prefix.duration_average = 2.0
        assert unmeasured_tasks(scheduler, limit=100) == 0
        del futures
