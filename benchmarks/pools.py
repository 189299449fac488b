"""Worker pools: one job shape for everything, or a CPU pool and a GPU pool.

    .venv/bin/python -m benchmarks.pools [--seeds 1,2,3] [--out FILE]

A discrete-time simulation (5-second ticks, as :mod:`benchmarks.simulate`) of
one analysis on a batch system with a CPU partition and a GPU partition. The
code the clusters run decides: each pool's target is
:func:`hpcdask.demand.pool_targets` over the work only it can run (tasks routed
by :func:`hpcdask.demand.route`), its limits
:func:`hpcdask.demand.share_of_maximum` (as ``PoolScaling.limits``), its
decision :func:`hpcdask.policy.decide` with the knobs
:func:`hpcdask.pools.pool_settings` makes of ``adapt()``'s arguments, and its
jobs' options :func:`hpcdask.config.resolve_job_options` /
:func:`hpcdask.pools.pool_options`. What is simulated: the queue, the workers,
and the scheduler placing tasks.

- **Work** (:data:`WORKLOAD`): an inference pipeline. 24,000 CPU tasks of
  90 s (preprocessing, no restrictions); 800 GPU tasks of 180 s
  (``resources={"GPU": 1}``), each on the results of 30 preprocessing tasks;
  8,000 CPU tasks of 60 s (postprocessing), 10 on each GPU result; one CPU
  task of 300 s combining everything. Run times are log-normal around these
  means (sigma 0.3), drawn once per task. A task is ready when its inputs are;
  the scheduler runs GPU tasks first, then the later phases' CPU tasks before
  the earlier ones' (dask's ordering finishes branches). A task with one
  input runs on the job holding it when that job has a free thread (as
  distributed places a task where its data is); any other task on the least
  busy job that can run it (a job's workers taken together: threads, and
  resources such as GPUs).
- **Shapes**: a CPU job is one node of 32 cores (8 workers of 4 threads, the
  default split), at most 64 jobs; a GPU job is one GPU and 8 cores (a quarter
  of a 4-GPU node; one worker of 8 threads offering ``{"GPU": 1}``), at most
  32 jobs (8 nodes). Walltime 2 hours, workers' lifetime 5 minutes less
  (the defaults). A job's workers connect 20 s after it starts.
- **Queue**: a submitted job waits a log-normal time, median 120 s on the CPU
  partition and 300 s on the GPU partition (sigma 1.0), then starts when its
  partition has room: 64 CPU jobs, 32 GPU jobs at once (a replacement
  submitted ahead of a walltime waits for the job it replaces). Each
  partition has its own stream of random waits, the same in every scenario:
  the n-th GPU job waits as long in each.
- **Charges**: a CPU job is charged its cores for the time it holds them
  (core-hours); a GPU job its GPUs (GPU-hours; its cores are included, as on
  sites that charge GPU nodes by the GPU). One GPU-hour counts as
  :data:`GPU_HOUR` core-hours (:data:`hpcdask.demand.GPU_COST`, the ratio the
  pools' routing assumes).

Scenarios, same draws:

- ``one_shape``: a cluster of GPU jobs only (``cores=8, gpus=1``,
  ``adapt(maximum_jobs=32)``): every task runs there, as for a user without
  pools. One pool: its target is ``pool_targets`` with a single offer, which
  is the scheduler's adaptive target as the pools reckon it.
- ``pools``: a default CPU pool and a ``gpu`` pool
  (``adapt(pools={"default": (0, 64), "gpu": (0, 32)})``); CPU tasks without
  restrictions belong to the CPU pool but the scheduler may place them on a
  GPU worker's free threads.
- ``pools_cpu_restricted``: the same, with the CPU pool's workers offering
  ``resources={"CPU": 4}`` and CPU tasks annotated ``{"CPU": 1}``: they never
  run on GPU workers.

Not modelled: memory (results are small; no pool keeps workers for data),
failed starts, node failures, the cost of moving data between jobs.

Also timed: :func:`hpcdask.demand.pool_targets` with a backlog of 100,000
tasks and 3 pools, alone (one group per task, the worst case) and after
:func:`hpcdask.pooldemand.read_work` over a stand-in scheduler holding them
(what a pool cluster does each tick).
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import random
import statistics
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from hpcdask.config import AdaptArguments, resolve_job_options
from hpcdask.demand import (
    GPU_COST,
    Offer,
    PoolMemory,
    Work,
    pool_targets,
    share_of_maximum,
)
from hpcdask.models import ClusterSnapshot, JobState, JobView, PolicyParams
from hpcdask.options import JobOptions
from hpcdask.policy import PolicyState, decide
from hpcdask.pooldemand import read_work
from hpcdask.pools import DEFAULT_POOL, pool_label, pool_options, pool_settings
from hpcdask.probe import UNMEASURED_SCAN_LIMIT

TICK = 5.0
STARTUP = 20.0
WALLTIME = "02:00:00"
#: core-hours one GPU-hour is worth (the stated charging assumption)
GPU_HOUR = GPU_COST
#: spread of task run times around their phase's mean (log-normal sigma)
TASK_SIGMA = 0.3
#: queue waits: (median s, sigma) of a log-normal, per partition
QUEUE_WAIT = {"cpu": (120.0, 1.0), "gpu": (300.0, 1.0)}
#: give-back after the work is done (the session idles, the pools shrink)
TAIL = 600.0
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Phase:
    """One step of the analysis: ``tasks`` tasks of ``mean`` seconds; each
    waits for its share of the previous phase's tasks."""

    name: str
    tasks: int
    mean: float
    gpu: bool = False


