"""Scale past this machine: the real ``policy.decide()`` against a simulated queue.

A discrete-time simulation (5-second ticks, like the adaptive loop's decisions)
of a busy HPC system and a notebook session's workload:

- **Queue**: 2,000 nodes for us; one job is one node of 32 cores running one Dask
  worker. A submitted job waits in the queue for a time drawn from a log-normal
  distribution (median 120 s, sigma 1.0: a quarter of jobs wait over 4 minutes,
  one in ten over 7), as on a shared system where other users hold most nodes.
  A started job's worker connects 20 s later (Python start-up on a compute node).
- **Walltime**: one hour. A worker whose job reaches its walltime is killed and its
  running task is lost (re-queued); a worker given a lifetime retires when its
  lifetime ends, after its current task, and hands its results over.
- **Workload**: 10,000 worker-hours of tasks: 60,000 tasks of 10 minutes, in four
  bursts of 24,000, 18,000, 12,000 and 6,000 tasks; each burst starts 15, 45 and
  5 minutes after the previous one finished (reading results, writing the next
  cell). A burst on 2,000 nodes takes hours, so walltimes matter.
- **Scheduler**: the target is distributed's ``adaptive_target`` rule: queued and
  running task-seconds over a 5-second target duration, at most one worker per
  task, capped at the cluster maximum.

Two policies drive the same queue with the same random draws:

- ``hpcdask``: :func:`hpcdask.policy.decide`, the code the clusters run, told
  the task duration once a task has finished (as the scheduler is); a job it
  drains takes no new task.
- ``baseline``: what distributed's default ``Adaptive`` does with dask-jobqueue:
  ask for ``target - planned`` jobs (one ``sbatch`` each), and when the target has
  been below the plan for 3 ticks in a row, remove jobs not yet arrived first,
  then idle workers; no walltime awareness (workers die at the walltime and are
  recreated after).

Also timed: one ``decide()`` call with 10,000 jobs in the table.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from hpcdask.models import ClusterSnapshot, JobState, JobView
from hpcdask.policy import PolicyParams, PolicyState, decide

TICK = 5.0
NODES = 2_000
CORES = 32
STARTUP = 20.0
WALLTIME = 3600.0
LIFETIME = 3600.0 - 300.0
TASK = 600.0
BURSTS = [(24_000, 0.0), (18_000, 15 * 60.0), (12_000, 45 * 60.0), (6_000, 5 * 60.0)]
TARGET_DURATION = 5.0


@dataclass
class SimJob:
    name: str
    submit: float
    ready_at: float  # leaves the queue
    start: float | None = None
    end: float | None = None
    connected: bool = False
    task_until: float | None = None
    retiring: bool = False
    lifetime: float | None = None

    @property
    def live(self) -> bool:
        return self.end is None


@dataclass
class Sim:
    policy: str
    seed: int = 1
    now: float = 0.0
    jobs: dict[str, SimJob] = field(default_factory=dict)
    queued_tasks: int = 0
    lost_tasks: int = 0
    done_tasks: int = 0
    submissions: int = 0
    counter: int = 0
    live: list[SimJob] = field(default_factory=list)
    burst_times: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.state = PolicyState()
        self.params = PolicyParams(
            maximum_jobs=NODES,
            idle_timeout=60.0,
            replace_ahead=(WALLTIME - LIFETIME) + STARTUP + 2 * TICK,
            lifetime_margin=WALLTIME - LIFETIME,
            max_pending_jobs=NODES,
        )
        self.below_target_ticks = 0

    # -- the world ---------------------------------------------------------------
    def submit(self, k: int) -> None:
        if k <= 0:
            return
        # hpcdask submits k jobs as one array; dask-jobqueue runs sbatch per job
        self.submissions += 1 if self.policy == "hpcdask" else k
        for _ in range(k):
            wait = self.rng.lognormvariate(math.log(120.0), 1.0)
            name = f"j{self.counter}"
            self.counter += 1
            lifetime = LIFETIME if self.policy == "hpcdask" else None
            job = SimJob(name, self.now, self.now + wait, lifetime=lifetime)
            self.jobs[name] = job
            self.live.append(job)

    def step_world(self) -> None:
        now = self.now
        self.live = [j for j in self.live if j.live]
        running = sum(1 for j in self.live if j.start is not None)
        waiting = sorted(
            (j for j in self.live if j.start is None and j.ready_at <= now),
            key=lambda j: j.ready_at,
        )
        for job in waiting[: max(NODES - running, 0)]:
            job.start = now
        for job in self.live:
            if job.start is None:
                continue
            if not job.connected and now >= job.start + STARTUP:
                job.connected = True
            if job.task_until is not None and now >= job.task_until:
                job.task_until = None
                self.done_tasks += 1
            if now >= job.start + WALLTIME:  # killed by the queue
                if job.task_until is not None:
                    self.lost_tasks += 1
                    self.queued_tasks += 1
                    job.task_until = None
                job.end = now
                continue
            if job.lifetime is not None and now >= job.start + job.lifetime:
                job.retiring = True
            if job.retiring and job.task_until is None:
                job.end = now
                continue
            if (
                job.connected
                and job.task_until is None
                and self.queued_tasks
                and not job.retiring
            ):
                self.queued_tasks -= 1
                job.task_until = now + TASK

    def target(self) -> int:
        working = [
            j.task_until for j in self.live if j.live and j.task_until is not None
        ]
        processing = len(working)
        occupancy = self.queued_tasks * TASK + sum(t - self.now for t in working)
        cpu = math.ceil(occupancy / TARGET_DURATION)
        return min(cpu, self.queued_tasks + processing)

    # -- the policies -------------------------------------------------------------
    def tick_hpcdask(self) -> None:
        views = tuple(
            JobView(
                name=j.name,
                state=JobState.RUNNING if j.start is not None else JobState.PENDING,
                submit_time=j.submit,
                start_time=j.start,
                time_limit=WALLTIME,
                workers=1 if j.connected else 0,
                idle=j.connected and j.task_until is None,
                retiring=j.retiring,
            )
            for j in self.live
            if j.live
        )
        # the scheduler knows how long tasks take once one has finished
        timed = TASK if self.done_tasks else 0.0
        decision, self.state = decide(
            ClusterSnapshot(self.target(), views, task_duration=timed),
            self.state,
            self.now,
            self.params,
        )
        self.submit(decision.submit)
        # a drained job takes no new task and ends after its current one, as a
        # retiring one does here
        for name in (*decision.cancel, *decision.retire, *decision.drain):
            job = self.jobs[name]
            if job.start is None:
                job.end = self.now  # cancelled while pending: never charged
            else:
                job.retiring = True

    def tick_baseline(self) -> None:
        target = min(self.target(), NODES)
        planned = [j for j in self.live if j.live and not j.retiring]
        if target > len(planned):
            self.below_target_ticks = 0
            self.submit(target - len(planned))
            return
        if target < len(planned):
            self.below_target_ticks += 1
        else:
            self.below_target_ticks = 0
        if self.below_target_ticks < 3:
            return
        surplus = len(planned) - target
        not_arrived = [j for j in planned if not j.connected]
        for job in not_arrived[:surplus]:
            job.end = self.now if job.start is None else self.now
        surplus -= min(surplus, len(not_arrived))
        idle = [j for j in planned if j.connected and j.task_until is None]
        for job in idle[:surplus]:
            job.end = self.now

    # -- the run --------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        # each burst arrives its gap after the previous one finished
        pending_bursts = list(BURSTS)
        next_burst_at: float | None = 0.0
        burst_start = 0.0
        total = sum(n for n, _ in BURSTS)
        while self.done_tasks < total and self.now < 48 * 3600:
            if next_burst_at is not None and self.now >= next_burst_at:
                tasks, _ = pending_bursts.pop(0)
                self.queued_tasks += tasks
                next_burst_at = None
                burst_start = self.now
            busy = self.queued_tasks or any(j.task_until for j in self.live if j.live)
            if next_burst_at is None and not busy and self.now > burst_start:
                self.burst_times.append(self.now - burst_start)
                if pending_bursts:
                    next_burst_at = self.now + pending_bursts[0][1]
            self.step_world()
            if self.policy == "hpcdask":
                self.tick_hpcdask()
            else:
                self.tick_baseline()
            self.now += TICK
        if len(self.burst_times) < len(BURSTS):
            self.burst_times.append(self.now - burst_start)
        makespan = self.now
        # let the policy give everything back, as a session would at its end
        for _ in range(int(600 / TICK)):
            self.step_world()
            self.tick_hpcdask() if self.policy == "hpcdask" else self.tick_baseline()
            self.now += TICK
        charged = sum(
            ((j.end if j.end is not None else self.now) - j.start) * CORES
            for j in self.jobs.values()
            if j.start is not None
        )
        busy_core_hours = total * TASK * CORES / 3600
        return {
            "policy": self.policy,
            "makespan_hours": makespan / 3600,
            "burst_hours": [round(t / 3600, 3) for t in self.burst_times],
            "charged_core_hours": charged / 3600,
            "busy_core_hours": busy_core_hours,
            "efficiency": busy_core_hours / (charged / 3600),
            "jobs_submitted": len(self.jobs),
            "submit_commands": self.submissions,
            "tasks_lost_to_walltime": self.lost_tasks,
        }


def time_decide(jobs: int = 10_000, repeat: int = 20) -> dict[str, float]:
    views = tuple(
        JobView(f"w-{i}", JobState.RUNNING, 0.0, float(i), 3600.0, 1, i % 3 == 0)
        for i in range(jobs)
    )
    snapshot = ClusterSnapshot(6_000, views)
    state = PolicyState(idle_since={f"w-{i}": 0.0 for i in range(0, jobs, 3)})
    params = PolicyParams(maximum_jobs=20_000)
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        decide(snapshot, state, 1_000.0, params)
        samples.append(time.perf_counter() - start)
    return {
        "jobs": jobs,
        "median_ms": statistics.median(samples) * 1e3,
        "max_ms": max(samples) * 1e3,
    }


def main() -> dict[str, Any]:
    results = {p: Sim(p).run() for p in ("hpcdask", "baseline")}
    results["decide_10k"] = time_decide()
    return results


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
