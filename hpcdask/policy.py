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
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from hpcdask.models import ClusterSnapshot, PolicyParams, ScaleDecision

__all__ = ["PolicyParams", "PolicyState", "decide", "wanted_jobs"]


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


def decide(
    snapshot: ClusterSnapshot, state: PolicyState, now: float, params: PolicyParams
) -> tuple[ScaleDecision, PolicyState]:
    """One tick of adaptive scaling. Pure: same inputs, same answer.

    One pass over the jobs (it runs every tick, with up to thousands of jobs).
    """
    # a worker holds a task beyond those it runs (distributed's worker
    # saturation): the last one it gets may start a task's time after it
    drain_ahead = 2 * snapshot.task_duration
    horizon = now + params.replace_ahead + drain_ahead
    previous_idle = state.idle_since
    idle_since: dict[str, float] = {}
    pending_total = 0
    capacity = 0
    pending: list[tuple[float, str]] = []  # (submit time, name) of capacity
    idle: list[tuple[float, str]] = []  # (seconds idle, name), past idle_timeout
    retire_expiring: list[str] = []
    drain: list[str] = []
    for job in snapshot.jobs:
        if job.retiring:
            continue
        is_pending = job.is_pending
        pending_total += is_pending
        idle_for = -1.0
        if job.idle:
            since = previous_idle.get(job.name, now)
            idle_since[job.name] = since
            idle_for = now - since
        start, limit = job.start_time, job.time_limit
        if start is not None and limit is not None and start + limit <= horizon:
            # near its walltime: not capacity
            lifetime = limit - params.lifetime_margin
            if 0 < drain_ahead < lifetime / 2 and start + lifetime - drain_ahead <= now:
                # too close to its end to finish another task: drain, then go
                (retire_expiring if job.idle else drain).append(job.name)
            elif idle_for >= params.idle_timeout:
                retire_expiring.append(job.name)
            continue
        capacity += 1
        if is_pending:
            pending.append((job.submit_time, job.name))
        elif idle_for >= params.idle_timeout:
            idle.append((idle_for, job.name))

    drain_reason = (
        f"drain {len(drain)} jobs too close to their end for a task" if drain else ""
    )
    wanted = wanted_jobs(snapshot.target_workers, params)
    if wanted > capacity:
        state = PolicyState(None, idle_since, state.failures_forgiven_until)
        decision = _scale_up(
            snapshot, state, now, params, pending_total, wanted - capacity
        )
        return replace(
            decision, retire=tuple(retire_expiring), drain=tuple(drain)
        ), state
    if wanted == capacity:
        state = PolicyState(None, idle_since, state.failures_forgiven_until)
        reason = drain_reason or (
            "idle jobs near their walltime" if retire_expiring else ""
        )
        decision = ScaleDecision(
            retire=tuple(retire_expiring), drain=tuple(drain), reason=reason
        )
        return decision, state

    surplus = capacity - wanted
    surplus_since = state.surplus_since if state.surplus_since is not None else now
    state = PolicyState(surplus_since, idle_since, state.failures_forgiven_until)
    cancel: list[str] = []
    if now - surplus_since >= params.scale_down_delay:
        pending.sort(reverse=True)  # newest first
        cancel = [name for _, name in pending[:surplus]]
    idle.sort(key=lambda item: -item[0])  # longest idle first, stable
    retire = [name for _, name in idle[: surplus - len(cancel)]]
    reasons = []
    if cancel:
        reasons.append(f"cancel {len(cancel)} pending (surplus of {surplus} jobs)")
    if retire:
        reasons.append(f"retire {len(retire)} idle for >= {params.idle_timeout:g} s")
    if drain_reason:
        reasons.append(drain_reason)
    decision = ScaleDecision(
        cancel=tuple(cancel),
        retire=(*retire, *retire_expiring),
        drain=tuple(drain),
        reason="; ".join(reasons),
    )
    return decision, state


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
