"""Placing jobs in the queue's plan (hpcdask.forecast.Planner): tables of small
hand-made plans, and the plan Slurm printed on the busy-queue test site
(tests/fixtures/slurm/busy/, captured by ci/capture-busy-fixtures.sh) against
what Slurm then did."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from hpcdask.forecast import (
    Booking,
    NodeInfo,
    PartitionLimits,
    Planner,
    QueueForecast,
    ShapeParams,
)
from hpcdask.shapes import describe_walltime, plan_shapes
from hpcdask.systems.slurm import Slurm, parse_squeue
from hpcdask.systems.slurm_starts import (
    SINFO_FIELDS,
    SQUEUE_FIELDS,
    expand_hostlist,
    forecast_argvs,
    parse_forecast,
)

BUSY = Path(__file__).parent.parent / "fixtures" / "slurm" / "busy"
GB = 2**30
NOW = 1000.0


def plan(
    *bookings: Booking,
    cpus: int = 16,
    cap: int | None = None,
    partitions: tuple[PartitionLimits, ...] = (),
    members: tuple[tuple[str, tuple[str, ...]], ...] = (),
    nodes: tuple[NodeInfo, ...] = (),
) -> QueueForecast:
    """One node ``n1`` in partition ``p`` (default) unless told otherwise."""
    return QueueForecast(
        taken_at=NOW,
        nodes=nodes or (NodeInfo("n1", cpus, 64 * GB),),
        partitions=partitions
        or (PartitionLimits("p", max_cpus_per_node=cap, default=True),),
        members=members or (("p", ("n1",)),),
        bookings=bookings,
    )


def hold(
    cpus: int, start: float, end: float, node: str = "n1", part: str = "p"
) -> Booking:
    return Booking(node, part, cpus, GB, start, end)


# a 12-core job until +600 s, then a 16-core reservation for 300 s: a 4-core hole
HOLE = plan(hold(12, 0, NOW + 600), hold(16, NOW + 600, NOW + 900))


EARLIEST = [
    ("idle node: now", plan(), 3600, NOW),
    ("a hole of 600 s: a 500-s job starts now", HOLE, 500, NOW),
    (
        "the hole is too short for an hour: after the reservation",
        HOLE,
        3600,
        NOW + 900,
    ),
    ("exactly the hole", HOLE, 600, NOW),
    (
        "full node until +100, then free",
        plan(hold(16, 0, NOW + 100)),
        3600,
        NOW + 100,
    ),
    (
        "a partition cap of 12 filled by the partition's own job",
        plan(hold(12, 0, NOW + 300), cap=12),
        60,
        NOW + 300,
    ),
    (
        "another partition's job does not count against the cap",
        plan(hold(12, 0, NOW + 300, part="q"), cap=12),
        60,
        NOW,
    ),
    ("a booking that ended is gone", plan(hold(16, 0, NOW - 1)), 60, NOW),
]


@pytest.mark.parametrize(
    ("forecast", "walltime", "start"),
    [t[1:] for t in EARLIEST],
    ids=[t[0] for t in EARLIEST],
)
def test_earliest_start(forecast: QueueForecast, walltime: float, start: float) -> None:
    placement = Planner(forecast, (), 1, GB, NOW).earliest(walltime)
    assert placement is not None and placement.start == start


def test_memory_counts() -> None:
    # 15 GB of the node's 16 held: a 2-GB job waits for them
    forecast = plan(
        Booking("n1", "p", 1, 15 * GB, 0, NOW + 50),
        nodes=(NodeInfo("n1", 16, 16 * GB),),
    )
    placement = Planner(forecast, (), 1, 2 * GB, NOW).earliest(60)
    assert placement is not None and placement.start == NOW + 50


def test_nothing_fits_a_job_bigger_than_any_node() -> None:
    planner = Planner(plan(), (), 32, GB, NOW)
    assert planner.slots == 0 and planner.earliest(60) is None


def test_down_partition_and_unusable_node_take_nothing() -> None:
    down = plan(partitions=(PartitionLimits("p", up=False, default=True),))
    assert Planner(down, (), 1, GB, NOW).slots == 0
    drained = plan(nodes=(NodeInfo("n1", 16, 64 * GB, usable=False),))
    assert Planner(drained, (), 1, GB, NOW).slots == 0


def test_partition_time_limit() -> None:
    short = plan(partitions=(PartitionLimits("p", max_time=1800, default=True),))
    planner = Planner(short, (), 1, GB, NOW)
    assert planner.earliest(3600) is None
    assert planner.earliest(1800) is not None


def test_room_and_booking() -> None:
    planner = Planner(HOLE, (), 1, GB, NOW)
    room = planner.room_at(NOW, 3600)
    assert room is not None and room.until == NOW + 600
    for _ in range(4):  # four cores in the hole
        placement = planner.earliest(500)
        assert placement is not None and placement.start == NOW
        planner.book(placement, 500)
    fifth = planner.earliest(500)
    assert fifth is not None and fifth.start == NOW + 900


def test_several_partitions_first_start_wins_then_the_users_order() -> None:
    forecast = plan(
        hold(16, 0, NOW + 300, node="n1", part="a"),
        nodes=(NodeInfo("n1", 16, 64 * GB), NodeInfo("n2", 16, 64 * GB)),
        partitions=(PartitionLimits("a", default=True), PartitionLimits("b")),
        members=(("a", ("n1",)), ("b", ("n2",))),
    )
    placement = Planner(forecast, ("a", "b"), 1, GB, NOW).earliest(3600)
    assert placement is not None and (placement.partition, placement.start) == (
        "b",
        NOW,
    )
    idle = plan(
        nodes=(NodeInfo("n1", 16, 64 * GB), NodeInfo("n2", 16, 64 * GB)),
        partitions=(PartitionLimits("a", default=True), PartitionLimits("b")),
        members=(("a", ("n1",)), ("b", ("n2",))),
    )
    first = Planner(idle, ("b", "a"), 1, GB, NOW).earliest(3600)
    assert first is not None and first.partition == "b"


def test_describe_walltime() -> None:
    assert [describe_walltime(s) for s in (480, 600, 3600, 5400)] == [
        "8-min", "10-min", "1-h", "1h30",
    ]  # fmt: skip


# -- Slurm: commands and saved real output -------------------------------------------


def test_forecast_commands() -> None:
    sinfo, squeue = forecast_argvs(["busy", "idle"])
    assert sinfo[:3] == ["sinfo", "--noheader", "--Node"]
    assert sinfo[-1] == "--partition=busy,idle"
    assert ":|,".join(SINFO_FIELDS) in sinfo[3]
    assert "--all" in squeue and ":|,".join(SQUEUE_FIELDS) in squeue[-1]
    assert forecast_argvs([])[0][-1].startswith("--Format=")  # every partition
    assert Slurm().forecast_argvs(["busy"]) == forecast_argvs(["busy"])


def saved_plan(
    sinfo: str = "sinfo_busy_idle.txt", squeue: str = "squeue_plan.txt"
) -> QueueForecast:
    now = float((BUSY / "now.txt").read_text())
    outputs = [(BUSY / sinfo).read_text(), (BUSY / squeue).read_text()]
    return parse_forecast(outputs, now)


def test_parse_saved_plan() -> None:
    forecast = saved_plan()
    assert [n.name for n in forecast.nodes] == ["busy1", "busy2"]
    assert forecast.nodes[0].cpus == 16 and forecast.nodes[0].memory == 16384 * 2**20
    assert forecast.default_partition() == "busy"
    assert dict(forecast.members) == {"busy": ("busy1",), "idle": ("busy2",)}
    busy = forecast.partitions[0]
    assert busy.up and math.isinf(busy.max_time) and busy.max_cpus_per_node is None
    # the running 12-core job until its end, the big job from its planned start
    held = sorted((b.cpus, b.start, b.end) for b in forecast.bookings)
    assert held == [(12, 1796039158, 1796039758), (16, 1796039758, 1796040058)]


def test_saved_plan_predicts_what_slurm_did() -> None:
    """On the saved plan, one-core jobs of 8 minutes start now in the 4-core
    hole and those of an hour after the big job; Slurm then started the two
    8-minute jobs at once, planned the 1-hour one at the big job's end, and
    started the one in "busy,idle" in idle (squeue_status_partition.txt)."""
    forecast = saved_plan()
    now = forecast.taken_at
    params = ShapeParams(
        walltime=3600, min_walltime=300, cpus=1, memory=GB, partitions=("busy",)
    )
    shapes, why = plan_shapes(forecast, 6, now, params)
    assert [(s.count, s.walltime) for s in shapes] == [(4, 480), (2, 3600)]
    assert why.startswith("8-min jobs start now in backfill (busy); 1-h jobs at ")
    did = parse_squeue((BUSY / "squeue_status_partition.txt").read_text())
    short = [s for s in did.values() if s.time_limit == 480]
    assert len(short) == 2 and all(
        s.start_time and s.start_time - now < 5 for s in short
    )
    (long,) = [
        s for j, s in did.items() if s.time_limit == 3600 and s.partition == "busy"
    ]
    assert long.start_time is None  # pending, planned after the big job
    planner = Planner(forecast, ("busy",), 1, GB, now)
    assert planner.earliest(3600) == planner.earliest(3600, now)
    assert planner.earliest(3600).start == 1796040058  # type: ignore[union-attr]
    (two,) = [s for s in did.values() if s.partition == "idle"]
    assert two.start_time and two.start_time - now < 5
    both = Planner(forecast, ("busy", "idle"), 1, GB, now).earliest(3600)
    assert both is not None and (both.partition, both.start) == ("idle", now)


def test_parse_saved_plan_after_submissions() -> None:
    forecast = saved_plan(squeue="squeue_plan_after.txt")
    # the two short jobs run until their end; the 1-hour job is planned after
    # the big one; the job in idle holds a core of busy2
    ends = sorted((b.node, b.cpus, b.end) for b in forecast.bookings)
    assert ("busy1", 1, 1796039645) in ends and ("busy2", 1, 1796042765) in ends
    assert ("busy1", 1, 1796043658) in ends


def test_expand_hostlist() -> None:
    # Slurm's host list syntax (as documented; this site has one-node jobs only)
    assert expand_hostlist("busy1") == ["busy1"]
    assert expand_hostlist("nid[001-003,7],login1") == [
        "nid001",
        "nid002",
        "nid003",
        "nid7",
        "login1",
    ]
    assert expand_hostlist("(null)") == []
    assert expand_hostlist("a[1-2]b[1-2]") == ["a1b1", "a1b2", "a2b1", "a2b2"]
