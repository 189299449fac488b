"""Benchmark scenarios, each run for one tool in its own process.

``python -m benchmarks.scenarios SCENARIO TOOL OUT.json``; TOOL is ``hpcdask``,
``dask-jobqueue`` or ``localcluster`` (or ``hpcdask-no-nanny``, hpcdask with
``nanny=False``, run by hand as a variant). All tools get the same workers: one-core,
1 GB, one process per job, on the same local Slurm.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from typing import Any

import dask.config
from distributed import Client, LocalCluster, wait

from benchmarks.harness import (
    ChargeSampler,
    WorkerSampler,
    count_calls,
    counted_commands,
    wait_queue_empty,
)

LOGS = tempfile.mkdtemp(prefix="hpcdask-bench-logs-")


def make_cluster(
    tool: str, job_name: str, walltime: str = "00:30:00", **extra: Any
) -> Any:
    options: dict[str, Any] = dict(
        cores=1,
        processes=1,
        memory="1GB",
        walltime=walltime,
        job_name=job_name,
        log_directory=LOGS,
        scheduler_options={"dashboard_address": ":0"},
        **extra,
    )
    if tool in ("hpcdask", "hpcdask-no-nanny"):
        from hpcdask import SLURMCluster

        if tool == "hpcdask-no-nanny":  # an opt-in variant, not the default
            options["nanny"] = False
        return SLURMCluster(**options)
    if tool == "dask-jobqueue":
        from dask_jobqueue import SLURMCluster as JobqueueSLURMCluster

        return JobqueueSLURMCluster(**options)
    raise ValueError(tool)


def time_to_workers(tool: str, n: int = 32) -> dict[str, Any]:
    """``scale(jobs=n)`` of one-core jobs until n workers are connected."""
    job_name = f"bench-scale-{tool}-{os.getpid()}"
    with counted_commands() as log:
        if tool == "localcluster":
            start = time.perf_counter()
            with (
                LocalCluster(
                    n_workers=n, threads_per_worker=1, dashboard_address=":0"
                ) as cluster,
                Client(cluster) as client,
            ):
                client.wait_for_workers(n, timeout=600)
                elapsed = time.perf_counter() - start
            return {"seconds": elapsed}
        with make_cluster(tool, job_name) as cluster, Client(cluster) as client:
            start = time.perf_counter()
            cluster.scale(jobs=n)
            client.wait_for_workers(n, timeout=600)
            elapsed = time.perf_counter() - start
            calls_up = count_calls(log)
        wait_queue_empty(job_name)
        calls = count_calls(log)
    return {
        "seconds": elapsed,
        "calls_to_scale_up": dict(calls_up),
        "calls": dict(calls),
    }


def _sleep2(i: int) -> int:
    time.sleep(2)
    return i


def bursty(
    tool: str, bursts: int = 2, tasks: int = 64, gap: float = 45.0
) -> dict[str, Any]:
    """adapt(0..16 jobs); bursts of 64 x sleep(2) with 45 s idle after each."""
    job_name = f"bench-burst-{tool}-{os.getpid()}"
    makespans = []
    with counted_commands() as log, ChargeSampler(job_name) as charges:
        with make_cluster(tool, job_name) as cluster, Client(cluster) as client:
            adaptive = cluster.adapt(minimum_jobs=0, maximum_jobs=16)
            ticks_before = getattr(adaptive, "ticks", None)
            started = time.monotonic()
            with WorkerSampler(client) as workers:
                for b in range(bursts):
                    t0 = time.perf_counter()
                    futures = client.map(
                        _sleep2, range(b * tasks, (b + 1) * tasks), pure=False
                    )
                    assert client.gather(futures) == list(
                        range(b * tasks, (b + 1) * tasks)
                    )
                    makespans.append(time.perf_counter() - t0)
                    del futures
                    time.sleep(gap)
            duration = time.monotonic() - started
            ticks = getattr(adaptive, "ticks", None)
        wait_queue_empty(job_name)
        time.sleep(3)
    charged = charges.charged_core_seconds()
    busy = bursts * tasks * 2.0
    calls = count_calls(log)
    return {
        "makespans": makespans,
        "worker_seconds": workers.worker_seconds,
        "charged_core_seconds": charged,
        "busy_core_seconds": busy,
        "efficiency": busy / charged if charged else None,
        "jobs_started": charges.jobs_started(),
        "calls": dict(calls),
        "duration": duration,
        "adaptive_ticks": None if ticks is None else ticks - (ticks_before or 0),
    }


def _hold(i: int) -> bytes:
    time.sleep(1.0)
    return bytes(100_000) + i.to_bytes(4, "little")


def _combine(*parts: bytes) -> int:
    time.sleep(1.0)
    return sum(len(p) for p in parts)


def _executions(dask_scheduler: Any) -> dict[str, int]:
    """How many times each key went from processing to memory (ran to the end)."""
    counts: dict[str, int] = {}
    for event in dask_scheduler.transition_log:
        key, start, finish = event[0], event[1], event[2]
        if start == "processing" and finish == "memory":
            counts[str(key)] = counts.get(str(key), 0) + 1
    return counts


def walltime_rollover(tool: str, minutes: float = 4.0) -> dict[str, Any]:
    """A ~4-minute computation on 4 workers whose jobs have a 1-minute walltime.

    Each 6-second round makes 8 pieces of data and combines the previous round's:
    data must outlive the workers that made it.
    """
    job_name = f"bench-wall-{tool}-{os.getpid()}"
    extra: dict[str, Any] = {}
    if tool == "dask-jobqueue":
        # as its docs recommend for walltime: a lifetime below it, staggered
        extra["worker_extra_args"] = ["--lifetime", "45s", "--lifetime-stagger", "5s"]
    killed = lost = 0
    with ChargeSampler(job_name) as charges:
        with (
            make_cluster(tool, job_name, walltime="00:01:00", **extra) as cluster,
            Client(cluster) as client,
        ):
            cluster.adapt(minimum_jobs=4, maximum_jobs=4)
            client.wait_for_workers(4, timeout=120)
            start = time.monotonic()
            rounds = int(minutes * 60 / 6)
            results: list[Any] = []
            previous: list[Any] = []
            for r in range(rounds):
                layer = client.map(_hold, range(r * 8, r * 8 + 8), pure=False)
                if previous:
                    results.append(client.submit(_combine, *previous, pure=False))
                previous = layer
                time.sleep(max(0.0, start + (r + 1) * 6 - time.monotonic()))
            finished = True
            try:
                # bounded: a run that cannot finish is reported, not waited for
                wait(results, timeout=180)
            except TimeoutError:
                finished = False
            for future in results:
                if future.status == "finished":
                    lost += future.result() != 8 * 100_004
                elif (
                    future.status == "error"
                    and type(future.exception()).__name__ == "KilledWorker"
                ):
                    killed += 1
                else:  # lost for good, or not done in time
                    lost += 1
            elapsed = time.monotonic() - start
            runs = client.run_on_scheduler(_executions)
        wait_queue_empty(job_name)
    return {
        "seconds": elapsed,
        "tasks": len(runs),
        "tasks_recomputed": sum(1 for n in runs.values() if n > 1),
        "killed_worker_errors": killed,
        "lost_results": lost,
        "finished_in_time": finished,
        "jobs_started": charges.jobs_started(),
    }


SCENARIOS = {
    "time_to_workers": time_to_workers,
    "bursty": bursty,
    "walltime": walltime_rollover,
}


def main() -> None:
    scenario, tool, out = sys.argv[1:4]
    dask.config.set({"distributed.scheduler.dashboard.address": ":0"})
    result = SCENARIOS[scenario](tool)
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
