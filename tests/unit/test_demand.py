"""Which pool a task needs, and each pool's target: tables, pure."""

from __future__ import annotations

import pytest

from hpcdask.demand import Offer, PoolMemory, Work, pool_targets, route

CPU = Offer("cpu", {}, threads=4, cores=4)
GPU = Offer("gpu", {"GPU": 1}, threads=4, cores=4, gpus=1)
BIG_GPU = Offer("gpu2", {"GPU": 2, "MEM": 512}, threads=8, cores=8, gpus=2)
POOLS = [CPU, GPU, BIG_GPU]


@pytest.mark.parametrize(
    ("restrictions", "pool"),
    [
        ({}, "cpu"),  # unrestricted: the default pool
        ({"GPU": 1}, "gpu"),  # both GPU pools fit: the cheaper
        ({"GPU": 2}, "gpu2"),  # only the big one has two per worker
        ({"GPU": 0.5}, "gpu"),
        ({"MEM": 100}, "gpu2"),
        ({"GPU": 4}, None),  # nobody
        ({"FPGA": 1}, None),
    ],
)
def test_a_task_goes_to_the_cheapest_pool_that_runs_it(
    restrictions: dict[str, float], pool: str | None
) -> None:
    assert route(restrictions, POOLS, default="cpu") == pool


def test_equal_cost_keeps_the_pool_added_first() -> None:
    twin = Offer("gpu-b", {"GPU": 1}, threads=4, cores=4, gpus=1)
    assert route({"GPU": 1}, [CPU, GPU, twin], "cpu") == "gpu"
    assert route({"GPU": 1}, [CPU, twin, GPU], "cpu") == "gpu-b"


def targets(waiting: list[Work], running: list[Work] = [], **memory: PoolMemory):  # type: ignore[no-untyped-def]  # noqa: B006
    return pool_targets(waiting, running, memory, POOLS, "cpu", target_duration=5.0)


@pytest.mark.parametrize(
    ("waiting", "running", "expected"),
    [
        # nothing to do: every pool to zero
        ([], [], {"cpu": 0, "gpu": 0, "gpu2": 0}),
        # 80 CPU tasks of 1 s: 16 threads' worth over 5 s, 4 workers of 4
        ([Work({}, 80, 80.0)], [], {"cpu": 4, "gpu": 0, "gpu2": 0}),
        # a GPU-only backlog grows only the GPU pool: a worker of 4 threads
        # offering GPU=1 runs one of these at a time, so 40 of 10 s: 40 workers
        ([Work({"GPU": 1}, 40, 400.0)], [], {"cpu": 0, "gpu": 40, "gpu2": 0}),
        # short GPU tasks: 40 of 0.5 s over 5 s is 4 workers' worth
        ([Work({"GPU": 1}, 40, 20.0)], [], {"cpu": 0, "gpu": 4, "gpu2": 0}),
        # one short waiting task still asks one worker of its pool
        ([Work({"GPU": 2}, 1, 0.1)], [], {"cpu": 0, "gpu": 0, "gpu2": 1}),
        # a thread per task at most: 3 long tasks, one worker of 4 threads
        ([Work({}, 3, 3000.0)], [], {"cpu": 1, "gpu": 0, "gpu2": 0}),
        # unrestricted work running on GPU workers keeps the CPU pool busy,
        # not the GPU pool
        ([], [Work({}, 8, 40.0)], {"cpu": 2, "gpu": 0, "gpu2": 0}),
        # both phases at once
        (
            [Work({}, 40, 40.0), Work({"GPU": 1}, 8, 80.0)],
            [Work({"GPU": 1}, 4, 20.0)],
            {"cpu": 2, "gpu": 12, "gpu2": 0},
        ),
    ],
)
def test_each_pool_is_sized_by_the_work_only_it_can_run(
    waiting: list[Work], running: list[Work], expected: dict[str, int]
) -> None:
    assert targets(waiting, running) == (expected, 0)


def test_tasks_no_pool_can_run_are_counted_not_sized() -> None:
    assert targets([Work({"TPU": 1}, 5, 50.0)]) == ({"cpu": 0, "gpu": 0, "gpu2": 0}, 5)


def test_a_pool_short_of_memory_doubles() -> None:
    full = PoolMemory(workers=3, used=7e9, limit=10e9)
    assert targets([], [], gpu=full)[0]["gpu"] == 6
    # half full: not doubled, but its data is kept (no other pool has room)
    half = PoolMemory(workers=3, used=5e9, limit=10e9)
    assert targets([], [], gpu=half)[0]["gpu"] == 3


def test_a_pool_keeps_workers_for_its_data_unless_another_pool_has_room() -> None:
    holding = PoolMemory(workers=4, used=3e9, limit=16e9)  # 4 GB a worker
    # no other worker: two workers hold 6 GB of room for 3 GB of data
    assert targets([], [], gpu=holding)[0]["gpu"] == 2
    # the CPU pool has 10 GB free for it (twice the data: 6 GB): the GPU pool
    # may go, its data moves
    roomy_cpu = PoolMemory(workers=2, used=1e9, limit=12e9)
    assert targets([], [], gpu=holding, cpu=roomy_cpu)[0] == {
        "cpu": 0,
        "gpu": 0,
        "gpu2": 0,
    }
    # too little room elsewhere: the GPU pool keeps its two
    full_cpu = PoolMemory(workers=1, used=1e9, limit=4e9)
    assert targets([], [], gpu=holding, cpu=full_cpu)[0]["gpu"] == 2


@pytest.mark.parametrize(
    ("offer", "restrictions", "expected"),
    [
        (CPU, {}, 4),  # unrestricted: a thread each
        (GPU, {"GPU": 1}, 1),  # one GPU: one task at a time, 4 threads or not
        (BIG_GPU, {"GPU": 1}, 2),
        (BIG_GPU, {"GPU": 0.5}, 4),
        (BIG_GPU, {"GPU": 0.25}, 8),  # 8 fit the GPUs; 8 threads
        (BIG_GPU, {"GPU": 0.1}, 8),  # the threads bound it
        (BIG_GPU, {"GPU": 1, "MEM": 200}, 2),
        (BIG_GPU, {"GPU": 1, "MEM": 300}, 1),  # the scarcer resource bounds it
        (Offer("x", {"GPU": 1}, threads=0, cores=1), {"GPU": 1}, 1),
    ],
)
def test_a_worker_runs_as_many_tasks_at_once_as_threads_and_resources_allow(
    offer: Offer, restrictions: dict[str, float], expected: int
) -> None:
    assert offer.at_once(restrictions) == expected


def test_each_pool_drains_by_its_own_tasks_time() -> None:
    from hpcdask.demand import pool_task_durations

    work = [
        Work({}, 100, 1000.0, longest=10.0),
        Work({"GPU": 1}, 8, 1440.0, longest=180.0),
        Work({"GPU": 2}, 1, 1.0, longest=0.0),  # never timed
        Work({"TPU": 1}, 1, 900.0, longest=900.0),  # no pool runs it
    ]
    assert pool_task_durations(work, POOLS, "cpu") == {
        "cpu": 10.0,
        "gpu": 180.0,
        "gpu2": 0.0,
    }
