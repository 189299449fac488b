"""The adaptive scaling policy: a pure function from a snapshot to a decision.

:func:`decide` sees the scheduler's wish (``adaptive_target``) and the job table,
and says which jobs to submit, cancel and retire. The clock is an argument and
all memory between ticks lives in :class:`PolicyState`, so the policy is tested
with tables of snapshots, without processes or sleeps.

Rules, in order:

1. *Wanted jobs* = the scheduler's target in whole jobs, within
   ``[minimum_jobs, maximum_jobs]``.
2. *Capacity* = live jobs, pending ones included (they are capacity already asked
   for), minus jobs whose walltime ends within ``replace_ahead`` seconds (their
   replacements are submitted now, so capacity stays flat across walltimes).
3. Short of capacity: submit the difference in one submission, no more than
   ``max_pending_jobs`` pending at once, and not while backing off after failed
   starts (the wait doubles with each consecutive failure; after
   ``max_failed_starts`` in a row, scaling up stops until the user scales again).
4. Surplus: once it has lasted ``scale_down_delay`` seconds, pending jobs are
   cancelled first (newest first); then jobs whose workers have all been idle for
   ``idle_timeout`` seconds are retired (longest idle first), their data handed
   over. Jobs not counted as capacity (near their walltime) are retired once idle
   for ``idle_timeout`` too.
5. Drain: a job whose workers' lifetime (``lifetime_margin`` before the walltime)
   ends within twice the time its tasks take (``snapshot.task_duration``; twice,
   because a worker holds one task beyond those it runs) gets no new task, and
   is retired as soon as it is idle; its replacement is submitted that much
   earlier. A task started on it would be lost at the lifetime (the worker
   retires) or the walltime (the queue kills it) and run again elsewhere. Tasks
   longer than a quarter of a job's lifetime cannot be helped this way and do not
   drain.
6. Walltime: with ``params.shapes``, the jobs submitted ask for the walltime
   that starts soonest in the snapshot's forecast of the queue
   (:func:`hpcdask.shapes.shape_decision`); a job shorter than the user's
   walltime is replaced by the lifetime margin of its own walltime.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from hpcdask.models import (
    ClusterSnapshot,
    JobView,
    PolicyParams,
    ScaleDecision,
    lifetime_margin,
)
from hpcdask.shapes import shape_decision

__all__ = ["PolicyParams", "PolicyState", "decide", "wanted_jobs", "wants_forecast"]


@dataclass(frozen=True)
class PolicyState:
    """What :func:`decide` remembers between ticks."""

    #: when the current surplus began (None: no surplus).
    surplus_since: float | None = None
    #: job name -> since when all its workers have been idle.
    idle_since: Mapping[str, float] = field(default_factory=dict)
    #: failed starts at or before this time are forgiven (the user scaled again).
    failures_forgiven_until: float = -math.inf


def wanted_jobs(target_workers: int, params: PolicyParams) -> int:
    jobs = math.ceil(max(target_workers, 0) / params.workers_per_job)
    return min(max(jobs, params.minimum_jobs), params.maximum_jobs)


def consecutive_failures(
    snapshot: ClusterSnapshot, state: PolicyState
) -> tuple[int, float | None]:
    """Failed starts since the last job that did start, and the latest of them."""
    since = max(
        snapshot.last_start if snapshot.last_start is not None else -math.inf,
        state.failures_forgiven_until,
    )
    recent = [t for t in snapshot.failed_starts if t > since]
    return len(recent), (max(recent) if recent else None)


@dataclass
class _Tally:
    """The live jobs sorted by what they mean for this tick."""

    idle_since: dict[str, float] = field(default_factory=dict)
    #: jobs that count as capacity (queued ones included)
    capacity: int = 0
    #: jobs waiting in the queue, capacity or not
    pending_total: int = 0
    #: (submit time, name) of the queued jobs that count as capacity
    pending: list[tuple[float, str]] = field(default_factory=list)
    #: (seconds idle, name) of capacity idle past idle_timeout
    idle: list[tuple[float, str]] = field(default_factory=list)
    #: jobs near their walltime to retire now
    retire_expiring: list[str] = field(default_factory=list)
    #: jobs too close to their end for another task
    drain: list[str] = field(default_factory=list)


def _tally(
    snapshot: ClusterSnapshot, state: PolicyState, now: float, params: PolicyParams
) -> _Tally:
    """One pass over the jobs (it runs every tick, with up to thousands)."""
    # a worker holds a task beyond those it runs (distributed's worker
    # saturation): the last one it gets may start a task's time after it
    drain_ahead = 2 * snapshot.task_duration
    tally = _Tally()
    for job in snapshot.jobs:
        if job.retiring:
            continue
        tally.pending_total += job.is_pending
        idle_for = -1.0
        if job.idle:
            since = state.idle_since.get(job.name, now)
            tally.idle_since[job.name] = since
            idle_for = now - since
        start, limit = job.start_time, job.time_limit
        margin, ahead = _margins(job, params)
        if (
            start is not None
            and limit is not None
            and start + limit <= (now + ahead + drain_ahead)
        ):
            # near its walltime: not capacity
            lifetime = limit - margin
            if 0 < drain_ahead < lifetime / 2 and start + lifetime - drain_ahead <= now:
                # too close to its end to finish another task: drain, then go
                (tally.retire_expiring if job.idle else tally.drain).append(job.name)
            elif idle_for >= params.idle_timeout:
                tally.retire_expiring.append(job.name)
            continue
        tally.capacity += 1
        if job.is_pending:
            tally.pending.append((job.submit_time, job.name))
        elif idle_for >= params.idle_timeout:
            tally.idle.append((idle_for, job.name))
    return tally


def _margins(job: JobView, params: PolicyParams) -> tuple[float, float]:
    """A job's lifetime margin and how long before its walltime it is
    replaced: a job shorter than the user's walltime (its walltime chosen by
    the shape policy) has the margin of its own walltime."""
    shapes, limit = params.shapes, job.time_limit
    if shapes is None or limit is None or limit >= shapes.walltime:
        return params.lifetime_margin, params.replace_ahead
    margin = lifetime_margin(limit)
    return margin, params.replace_ahead - params.lifetime_margin + margin


def wants_forecast(
    snapshot: ClusterSnapshot, now: float, params: PolicyParams, lead: float
) -> bool:
    """Whether a scale-up may come within ``lead`` seconds: the target asks
    for more jobs than live ones, or a job nears the time of its replacement
    (a forecast is read only then)."""
    if params.shapes is None:
        return False
    if wanted_jobs(snapshot.target_workers, params) > len(snapshot.jobs):
        return True
    horizon = now + params.replace_ahead + lead + 2 * snapshot.task_duration
    return any(
        job.start_time is not None
        and job.time_limit is not None
        and job.start_time + job.time_limit <= horizon
        for job in snapshot.jobs
    )


def decide(
    snapshot: ClusterSnapshot, state: PolicyState, now: float, params: PolicyParams
) -> tuple[ScaleDecision, PolicyState]:
    """One tick of adaptive scaling. Pure: same inputs, same answer."""
    tally = _tally(snapshot, state, now, params)
    drain = tuple(tally.drain)
    wanted = wanted_jobs(snapshot.target_workers, params)
    if wanted > tally.capacity:
        state = PolicyState(None, tally.idle_since, state.failures_forgiven_until)
        decision = _scale_up(
            snapshot, state, now, params, tally.pending_total, wanted - tally.capacity
        )
        decision = shape_decision(decision, snapshot, now, params.shapes)
        return replace(
            decision, retire=tuple(tally.retire_expiring), drain=drain
        ), state
    if wanted == tally.capacity:
        state = PolicyState(None, tally.idle_since, state.failures_forgiven_until)
        reason = _drain_reason(drain) or (
            "idle jobs near their walltime" if tally.retire_expiring else ""
        )
        retire = tuple(tally.retire_expiring)
        return ScaleDecision(retire=retire, drain=drain, reason=reason), state
    surplus_since = state.surplus_since if state.surplus_since is not None else now
    state = PolicyState(surplus_since, tally.idle_since, state.failures_forgiven_until)
    return _scale_down(
        tally, tally.capacity - wanted, now - surplus_since, params
    ), state


def _drain_reason(drain: tuple[str, ...]) -> str:
    return f"drain {len(drain)} jobs too close to their end for a task" if drain else ""


def _scale_down(
    tally: _Tally, surplus: int, lasted: float, params: PolicyParams
) -> ScaleDecision:
    """Give back ``surplus`` jobs: queued ones first (newest first) once the
    surplus ``lasted`` long enough, then the longest idle."""
    cancel: list[str] = []
    if lasted >= params.scale_down_delay:
        pending = sorted(tally.pending, reverse=True)  # newest first
        cancel = [name for _, name in pending[:surplus]]
    idle = sorted(tally.idle, key=lambda item: -item[0])  # longest idle first
    retire = [name for _, name in idle[: surplus - len(cancel)]]
    reasons = []
    if cancel:
        reasons.append(f"cancel {len(cancel)} pending (surplus of {surplus} jobs)")
    if retire:
        reasons.append(f"retire {len(retire)} idle for >= {params.idle_timeout:g} s")
    drain = tuple(tally.drain)
    if drain:
        reasons.append(_drain_reason(drain))
    return ScaleDecision(
        cancel=tuple(cancel),
        retire=(*retire, *tally.retire_expiring),
        drain=drain,
        reason="; ".join(reasons),
    )


def _scale_up(
    snapshot: ClusterSnapshot,
    state: PolicyState,
    now: float,
    params: PolicyParams,
    pending: int,
    missing: int,
) -> ScaleDecision:
    failures, latest = consecutive_failures(snapshot, state)
    if failures >= params.max_failed_starts:
        return ScaleDecision(
            reason=f"not submitting: {failures} jobs in a row failed to start"
        )
    if failures and latest is not None:
        resume = latest + params.failure_backoff * 2 ** (failures - 1)
        if now < resume:
            wait = resume - now
            return ScaleDecision(
                reason=f"backing off {wait:.0f} s after {failures} failed starts"
            )
    submit = missing
    if params.max_pending_jobs is not None:
        submit = min(submit, max(params.max_pending_jobs - pending, 0))
        if submit == 0:
            return ScaleDecision(
                reason=f"{pending} jobs pending: at max_pending_jobs, not submitting"
            )
    return ScaleDecision(submit=submit, reason=f"submit {submit} (short of {missing})")