@dataclass(frozen=True)
class Limits:
    """Each pool's maximum, in jobs; also what its partition runs at once."""

    cpu_jobs: int = 64
    gpu_jobs: int = 32


WORKLOAD: tuple[Phase, ...] = (
    Phase("preprocess", 24_000, 90.0),
    Phase("infer", 800, 180.0, gpu=True),
    Phase("postprocess", 8_000, 60.0),
    Phase("combine", 1, 300.0),
)

SCENARIOS = ("one_shape", "pools", "pools_cpu_restricted")


# -- the cluster's configuration, through hpcdask's own option code -----------------


@dataclass(frozen=True)
class PoolSetup:
    """One pool as the simulation runs it."""

    name: str
    opts: JobOptions
    params: PolicyParams
    partition: str  # "cpu" or "gpu": which queue, which stream of waits
    offer: Offer


def offer_of(name: str, opts: JobOptions) -> Offer:
    """What a worker of the pool offers: as ``hpcdask.pools.Pool.offer`` (a
    ``Pool`` needs a job table and a scheduler, so its five lines are here)."""
    return Offer(
        name,
        opts.worker_resources,
        opts.threads_per_worker,
        cores=opts.cores / opts.processes,
        gpus=opts.gpus / opts.processes,
    )


def setup(scenario: str, limits: Limits) -> tuple[list[PoolSetup], int | None]:
    """The pools of ``scenario`` and the cluster-wide ``maximum_jobs``."""
    common: dict[str, Any] = {"walltime": WALLTIME}
    gpu_shape: dict[str, Any] = {"cores": 8, "memory": "64GB", "gpus": 1}
    if scenario == "one_shape":
        options = {DEFAULT_POOL: resolve_job_options("slurm", **common, **gpu_shape)}
        arguments: AdaptArguments = {"interval": TICK, "maximum_jobs": limits.gpu_jobs}
        partitions = {DEFAULT_POOL: "gpu"}
    else:
        cpu_shape: dict[str, Any] = {"cores": 32, "memory": "128GB"}
        if scenario == "pools_cpu_restricted":
            cpu_shape["resources"] = {"CPU": 4}  # per worker: its threads
        kwargs = {**common, **cpu_shape}
        default = resolve_job_options("slurm", **kwargs)
        gpu = pool_options("slurm", kwargs, default, "gpu", gpu_shape)
        options = {DEFAULT_POOL: default, "gpu": gpu}
        arguments = {
            "interval": TICK,
            "maximum_jobs": limits.cpu_jobs + limits.gpu_jobs,
            "pools": {"default": (0, limits.cpu_jobs), "gpu": (0, limits.gpu_jobs)},
        }
        partitions = {DEFAULT_POOL: "cpu", "gpu": "gpu"}
    settings, cluster_maximum = pool_settings(options, arguments)
    pools = [
        PoolSetup(
            name, opts, settings[name].params, partitions[name], offer_of(name, opts)
        )
        for name, opts in options.items()
    ]
    return pools, cluster_maximum


# -- the world ----------------------------------------------------------------------


