"""policy.decide(): tables of snapshots and expected decisions, clock as argument."""

from __future__ import annotations

import pytest

from hpcdask.models import ClusterSnapshot, JobState, JobView, ScaleDecision
from hpcdask.policy import PolicyParams, PolicyState, decide

P, R = JobState.PENDING, JobState.RUNNING
PARAMS = PolicyParams(
    minimum_jobs=0,
    maximum_jobs=16,
    idle_timeout=10,
    scale_down_delay=2,
    replace_ahead=60,
    max_failed_starts=3,
    failure_backoff=5,
)


def job(
    name: str,
    state: JobState = R,
    submit: float = 0.0,
    start: float | None = 1.0,
    limit: float | None = 3600.0,
    workers: int = 1,
    idle: bool = False,
    retiring: bool = False,
) -> JobView:
    if state is P:
        start, workers = None, 0
    return JobView(name, state, submit, start, limit, workers, idle, "", retiring)


def snap(
    target: int,
    *jobs: JobView,
    failed: tuple[float, ...] = (),
    last_start: float | None = None,
    task_duration: float = 0.0,
) -> ClusterSnapshot:
    return ClusterSnapshot(target, tuple(jobs), failed, last_start, task_duration)


# hour-long jobs whose workers retire 300 s before the walltime
DRAIN = PolicyParams(
    maximum_jobs=16, idle_timeout=10, replace_ahead=315, lifetime_margin=300
)


# (description, snapshot, now, params, expected decision fields)
TABLE = [
    ("empty and no work: nothing", snap(0), 100, PARAMS, {}),
    ("work arrives: one submission for all", snap(5), 100, PARAMS, {"submit": 5}),
    ("target beyond maximum is capped", snap(50), 100, PARAMS, {"submit": 16}),
    (
        "minimum kept without work",
        snap(0),
        100,
        PolicyParams(minimum_jobs=2),
        {"submit": 2},
    ),
    (
        "pending jobs count as capacity",
        snap(4, job("a", P), job("b", P), job("c")),
        100,
        PARAMS,
        {"submit": 1},
    ),
    ("at target: nothing", snap(2, job("a"), job("b")), 100, PARAMS, {}),
    (
        "several workers per job: whole jobs",
        snap(5),
        100,
        PolicyParams(workers_per_job=4),
        {"submit": 2},
    ),
    (
        "max_pending_jobs caps what is queued",
        snap(10, job("a", P), job("b", P)),
        100,
        PolicyParams(max_pending_jobs=4),
        {"submit": 2},
    ),
    (
        "max_pending_jobs reached: nothing",
        snap(10, job("a", P), job("b", P)),
        100,
        PolicyParams(max_pending_jobs=2),
        {"reason": "at max_pending_jobs"},
    ),
    (
        "job near its walltime is replaced ahead of expiry",
        snap(2, job("a", start=0, limit=120), job("b", start=50, limit=3600)),
        70,
        PARAMS,
        {"submit": 1},
    ),
    (
        "busy job near its walltime is not retired",
        snap(1, job("a", start=0, limit=120), job("b", start=60)),
        70,
        PARAMS,
        {},
    ),
    (
        "retiring jobs are not capacity",
        snap(2, job("a", retiring=True), job("b")),
        100,
        PARAMS,
        {"submit": 1},
    ),
    (
        "3 failed starts in a row: stop",
        snap(2, failed=(10, 20, 30)),
        1000,
        PARAMS,
        {"reason": "3 jobs in a row failed to start"},
    ),
    (
        "failed starts before the last good start do not count",
        snap(2, failed=(10, 20, 30), last_start=40),
        1000,
        PARAMS,
        {"submit": 2},
    ),
    (
        "2 failed starts: back off 10 s after the last",
        snap(2, failed=(10, 95)),
        100,
        PARAMS,
        {"reason": "backing off 5 s after 2 failed starts"},
    ),
    (
        "2 failed starts: after the backoff, submit",
        snap(2, failed=(10, 95)),
        106,
        PARAMS,
        {"submit": 2},
    ),
    (
        "600-s tasks: 1200 s before the lifetime (3300 s), drain and replace",
        snap(1, job("a", start=0), task_duration=600),
        2100,
        DRAIN,
        {"submit": 1, "drain": ("a",)},
    ),
    (
        "a drained job is retired as soon as it is idle",
        snap(1, job("a", start=0, idle=True), job("b", start=2000), task_duration=600),
        2200,
        DRAIN,
        {"retire": ("a",)},
    ),
    (
        "replaced two tasks' time earlier, fed until they no longer fit",
        snap(1, job("a", start=0), task_duration=600),
        2090,
        DRAIN,
        {"submit": 1},
    ),
    (
        "tasks over a quarter of a lifetime cannot be helped: no drain",
        snap(1, job("a", start=0), task_duration=900),
        3000,
        DRAIN,
        {"submit": 1},
    ),
    (
        "untimed tasks: no drain",
        snap(1, job("a", start=0)),
        3290,
        DRAIN,
        {"submit": 1},
    ),
]


