"""Which walltime new jobs ask for: the job shape that starts soonest.

A busy batch scheduler with backfill starts a short job at once when it fits a
hole before the next reservation, while a job of the user's full walltime waits
for the reservation's job to run first. hpcdask replaces jobs ahead of their
walltime without losing work, so a short job costs little: one more start-up
and roll-over. :func:`shape_decision` turns a decision to submit ``n`` jobs into
groups of jobs of one walltime each (:class:`~hpcdask.forecast.JobShape`),
placing them one by one in the queue's forecast:

1. a job of the full walltime that starts now (within ``gain``) is taken as it
   is: today's behaviour on a queue with room;
2. else the earliest hole that holds a job of at least ``min_walltime`` (plus
   ``slack``) is found; when it opens at least ``gain`` before the full job
   could start, a job as long as the hole allows (whole minutes, ``slack``
   before its end, at most the full walltime) is taken;
3. else the full walltime.

Each job taken is booked in the forecast, so the next one sees its cores gone.
Without a forecast (the probe failed, is off, or the system has none) the
decision stays as it was. Pure: the clock is an argument.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

from hpcdask.forecast import JobShape, Placement, Planner, QueueForecast, ShapeParams
from hpcdask.models import ClusterSnapshot, ScaleDecision

__all__ = ["describe_walltime", "plan_shapes", "shape_decision"]

#: a start this close to now is "now"
_NOW = 60.0


def shape_decision(
    decision: ScaleDecision,
    snapshot: ClusterSnapshot,
    now: float,
    params: ShapeParams | None,
) -> ScaleDecision:
    """``decision`` with the walltimes of the jobs it submits chosen from the
    snapshot's forecast; unchanged without one. While a forecast is on its way
    (``snapshot.forecast_due``) and none is at hand, nothing is submitted yet."""
    if params is None or decision.submit <= 0:
        return decision
    forecast = snapshot.forecast
    if forecast is not None and now - forecast.taken_at > params.max_age:
        forecast = None
    if forecast is None:
        if snapshot.forecast_due:
            return ScaleDecision(reason="asking the queue when jobs would start")
        return decision
    shapes, why = plan_shapes(forecast, decision.submit, now, params)
    if not shapes:
        return decision
    return replace(decision, shapes=shapes, reason=f"{decision.reason}: {why}")


def plan_shapes(
    forecast: QueueForecast, count: int, now: float, params: ShapeParams
) -> tuple[tuple[JobShape, ...], str]:
    """``count`` jobs placed one by one, grouped by walltime, and a sentence
    saying why; no groups when no node of the partitions fits a job."""
    planner = Planner(forecast, params.partitions, params.cpus, params.memory, now)
    if planner.slots == 0:
        return (), ""
    full = planner.earliest(params.walltime, now)
    chosen: list[tuple[float, Placement | None]] = []
    for _ in range(count):
        walltime, placement = _choose_one(planner, now, params)
        if placement is not None:
            planner.book(placement, walltime)
        chosen.append((walltime, placement))
    groups: list[JobShape] = []
    for walltime, placement in chosen:
        if groups and groups[-1].walltime == walltime:
            groups[-1] = replace(groups[-1], count=groups[-1].count + 1)
            continue
        note = _note(walltime, placement, full, now, params)
        groups.append(JobShape(1, walltime, note))
    return tuple(groups), "; ".join(g.note for g in groups)


def _choose_one(
    planner: Planner, now: float, params: ShapeParams
) -> tuple[float, Placement | None]:
    """The walltime of the next job and where it would start."""
    full = planner.earliest(params.walltime, now)
    if full is not None and full.start - now < params.gain:
        return params.walltime, full
    hole = planner.earliest(params.min_walltime + params.slack, now)
    if hole is None or (full is not None and full.start - hole.start < params.gain):
        return params.walltime, full
    room = planner.room_at(hole.start, params.walltime + params.slack)
    if room is None:
        return params.walltime, full
    minutes = math.floor((room.until - hole.start - params.slack) / 60)
    walltime = min(params.walltime, 60.0 * minutes)
    if walltime < params.min_walltime:
        return params.walltime, full
    return walltime, room


def _note(
    walltime: float,
    placement: Placement | None,
    full: Placement | None,
    now: float,
    params: ShapeParams,
) -> str:
    """Why jobs of ``walltime`` were chosen: "10-min jobs start now in
    backfill (shared); 1-h jobs at 09:40"."""
    long = describe_walltime(params.walltime)
    if placement is None:
        return f"{long} jobs: the queue shows no node where they fit"
    where = f" ({placement.partition})" if placement.partition else ""
    if walltime >= params.walltime:
        return f"{long} jobs start {_when(placement.start, now)}{where}"
    full_at = "not in sight" if full is None else _when(full.start, now)
    return (
        f"{describe_walltime(walltime)} jobs start {_when(placement.start, now)} "
        f"in backfill{where}; {long} jobs {full_at}"
    )


def _when(start: float, now: float) -> str:
    if start - now < _NOW:
        return "now"
    return f"at {time.strftime('%H:%M', time.localtime(start))}"


def describe_walltime(seconds: float) -> str:
    """``600`` -> ``"10-min"``, ``3600`` -> ``"1-h"``, ``5400`` -> ``"1h30"``."""
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes}-min"
    hours, rest = divmod(minutes, 60)
    return f"{hours}-h" if rest == 0 else f"{hours}h{rest:02d}"