@dataclass
class SimJob:
    name: str
    pool: str
    submit: float
    ready_at: float  # leaves the queue
    threads: int
    cores: int
    gpus: int
    resources: Mapping[str, float]  # all its workers' together
    workers: int
    partition: str
    start: float | None = None
    end: float | None = None
    connected: bool = False
    retiring: bool = False
    draining: bool = False
    #: token -> (phase, task, run time)
    running: dict[int, tuple[int, int, float]] = field(default_factory=dict)
    used: dict[str, float] = field(default_factory=dict)
    gpu_busy: float = 0.0  # GPU-seconds of finished GPU tasks

    @property
    def live(self) -> bool:
        return self.end is None

    def fits(self, restrictions: Mapping[str, float]) -> bool:
        """A free thread and the free resources a task needs."""
        if len(self.running) >= self.threads:
            return False
        return all(
            self.resources.get(k, 0.0) - self.used.get(k, 0.0) >= v
            for k, v in restrictions.items()
        )

    def offers(self, restrictions: Mapping[str, float]) -> bool:
        return all(self.resources.get(k, 0.0) >= v for k, v in restrictions.items())


class Sim:
    """One scenario, one seed."""

    def __init__(
        self,
        scenario: str,
        seed: int = 1,
        workload: Sequence[Phase] = WORKLOAD,
        limits: Limits = Limits(),
    ) -> None:
        self.scenario = scenario
        self.workload = tuple(workload)
        self.pools, self.cluster_maximum = setup(scenario, limits)
        self.offers = [p.offer for p in self.pools]
        #: jobs each partition runs at once (more wait in the queue)
        self.capacity = {"cpu": limits.cpu_jobs, "gpu": limits.gpu_jobs}
        self.now = 0.0
        # the same draws in every scenario: task run times, and one stream of
        # queue waits per partition
        tasks_rng = random.Random(seed)
        self.durations = [
            [
                tasks_rng.lognormvariate(
                    math.log(ph.mean) - TASK_SIGMA**2 / 2, TASK_SIGMA
                )
                for _ in range(ph.tasks)
            ]
            for ph in self.workload
        ]
        self.waits = {
            p: random.Random(seed * 1_000 + i) for i, p in enumerate(QUEUE_WAIT)
        }
        cpu_restricted = scenario == "pools_cpu_restricted"
        self.restrictions: list[dict[str, float]] = [
            {"GPU": 1.0} if ph.gpu else ({"CPU": 1.0} if cpu_restricted else {})
            for ph in self.workload
        ]
        # dependencies: tasks of phase k+1 wait for their share of phase k
        self.deps_left = [
            [self._deps(k, i) for i in range(ph.tasks)]
            for k, ph in enumerate(self.workload)
        ]
        self.ready: list[deque[int]] = [deque() for _ in self.workload]
        self.ready[0].extend(range(self.workload[0].tasks))
        for i, n in enumerate(self.deps_left[0]):
            assert n == 0, i
        self.running_count = [0] * len(self.workload)
        #: task -> the job holding its one input
        self.home: list[dict[int, str]] = [{} for _ in self.workload]
        self.done = [0] * len(self.workload)
        self.done_seconds = [0.0] * len(self.workload)
        self.jobs: dict[str, SimJob] = {}
        self.live: list[SimJob] = []
        self.finishing: list[tuple[float, int, str]] = []
        self.tokens = itertools.count()
        self.counter = itertools.count()
        self.states = {p.name: PolicyState() for p in self.pools}
        self.lost_tasks = 0
        self.submit_commands = 0
        self.events: dict[str, list[tuple[float, str, int]]] = {
            p.name: [] for p in self.pools
        }
        self.timeline: list[dict[str, Any]] = []
        self.peaks = {p.name: 0 for p in self.pools}
        self.finished_at: float | None = None
        self.first_connect: float | None = None

    def _deps(self, k: int, i: int) -> int:
        if k == 0:
            return 0
        before, here = self.workload[k - 1].tasks, self.workload[k].tasks
        if here <= before:
            # task i gathers tasks [i*r, (i+1)*r) of the phase before (the last
            # one takes the rest)
            r = before // here
            return r if i < here - 1 else before - r * (here - 1)
        return 1

    def _released(self, k: int, j: int) -> range:
        """Tasks of phase k+1 that task j of phase k feeds."""
        before, after = self.workload[k].tasks, self.workload[k + 1].tasks
        if after <= before:
            r = before // after
            return range(min(j // r, after - 1), min(j // r, after - 1) + 1)
        r = after // before
        last = after if j == before - 1 else (j + 1) * r
        return range(j * r, last)

    # -- the queue and the workers ------------------------------------------------
    def submit(self, pool: PoolSetup, k: int) -> None:
        if k <= 0:
            return
        self.submit_commands += 1  # one job array
        opts = pool.opts
        median, sigma = QUEUE_WAIT[pool.partition]
        for _ in range(k):
            wait = self.waits[pool.partition].lognormvariate(math.log(median), sigma)
            n = next(self.counter)
            resources = {
                key: v * opts.workers_per_job for key, v in pool.offer.resources.items()
            }
            job = SimJob(
                f"{pool_label(pool.name)}-{n}",
                pool.name,
                self.now,
                self.now + wait,
                threads=opts.threads_per_worker * opts.workers_per_job,
                cores=opts.cores,
                gpus=opts.gpus,
                resources=resources,
                workers=opts.workers_per_job,
                partition=pool.partition,
            )
            self.jobs[job.name] = job
            self.live.append(job)

    def finish(self, job: SimJob, token: int) -> None:
        phase, task, seconds = job.running.pop(token)
        self._release(job, phase)
        if self.workload[phase].gpu:
            job.gpu_busy += seconds
        self.running_count[phase] -= 1
        self.done[phase] += 1
        self.done_seconds[phase] += seconds
        if phase + 1 < len(self.workload):
            left = self.deps_left[phase + 1]
            single = self._deps(phase + 1, 0) == 1
            for t in self._released(phase, task):
                left[t] -= 1
                if single:
                    self.home[phase + 1][t] = job.name
                if left[t] == 0:
                    self.ready[phase + 1].append(t)
        elif self.done[phase] == self.workload[phase].tasks:
            self.finished_at = self.now

    def _release(self, job: SimJob, phase: int) -> None:
        for k, v in self.restrictions[phase].items():
            job.used[k] -= v

    def end(self, job: SimJob) -> None:
        """The job ends (walltime, retired, cancelled): tasks running are lost."""
        for phase, task, _ in job.running.values():
            self._release(job, phase)
            self.running_count[phase] -= 1
            self.ready[phase].appendleft(task)
            self.lost_tasks += 1
        job.running.clear()
        job.end = self.now

    def step_world(self) -> None:
        now = self.now
        while self.finishing and self.finishing[0][0] <= now:
            _, token, name = heapq.heappop(self.finishing)
            job = self.jobs[name]
            if token in job.running:
                self.finish(job, token)
        room = dict(self.capacity)
        for job in self.live:
            if job.start is not None:
                room[job.partition] -= 1
        for job in sorted(
            (j for j in self.live if j.start is None and j.ready_at <= now),
            key=lambda j: j.ready_at,
        ):
            if room[job.partition] > 0:
                room[job.partition] -= 1
                job.start = now
        walltime = float(self.pools[0].opts.walltime)
        for job in self.live:
            if job.start is None:
                continue
            if not job.connected and now >= job.start + STARTUP:
                job.connected = True
                if self.first_connect is None:
                    self.first_connect = now
            if now >= job.start + walltime:  # killed by the queue
                self.end(job)
                continue
            lifetime = self.pools[0].opts.worker_lifetime
            if now >= job.start + lifetime:
                job.retiring = True
            if job.retiring and not job.running:
                job.end = now
        self.live = [j for j in self.live if j.live]
        self.assign()

    def assign(self) -> None:
        """The scheduler: GPU tasks first, then CPU tasks of later phases first.
        A task with one input goes to the job holding it when that job has a
        free thread (distributed places a task where its inputs are); any other
        task to the least busy job that can run it."""
        usable = [
            j for j in self.live if j.connected and not j.retiring and not j.draining
        ]
        order = sorted(
            range(len(self.workload)),
            key=lambda k: (not self.workload[k].gpu, -k),
        )
        for k in order:
            ready = self.ready[k]
            if not ready:
                continue
            need = self.restrictions[k]
            heap = [
                (len(j.running) / j.threads, i, j)
                for i, j in enumerate(usable)
                if j.offers(need) and j.fits(need)
            ]
            heapq.heapify(heap)
            home = self.home[k]
            skipped: list[int] = []
            while ready:
                task = ready.popleft()
                holder = self.jobs.get(home.get(task, ""))
                if (
                    holder is not None
                    and holder.live
                    and holder.connected
                    and not holder.retiring
                    and not holder.draining
                    and holder.fits(need)
                ):
                    self.start_task(holder, k, task)
                    continue
                job = None
                while heap:
                    busy, i, candidate = heapq.heappop(heap)
                    if not candidate.fits(need):
                        continue
                    now_busy = len(candidate.running) / candidate.threads
                    if now_busy != busy:
                        heapq.heappush(heap, (now_busy, i, candidate))
                        continue
                    job = candidate
                    heapq.heappush(heap, (now_busy, i, candidate))
                    break
                if job is None:  # no job has a free thread for it: none will
                    skipped.append(task)
                    break
                self.start_task(job, k, task)
            ready.extendleft(reversed(skipped))

    def start_task(self, job: SimJob, k: int, task: int) -> None:
        need = self.restrictions[k]
        seconds = self.durations[k][task]
        token = next(self.tokens)
        job.running[token] = (k, task, seconds)
        for key, v in need.items():
            job.used[key] = job.used.get(key, 0.0) + v
        self.running_count[k] += 1
        heapq.heappush(self.finishing, (self.now + seconds, token, job.name))

    # -- what the scheduler reports, as hpcdask.pooldemand.read_work does --------------
    def average(self, k: int) -> float | None:
        return self.done_seconds[k] / self.done[k] if self.done[k] else None

    def target_duration(self) -> float:
        """``max(target_duration, startup time)``, as ``PoolSet`` gives
        ``PoolDemand``: 5 s until a job has connected, then the 20-s start-up."""
        return max(5.0, STARTUP if self.first_connect is not None else 0.0)

    def work(self, duration: float) -> tuple[list[Work], list[Work]]:
        waiting, running = [], []
        for k in range(len(self.workload)):
            each = self.average(k)
            each = duration if each is None else each  # never timed: a thread each
            need = self.restrictions[k]
            if self.ready[k]:
                waiting.append(
                    Work(need, len(self.ready[k]), len(self.ready[k]) * each)
                )
            if self.running_count[k]:
                running.append(
                    Work(need, self.running_count[k], self.running_count[k] * each)
                )
        return waiting, running

    def task_duration(self) -> float:
        """The longest average run time of the kinds of tasks still to run (as
        ``hpcdask.probe.task_duration``: the scheduler's, not the pool's)."""
        longest = 0.0
        for k, ph in enumerate(self.workload):
            each = self.average(k)
            if each is not None and self.done[k] < ph.tasks:
                longest = max(longest, each)
        return longest

    def memory(self) -> dict[str, PoolMemory]:
        memory: dict[str, PoolMemory] = {}
        for job in self.live:
            if job.connected:
                had = memory.get(job.pool, PoolMemory())
                memory[job.pool] = PoolMemory(had.workers + job.workers, 0.0, 0.0)
        return memory

    # -- the policy, per pool, as PoolScaling + AdaptiveJobs.tick ----------------------
    def tick_policy(self) -> dict[str, int]:
        duration = self.target_duration()
        waiting, running = self.work(duration)
        targets, stranded = pool_targets(
            waiting, running, self.memory(), self.offers, DEFAULT_POOL, duration
        )
        assert stranded == 0
        timed = self.task_duration()
        for pool in self.pools:
            views = tuple(
                JobView(
                    name=j.name,
                    state=JobState.RUNNING if j.start is not None else JobState.PENDING,
                    submit_time=j.submit,
                    start_time=j.start,
                    time_limit=float(pool.opts.walltime),
                    workers=j.workers if j.connected else 0,
                    idle=j.connected and not j.running,
                    retiring=j.retiring,
                )
                for j in self.live
                if j.pool == pool.name
            )
            elsewhere = sum(1 for j in self.live if j.pool != pool.name)
            self.peaks[pool.name] = max(self.peaks[pool.name], len(views))
            params = share_of_maximum(pool.params, self.cluster_maximum, elsewhere)
            snapshot = ClusterSnapshot(targets[pool.name], views, task_duration=timed)
            decision, self.states[pool.name] = decide(
                snapshot, self.states[pool.name], self.now, params
            )
            # jobs retired because their walltime is near, not for a surplus
            horizon = self.now + params.replace_ahead + 2 * timed
            expiring = [
                n
                for n in decision.retire
                if (start := self.jobs[n].start) is not None
                and start + float(pool.opts.walltime) <= horizon
            ]
            self.apply(
                pool, decision.submit, decision.cancel, decision.retire, expiring
            )
            for name in decision.drain:
                self.jobs[name].draining = True
        return targets

    def apply(
        self,
        pool: PoolSetup,
        submit: int,
        cancel: Sequence[str],
        retire: Sequence[str],
        expiring: Sequence[str] = (),
    ) -> None:
        events = self.events[pool.name]
        if submit:
            self.submit(pool, submit)
            events.append((self.now, "submit", submit))
        for name in cancel:
            job = self.jobs[name]
            if job.start is None:
                job.end = self.now  # cancelled while queued: never charged
            else:
                job.retiring = True
        if cancel:
            events.append((self.now, "cancel", len(cancel)))
        for name in retire:
            self.jobs[name].retiring = True
        if len(retire) > len(expiring):
            events.append((self.now, "retire", len(retire) - len(expiring)))
        if expiring:
            events.append((self.now, "expiring", len(expiring)))

    # -- the run --------------------------------------------------------------------
    def run(self, timeline_every: float = 300.0) -> dict[str, Any]:
        horizon = 48 * 3600.0
        while self.finished_at is None and self.now < horizon:
            self.step_world()
            targets = self.tick_policy()
            if self.now % timeline_every == 0:
                self.sample(targets)
            self.now += TICK
        makespan = self.finished_at if self.finished_at is not None else self.now
        stop = self.now + TAIL
        while self.now < stop:
            self.step_world()
            self.tick_policy()
            self.now += TICK
        return self.summary(makespan)

    def sample(self, targets: Mapping[str, int]) -> None:
        row: dict[str, Any] = {"t_min": self.now / 60}
        for pool in self.pools:
            mine = [j for j in self.live if j.pool == pool.name]
            label = pool_label(pool.name)
            row[f"{label}_target_workers"] = targets[pool.name]
            row[f"{label}_jobs"] = len(mine)
            row[f"{label}_jobs_running"] = sum(j.start is not None for j in mine)
            row[f"{label}_gpus_busy"] = sum(j.used.get("GPU", 0.0) for j in mine)
            row[f"{label}_cpu_tasks_running"] = sum(
                1
                for j in mine
                for k, _, _ in j.running.values()
                if not self.workload[k].gpu
            )
        for k, ph in enumerate(self.workload):
            row[f"{ph.name}_done"] = self.done[k]
        self.timeline.append(row)

    def summary(self, makespan: float) -> dict[str, Any]:
        core_hours = gpu_hours = gpu_busy = 0.0
        per_pool: dict[str, dict[str, Any]] = {}
        for pool in self.pools:
            mine = [j for j in self.jobs.values() if j.pool == pool.name]
            started = [j for j in mine if j.start is not None]
            held = [
                ((j.end if j.end is not None else self.now) - cast(float, j.start))
                / 3600
                for j in started
            ]
            cores = sum(h * j.cores for h, j in zip(held, started, strict=True))
            gpus = sum(h * j.gpus for h, j in zip(held, started, strict=True))
            busy = sum(j.gpu_busy for j in started) / 3600
            if pool.opts.gpus:
                gpu_hours += gpus
                gpu_busy += busy
            else:
                core_hours += cores
            per_pool[pool_label(pool.name)] = {
                "jobs_submitted": len(mine),
                "jobs_started": len(started),
                "job_hours": sum(held),
                "peak_jobs": self.peak(pool.name),
                "reversals": reversals(self.events[pool.name]),
                "decisions": {
                    kind: sum(n for _, e, n in self.events[pool.name] if e == kind)
                    for kind in ("submit", "cancel", "retire", "expiring")
                },
            }
        cpu_busy = sum(
            self.done_seconds[k] for k, ph in enumerate(self.workload) if not ph.gpu
        )
        total = core_hours + GPU_HOUR * gpu_hours
        worth = cpu_busy / 3600 + GPU_HOUR * gpu_busy
        return {
            "scenario": self.scenario,
            "makespan_hours": makespan / 3600,
            "charged_core_hours": core_hours,
            "charged_gpu_hours": gpu_hours,
            "total_core_hour_equivalents": total,
            "gpu_busy_hours": gpu_busy,
            "gpu_utilisation": gpu_busy / gpu_hours if gpu_hours else 0.0,
            "efficiency": worth / total if total else 0.0,
            "tasks_lost": self.lost_tasks,
            "submit_commands": self.submit_commands,
            "pools": per_pool,
            "timeline": self.timeline,
        }

    def peak(self, pool: str) -> int:
        return self.peaks[pool]


def reversals(events: Sequence[tuple[float, str, int]], window: float = 600.0) -> int:
    """Submissions within ``window`` seconds after the same pool gave jobs back
    (cancelled queued ones or retired idle ones): a pool swinging."""
    count = 0
    last_down: float | None = None
    for t, kind, _ in events:
        if kind in ("cancel", "retire"):
            last_down = t
        elif last_down is not None and t - last_down <= window:
            count += 1
    return count


# -- pool_targets with a big backlog ------------------------------------------------


def time_pool_targets(tasks: int = 100_000, repeat: int = 10) -> dict[str, Any]:
    """One ``pool_targets`` call over ``tasks`` waiting tasks and 3 pools:
    each task its own group (nothing grouped: the worst case), and
    ``read_work`` + ``pool_targets`` over a stand-in scheduler holding them
    (``read_work`` looks at ``UNMEASURED_SCAN_LIMIT`` of them)."""
    offers = [
        Offer(DEFAULT_POOL, {}, threads=4, cores=4),
        Offer("gpu", {"GPU": 1.0}, threads=8, cores=8, gpus=1),
        Offer("bigmem", {"MEM": 1.0}, threads=16, cores=16),
    ]
    kinds: list[dict[str, float]] = [{}, {}, {}, {}, {}, {}, {"GPU": 1.0}, {"MEM": 1.0}]
    ungrouped = [Work(kinds[i % len(kinds)], 1, 60.0) for i in range(tasks)]
    running = [Work(k, 100, 6_000.0) for k in kinds[-3:]]
    memory = {o.pool: PoolMemory(100, 1e9, 1e12) for o in offers}

    def alone() -> None:
        pool_targets(ungrouped, running, memory, offers, DEFAULT_POOL, 20.0)

    # a stand-in scheduler: the attributes read_work reads, nothing else
    prefixes = [
        SimpleNamespace(duration_average=60.0, max_exec_time=70.0),
        SimpleNamespace(duration_average=-1.0, max_exec_time=0.0),
    ]
    queued = [
        SimpleNamespace(
            prefix=prefixes[i % 2], resource_restrictions=kinds[i % len(kinds)] or None
        )
        for i in range(tasks)
    ]
    workers = {
        f"w{i}": SimpleNamespace(
            name=f"w{i}",
            processing=set(),
            nthreads=4,
            nbytes=1e8,
            memory_limit=1.6e10,
        )
        for i in range(300)
    }
    pool_of = {f"w{i}": offers[i % 3].pool for i in range(300)}
    scheduler = SimpleNamespace(
        queued=queued, unrunnable={}, workers=workers, UNKNOWN_TASK_DURATION=0.5
    )

    def read_and_target() -> None:
        waiting, run, mem = read_work(
            cast(Any, scheduler), pool_of.get, 20.0, UNMEASURED_SCAN_LIMIT
        )
        pool_targets(waiting, run, mem, offers, DEFAULT_POOL, 20.0)

    out: dict[str, Any] = {"tasks": tasks, "pools": len(offers), "repeat": repeat}
    for name, fn in (("ungrouped", alone), ("read_work", read_and_target)):
        samples = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
        out[f"{name}_median_ms"] = statistics.median(samples) * 1e3
        out[f"{name}_max_ms"] = max(samples) * 1e3
    return out


# -- running it all --------------------------------------------------------------


def simulate_all(seeds: Sequence[int] = (1,)) -> dict[str, Any]:
    """Every scenario for every seed; the first seed's timelines kept."""
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in SCENARIOS}
    for n, seed in enumerate(seeds):
        for scenario in SCENARIOS:
            result = Sim(scenario, seed).run()
            result["seed"] = seed
            if n:
                result.pop("timeline")
            runs[scenario].append(result)
    return {"seeds": list(seeds), "runs": runs}


def break_even(pools: Mapping[str, Any], one: Mapping[str, Any]) -> float | None:
    """The price of a GPU-hour, in core-hours, above which ``pools`` is
    charged less than ``one`` (``None``: at any price, or at none)."""
    saved = one["charged_gpu_hours"] - pools["charged_gpu_hours"]
    extra = pools["charged_core_hours"] - one["charged_core_hours"]
    return extra / saved if saved > 0 and extra > 0 else None


FIGURES = (
    ("makespan_hours", "makespan, hours", "{:.2f}"),
    ("charged_core_hours", "charged core-hours (CPU jobs)", "{:,.0f}"),
    ("charged_gpu_hours", "charged GPU-hours", "{:,.1f}"),
    ("total_core_hour_equivalents", "total, core-hour equivalents", "{:,.0f}"),
    ("gpu_utilisation", "GPU busy / GPU charged", "{:.2f}"),
    ("efficiency", "work / charge (core-hour eq.)", "{:.2f}"),
    ("tasks_lost", "tasks lost (walltimes)", "{:.0f}"),
    ("submit_commands", "submit commands", "{:.0f}"),
)


def median_of(runs: Sequence[Mapping[str, Any]], key: str) -> float:
    """The median of one figure over the seeds' runs."""
    return statistics.median(float(r[key]) for r in runs)


def cell(runs: Sequence[Mapping[str, Any]], key: str, fmt: str) -> tuple[float, str]:
    """The median over seeds, and how it is shown (the range after it)."""
    values = [float(r[key]) for r in runs]
    median = statistics.median(values)
    text = fmt.format(median)
    if len(values) > 1:
        text += f" ({fmt.format(min(values))}-{fmt.format(max(values))})"
    return median, text


def table(results: Mapping[str, Any]) -> str:
    """The figures, medians over the seeds (ranges in brackets)."""
    runs = results["runs"]
    rows = [
        "| figure | one shape (GPU jobs) | pools | pools / one shape "
        "| pools, CPU tasks `{CPU: 1}` | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for key, label, fmt in FIGURES:
        (one, a), (two, b), (three, c) = (cell(runs[s], key, fmt) for s in SCENARIOS)
        r2, r3 = (f"{v / one:.2f}" if one else "n/a" for v in (two, three))
        rows.append(f"| {label} | {a} | {b} | {r2} | {c} | {r3} |")
    prices = []
    for s in SCENARIOS[1:]:
        each = [
            break_even(p, o) for p, o in zip(runs[s], runs["one_shape"], strict=True)
        ]
        known = [e for e in each if e is not None]
        prices.append(f"{statistics.median(known):.1f}" if known else "n/a")
    rows.append(
        f"| GPU-hour price above which pools cost less, core-hours | | "
        f"{prices[0]} | | {prices[1]} | |"
    )
    lines = ["\n".join(rows)]
    seeds = results["seeds"]
    if len(seeds) > 1:
        lines.append(f"\nmedians over seeds {seeds} (range in brackets)")
    timing = results.get("pool_targets_100k")
    if timing:
        lines.append(
            f"\npool_targets(), {timing['tasks']:,} waiting tasks, "
            f"{timing['pools']} pools, ms median / max of {timing['repeat']}: "
            f"one group per task {timing['ungrouped_median_ms']:.1f} / "
            f"{timing['ungrouped_max_ms']:.1f}; read_work + pool_targets "
            f"{timing['read_work_median_ms']:.1f} / {timing['read_work_max_ms']:.1f}"
        )
    return "\n".join(lines)


def pool_lines(results: Mapping[str, Any]) -> str:
    """Each pool's jobs and decisions, first seed."""
    out = [
        "| scenario | pool | jobs started | job-hours | peak jobs | submitted / "
        "cancelled / retired idle / retired near walltime | re-grown within "
        "10 min of giving back |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in SCENARIOS:
        for label, p in results["runs"][s][0]["pools"].items():
            d = p["decisions"]
            made = f"{d['submit']} / {d['cancel']} / {d['retire']} / {d['expiring']}"
            out.append(
                f"| {s} | {label} | {p['jobs_started']} | {p['job_hours']:.1f} "
                f"| {p['peak_jobs']} | {made} | {p['reversals']} |"
            )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1", help="comma-separated, e.g. 1,2,3")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.process_time()
    results = simulate_all(seeds)
    results["pool_targets_100k"] = time_pool_targets()
    results["cpu_seconds"] = time.process_time() - started
    out = args.out
    if out is None:
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"pools-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2))
    print(table(results))
    print()
    print(pool_lines(results))
    print(f"\n{results['cpu_seconds']:.0f} CPU-seconds; results: {out}")
    return results


if __name__ == "__main__":
    main()
