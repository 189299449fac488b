"""benchmarks/pools.py: a tiny run finishes, and pools charge fewer GPU-hours."""

from __future__ import annotations

from typing import Any

from benchmarks.pools import Limits, Phase, Sim, time_pool_targets

TINY = (
    Phase("preprocess", 600, 60.0),
    Phase("infer", 40, 120.0, gpu=True),
    Phase("postprocess", 200, 30.0),
    Phase("combine", 1, 60.0),
)


def run(scenario: str) -> tuple[Sim, dict[str, Any]]:
    sim = Sim(scenario, seed=3, workload=TINY, limits=Limits(cpu_jobs=4, gpu_jobs=4))
    return sim, sim.run()


def test_a_tiny_run_does_all_the_work_and_pools_charge_fewer_gpu_hours() -> None:
    results = {}
    for scenario in ("one_shape", "pools", "pools_cpu_restricted"):
        sim, result = run(scenario)
        assert sim.finished_at is not None
        assert sim.done == [ph.tasks for ph in TINY]
        assert not any(j.live for j in sim.jobs.values())  # all given back
        results[scenario] = result
    one, pools = results["one_shape"], results["pools"]
    assert one["charged_core_hours"] == 0.0
    assert pools["charged_gpu_hours"] < one["charged_gpu_hours"]
    assert pools["makespan_hours"] < one["makespan_hours"]


def test_the_timing_runs() -> None:
    timing = time_pool_targets(tasks=2_000, repeat=1)
    assert timing["read_work_median_ms"] >= 0
