"""decide() choosing the walltime of new jobs from the queue's forecast: tables of
snapshots (the forecast is data in the snapshot) and expected decisions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hpcdask.forecast import (
    Booking,
    JobShape,
    NodeInfo,
    PartitionLimits,
    QueueForecast,
    ShapeParams,
)
from hpcdask.models import ClusterSnapshot, JobState, JobView
from hpcdask.policy import PolicyParams, PolicyState, decide, wants_forecast

GB = 2**30
NOW = 100_000.0
HOUR = 3600.0
MIN = 60.0

SHAPES = ShapeParams(
    walltime=HOUR, min_walltime=10 * MIN, gain=2 * MIN, slack=MIN, cpus=1, memory=GB
)
# hour-long jobs whose workers retire 300 s before the walltime
PARAMS = PolicyParams(
    maximum_jobs=16,
    idle_timeout=10,
    replace_ahead=315,
    lifetime_margin=300,
    shapes=SHAPES,
)


def queue(*bookings: Booking, nodes: int = 1, parts: str = "p") -> QueueForecast:
    """``nodes`` nodes of 16 cores (n1, n2...); partition p has n1, q has n2."""
    names = [f"n{i + 1}" for i in range(nodes)]
    partitions = tuple(
        PartitionLimits(p, default=(i == 0)) for i, p in enumerate(parts)
    )
    members = tuple((p, (names[i],)) for i, p in enumerate(parts))
    return QueueForecast(
        taken_at=NOW - 5,
        nodes=tuple(NodeInfo(n, 16, 64 * GB) for n in names),
        partitions=partitions,
        members=members,
        bookings=bookings,
    )


def held(
    cpus: int, start: float, end: float, node: str = "n1", part: str = "p"
) -> Booking:
    return Booking(node, part, cpus, GB, start, end)


# 8 cores busy until +11 min, then the whole node reserved for an hour: a hole
# of 8 cores for 11 minutes now, nothing for an hour after it
HOLE_NOW = queue(
    held(8, NOW - 600, NOW + 11 * MIN), held(16, NOW + 11 * MIN, NOW + 71 * MIN)
)
# every core of both partitions' nodes busy for two hours
ALL_BUSY = queue(
    held(16, NOW - 60, NOW + 2 * HOUR),
    held(16, NOW - 60, NOW + 2 * HOUR, node="n2", part="q"),
    nodes=2,
    parts="pq",
)
IDLE = queue()
# nothing free for 5 minutes, then 8 cores free until a reservation at +20 min
HOLE_LATER = queue(
    held(8, NOW - 60, NOW + 5 * MIN),
    held(8, NOW - 60, NOW + 20 * MIN),
    held(16, NOW + 20 * MIN, NOW + 80 * MIN),
)
# a hole of 6 minutes only (below the 10-minute floor)
SHORT_HOLE = queue(
    held(8, NOW - 60, NOW + 6 * MIN), held(16, NOW + 6 * MIN, NOW + HOUR)
)
# the node frees up in 90 s: not worth a shorter job (gain 2 min)
SOON = queue(held(16, NOW - 60, NOW + 90))


def snap(
    target: int,
    *jobs: JobView,
    forecast: QueueForecast | None = None,
    due: bool = False,
) -> ClusterSnapshot:
    return ClusterSnapshot(target, tuple(jobs), forecast=forecast, forecast_due=due)


def running(name: str, start: float, limit: float) -> JobView:
    return JobView(name, JobState.RUNNING, start - 10, start, limit, workers=1)


def shapes(*groups: tuple[int, float]) -> tuple[tuple[int, float], ...]:
    return groups


# (description, snapshot, params, expected submit, expected (count, walltime)
# groups, words the reason holds)
TABLE = [
    (
        "hole now for 11 min, nothing for an hour: 10-min jobs now",
        snap(8, forecast=HOLE_NOW),
        PARAMS,
        8,
        shapes((8, 10 * MIN)),
        ["10-min jobs start now in backfill (p); 1-h jobs at"],
    ),
    (
        "a hole for 8 of 12: the rest ask for the hour",
        snap(12, forecast=HOLE_NOW),
        PARAMS,
        12,
        shapes((8, 10 * MIN), (4, HOUR)),
        ["10-min jobs start now", "1-h jobs start at"],
    ),
    (
        "all partitions busy: the full walltime, as today",
        snap(4, forecast=ALL_BUSY),
        replace(PARAMS, shapes=replace(SHAPES, partitions=("p", "q"))),
        4,
        shapes((4, HOUR)),
        ["1-h jobs start at"],
    ),
    (
        "an idle queue: the full walltime starts now",
        snap(4, forecast=IDLE),
        PARAMS,
        4,
        shapes((4, HOUR)),
        ["1-h jobs start now (p)"],
    ),
    (
        "a hole that opens in 5 min, ahead of the full job: 14-min jobs",
        snap(8, forecast=HOLE_LATER),
        PARAMS,
        8,
        shapes((8, 14 * MIN)),
        ["14-min jobs start at"],
    ),
    (
        "a hole below the walltime floor: the full walltime",
        snap(8, forecast=SHORT_HOLE),
        PARAMS,
        8,
        shapes((8, HOUR)),
        ["1-h jobs start at"],
    ),
    (
        "the node frees within the gain: the full walltime",
        snap(2, forecast=SOON),
        PARAMS,
        2,
        shapes((2, HOUR)),
        ["1-h jobs start at"],
    ),
    (
        "probe failed (no forecast): today's decision",
        snap(8),
        PARAMS,
        8,
        shapes(),
        ["submit 8 (short of 8)"],
    ),
    (
        "forecast on its way: wait for it",
        snap(8, due=True),
        PARAMS,
        0,
        shapes(),
        ["asking the queue"],
    ),
    (
        "a forecast older than max_age: today's decision",
        snap(8, forecast=replace(HOLE_NOW, taken_at=NOW - 600)),
        PARAMS,
        8,
        shapes(),
        ["submit 8 (short of 8)"],
    ),
    (
        "shapes off (a site switched them off): the forecast is not read",
        snap(8, forecast=HOLE_NOW),
        replace(PARAMS, shapes=None),
        8,
        shapes(),
        ["submit 8 (short of 8)"],
    ),
    (
        "no node of the partition fits the job: today's decision",
        snap(2, forecast=HOLE_NOW),
        replace(PARAMS, shapes=replace(SHAPES, cpus=32)),
        2,
        shapes(),
        ["submit 2 (short of 2)"],
    ),
    (
        "nothing to submit: the forecast changes nothing",
        snap(1, running("a", NOW - 100, HOUR), forecast=HOLE_NOW),
        PARAMS,
        0,
        shapes(),
        [],
    ),
]


@pytest.mark.parametrize(
    ("snapshot", "params", "submit", "groups", "words"),
    [t[1:] for t in TABLE],
    ids=[t[0] for t in TABLE],
)
def test_shape_table(
    snapshot: ClusterSnapshot,
    params: PolicyParams,
    submit: int,
    groups: tuple[tuple[int, float], ...],
    words: list[str],
) -> None:
    decision, _ = decide(snapshot, PolicyState(), NOW, params)
    assert decision.submit == submit
    assert [(s.count, s.walltime) for s in decision.shapes] == list(groups)
    assert sum(s.count for s in decision.shapes) in (0, decision.submit)
    for word in words:
        assert word in decision.reason


def test_each_shape_says_why() -> None:
    decision, _ = decide(snap(12, forecast=HOLE_NOW), PolicyState(), NOW, PARAMS)
    short, full = decision.shapes
    assert isinstance(short, JobShape)
    assert short.note.startswith("10-min jobs start now in backfill (p); 1-h jobs at ")
    assert full.note.startswith("1-h jobs start at ")


def test_a_short_job_is_replaced_by_its_own_margin() -> None:
    """A 10-minute job's workers retire 60 s before its end (10% of it), so
    it is replaced 60 + 15 s ahead, not 315 s as an hour-long job is."""
    ten = 10 * MIN
    job = running("a", NOW - ten + 200, ten)  # 200 s left
    decision, _ = decide(snap(1, job), PolicyState(), NOW, PARAMS)
    assert decision.submit == 0
    late = running("a", NOW - ten + 70, ten)  # 70 s left: replaced
    decision, _ = decide(snap(1, late), PolicyState(), NOW, PARAMS)
    assert decision.submit == 1
    # hour-long jobs keep the hour's margin
    hour = running("b", NOW - HOUR + 310, HOUR)
    decision, _ = decide(snap(1, hour), PolicyState(), NOW, PARAMS)
    assert decision.submit == 1


@pytest.mark.parametrize(
    ("snapshot", "params", "wanted"),
    [
        (snap(0), PARAMS, False),
        (snap(2, running("a", NOW, HOUR)), PARAMS, True),
        (snap(1, running("a", NOW, HOUR)), PARAMS, False),
        (snap(1, running("a", NOW - HOUR + 320, HOUR)), PARAMS, True),
        (snap(4), replace(PARAMS, shapes=None), False),
    ],
    ids=[
        "no work",
        "more jobs wanted",
        "enough jobs",
        "a replacement soon",
        "shapes off",
    ],
)
def test_wants_forecast(
    snapshot: ClusterSnapshot, params: PolicyParams, wanted: bool
) -> None:
    assert wants_forecast(snapshot, NOW, params, lead=30) is wanted