@pytest.mark.parametrize(
    ("snapshot", "now", "params", "expected"),
    [t[1:] for t in TABLE],
    ids=[t[0] for t in TABLE],
)
def test_decision_table(
    snapshot: ClusterSnapshot,
    now: float,
    params: PolicyParams,
    expected: dict[str, object],
) -> None:
    decision, _ = decide(snapshot, PolicyState(), now, params)
    reason = expected.pop("reason", None)
    assert decision == ScaleDecision(**{**{"reason": decision.reason}, **expected})  # type: ignore[arg-type]
    if reason is not None:
        assert str(reason) in decision.reason


def run_ticks(
    snapshots: list[tuple[float, ClusterSnapshot]], params: PolicyParams = PARAMS
) -> list[ScaleDecision]:
    state = PolicyState()
    decisions = []
    for now, snapshot in snapshots:
        decision, state = decide(snapshot, state, now, params)
        decisions.append(decision)
    return decisions


def test_surplus_pending_cancelled_first_after_hysteresis() -> None:
    jobs = (job("a"), job("b"), job("c", P, submit=5), job("d", P, submit=6))
    decisions = run_ticks(
        [(100, snap(2, *jobs)), (101, snap(2, *jobs)), (102, snap(2, *jobs))]
    )
    assert decisions[0].is_noop and decisions[1].is_noop  # a short surplus: no churn
    assert decisions[2] == ScaleDecision(cancel=("d", "c"), reason=decisions[2].reason)


def test_idle_running_jobs_retired_only_after_idle_timeout() -> None:
    busy = (job("a"), job("b"), job("c"))
    idle = (job("a", idle=True), job("b", idle=True), job("c"))
    ticks = [(100, snap(3, *busy)), (101, snap(1, *idle))]
    ticks += [(t, snap(1, *idle)) for t in (105, 110, 111)]
    decisions = run_ticks(ticks)
    assert all(d.is_noop for d in decisions[:4])  # idle since 101: not yet 10 s
    assert decisions[4].retire == ("a", "b")
    assert not decisions[4].cancel and not decisions[4].submit


def test_a_short_pause_between_bursts_keeps_the_jobs() -> None:
    idle = (job("a", idle=True), job("b", idle=True))
    busy = (job("a"), job("b"))
    ticks = [
        (100, snap(0, *idle)),
        (105, snap(0, *idle)),
        (108, snap(2, *busy)),
        (115, snap(0, *idle)),
        (120, snap(0, *idle)),
    ]
    decisions = run_ticks(ticks)
    assert all(d.is_noop for d in decisions)  # idleness restarted at 115


def test_minimum_is_never_retired() -> None:
    idle = tuple(job(n, idle=True) for n in "abc")
    params = PolicyParams(minimum_jobs=2, idle_timeout=1, scale_down_delay=0)
    decisions = run_ticks([(100, snap(0, *idle)), (200, snap(0, *idle))], params)
    assert decisions[1].retire == ("a",)


def test_idle_job_near_walltime_is_retired_even_at_target() -> None:
    jobs = (job("a", start=0, limit=120, idle=True), job("b", start=60))
    decisions = run_ticks([(70, snap(2, *jobs)), (81, snap(2, *jobs))])
    assert decisions[0].submit == 1  # replacement for a
    assert decisions[1].retire == ("a",)


def test_scaling_again_forgives_failed_starts() -> None:
    snapshot = snap(2, failed=(10, 20, 30))
    decision, _ = decide(snapshot, PolicyState(failures_forgiven_until=30), 40, PARAMS)
    assert decision.submit == 2


def test_decide_with_ten_thousand_jobs() -> None:
    jobs = tuple(job(f"w-{i}", idle=i % 3 == 0, limit=None) for i in range(10_000))
    snapshot = snap(6_000, *jobs)
    state = PolicyState(idle_since={f"w-{i}": 0.0 for i in range(0, 10_000, 3)})
    params = PolicyParams(maximum_jobs=20_000)
    decision, _ = decide(snapshot, state, 5_000.0, params)
    # surplus of 4,000 jobs; the 3,334 idle ones go (its speed is a benchmark)
    assert len(decision.retire) == 3334
    assert decision.submit == 0 and decision.cancel == ()


def test_a_starting_job_is_not_cancelled() -> None:
    # started in the queue, workers not connected yet: charged already, keep it
    starting = JobView("s", R, 50.0, 99.0, 3600.0, workers=0)
    jobs = (job("a"), starting, job("q", P, submit=60))
    decisions = run_ticks([(100, snap(1, *jobs)), (103, snap(1, *jobs))])
    assert decisions[1].cancel == ("q",)
    assert decisions[1].retire == ()
