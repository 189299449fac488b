"""The work of a real in-process scheduler, read pool by pool: a CPU worker and
a GPU worker (one thread each) hold tasks blocked on an event while more wait."""

from __future__ import annotations

import asyncio

from distributed import Client, Event, Scheduler, Worker

from hpcdask.demand import Offer, Work, pool_targets
from hpcdask.pooldemand import read_work


def hold(name: str, x: int) -> int:
    Event(name).wait()
    return x


async def test_waiting_and_running_work_by_restrictions_and_pool() -> None:
    async with (
        Scheduler(port=0, dashboard_address=":0") as scheduler,
        Worker(scheduler.address, name="cpu-0", nthreads=1) as _,
        Worker(scheduler.address, name="gpu-0", nthreads=1, resources={"GPU": 1}) as _,
        Client(scheduler.address, asynchronous=True) as client,
    ):
        go = Event("go", client=client)
        cpu = client.map(hold, ["go"] * 6, range(6), pure=False)
        gpu = client.map(hold, ["go"] * 3, range(3), resources={"GPU": 1}, pure=False)
        tpu = client.submit(hold, "go", 0, resources={"TPU": 1}, pure=False)
        while sum(len(ws.processing) for ws in scheduler.workers.values()) < 2 or (
            len(scheduler.unrunnable) < 1
        ):
            await asyncio.sleep(0.05)

        def pool_of(name: str) -> str | None:
            return name.split("-")[0]

        waiting, running, memory = read_work(scheduler, pool_of, target_duration=5.0)

        def count(works: list[Work], resource: str) -> int:
            return sum(w.tasks for w in works if resource in w.restrictions)

        # never-timed tasks are sized at the target duration: a thread each
        assert all(w.seconds == 5.0 * w.tasks for w in [*waiting, *running])
        assert all(w.longest == 0.0 for w in [*waiting, *running])  # none timed
        assert count(waiting, "TPU") == 1
        # the GPU worker runs a GPU task or an unrestricted one: either way
        # the three GPU tasks are found, waiting or running
        assert count(waiting, "GPU") + count(running, "GPU") == 3
        assert sum(w.tasks for w in running) == 2  # one thread per worker
        assert sum(w.tasks for w in [*waiting, *running]) == 10
        assert set(memory) == {"cpu", "gpu"} and memory["gpu"].workers == 1

        offers = [
            Offer("cpu", {}, threads=1, cores=1),
            Offer("gpu", {"GPU": 1}, threads=1, cores=1, gpus=1),
        ]
        targets, stranded = pool_targets(waiting, running, memory, offers, "cpu", 5.0)
        # unrestricted tasks may have gone to either worker; GPU ones only to
        # the GPU worker: 3 GPU tasks, a thread each
        assert targets["gpu"] == 3 and stranded == 1
        assert targets["cpu"] + targets["gpu"] == 9  # every runnable task a thread
        await go.set()
        assert len(await client.gather([*cpu, *gpu])) == 9
        await client.cancel(tpu)
        # timed now: the groups carry their kind's average run time
        more = client.map(hold, ["again"] * 2, range(2), pure=False)
        while sum(len(ws.processing) for ws in scheduler.workers.values()) < 2:
            await asyncio.sleep(0.05)
        _, running, _ = read_work(scheduler, pool_of, target_duration=5.0)
        average = float(scheduler.task_prefixes["hold"].duration_average)
        assert average > 0 and {w.longest for w in running} == {average}
        await Event("again", client=client).set()
        await client.gather(more)
