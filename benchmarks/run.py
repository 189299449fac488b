"""Run the adaptive-scaling benchmarks side by side and print the table.

``python -m benchmarks.run [--only time_to_workers,bursty,walltime,simulate,pools]``
(``bash benchmarks/run.sh`` sets everything up first). Each scenario runs once per
tool, in its own process, one after the other on the same local Slurm; results
are printed as a table with hpcdask / dask-jobqueue ratios and written as JSON to
``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TOOLS = {
    "time_to_workers": ["hpcdask", "dask-jobqueue", "localcluster"],
    "bursty": ["hpcdask", "dask-jobqueue"],
    "walltime": ["hpcdask", "dask-jobqueue"],
}


def run_scenario(scenario: str, tool: str) -> dict[str, Any]:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    env = {**os.environ, "PYTHONPATH": f"{HERE / '.deps'}:{HERE.parent}"}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.scenarios", scenario, tool, str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.splitlines()[-15:])
        raise RuntimeError(f"{scenario}/{tool} failed:\n{tail}")
    result: dict[str, Any] = json.loads(out.read_text())
    result["wall_seconds"] = time.monotonic() - started
    return result


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "n/a"


def table(results: dict[str, Any]) -> str:
    rows = [
        "| benchmark | figure | hpcdask | dask-jobqueue | ratio | target |",
        "|---|---|---|---|---|---|",
    ]
    if "time_to_workers" in results:
        r = results["time_to_workers"]
        h, j, lc = (
            r[t]["seconds"] for t in ("hpcdask", "dask-jobqueue", "localcluster")
        )
        rows.append(
            f"| 1 time to 32 workers | seconds | {h:.1f} | {j:.1f} | {ratio(h, j)} | <= 0.5 |"
        )
        rows.append(
            f"| 1 | vs LocalCluster(32) = {lc:.1f} s | {h / lc:.2f}x | {j / lc:.2f}x | | <= 1.5x |"
        )
        hc, jc = (
            r["hpcdask"]["calls_to_scale_up"],
            r["dask-jobqueue"]["calls_to_scale_up"],
        )
        rows.append(
            f"| 4 controller load, scale-up | submit commands | {hc.get('sbatch', 0)} | {jc.get('sbatch', 0)} | | 1 |"
        )
    if "bursty" in results:
        r = results["bursty"]
        h, j = r["hpcdask"], r["dask-jobqueue"]
        for i in range(len(h["makespans"])):
            rows.append(
                f"| 2 bursty: burst {i + 1} | makespan s | {h['makespans'][i]:.1f} | {j['makespans'][i]:.1f} | {ratio(h['makespans'][i], j['makespans'][i])} | <= 0.5 |"
            )
        rows.append(
            f"| 2 | worker-seconds connected | {h['worker_seconds']:.0f} | {j['worker_seconds']:.0f} | {ratio(h['worker_seconds'], j['worker_seconds'])} | |"
        )
        rows.append(
            f"| 2 | core-seconds charged (busy 256) | {h['charged_core_seconds']:.0f} | {j['charged_core_seconds']:.0f} | {ratio(h['charged_core_seconds'], j['charged_core_seconds'])} | |"
        )
        rows.append(
            f"| 2 | efficiency | {h['efficiency']:.2f} | {j['efficiency']:.2f} | | >= 0.6 |"
        )
        rows.append(
            f"| 2 | jobs started | {h['jobs_started']} | {j['jobs_started']} | | |"
        )
        for cmd in ("sbatch", "squeue", "scancel"):
            rows.append(
                f"| 4 controller load, bursty ({h['duration']:.0f} s) | {cmd} | {h['calls'].get(cmd, 0)} | {j['calls'].get(cmd, 0)} | | |"
            )
    if "walltime" in results:
        r = results["walltime"]
        h, j = r["hpcdask"], r["dask-jobqueue"]
        for key in (
            "tasks_recomputed",
            "killed_worker_errors",
            "lost_results",
            "jobs_started",
        ):
            rows.append(
                f"| 3 walltime roll-over | {key} | {h[key]} | {j[key]} | | 0 |"
                if key != "jobs_started"
                else f"| 3 | {key} | {h[key]} | {j[key]} | | |"
            )
    if "simulate" in results:
        r = results["simulate"]
        h, b = r["hpcdask"], r["baseline"]
        rows.append(
            "| 5 simulation (2,000 nodes) | | hpcdask | distributed Adaptive | | |"
        )
        for key in (
            "charged_core_hours",
            "makespan_hours",
            "jobs_submitted",
            "submit_commands",
            "tasks_lost_to_walltime",
            "efficiency",
        ):
            hv, bv = h[key], b[key]
            fmt = (lambda v: f"{v:.2f}") if isinstance(hv, float) else str
            rows.append(
                f"| 5 | {key} | {fmt(hv)} | {fmt(bv)} | {ratio(float(hv), float(bv))} | |"
            )
        d = r["decide_10k"]
        rows.append(
            f"| 5 | decide() with 10,000 jobs, ms (median / max) | {d['median_ms']:.2f} / {d['max_ms']:.2f} | | | < 5 |"
        )
    if "pools" in results:
        from benchmarks.pools import median_of

        r = results["pools"]
        pools, one = r["runs"]["pools"], r["runs"]["one_shape"]
        rows.append(
            "| 6 pools simulation (64 CPU + 8 GPU nodes), medians of "
            f"{len(r['seeds'])} seeds | | pools | one shape (GPU jobs) | | |"
        )
        for key in (
            "makespan_hours",
            "charged_core_hours",
            "charged_gpu_hours",
            "total_core_hour_equivalents",
            "gpu_utilisation",
        ):
            pv, ov = median_of(pools, key), median_of(one, key)
            rows.append(f"| 6 | {key} | {pv:.2f} | {ov:.2f} | {ratio(pv, ov)} | |")
        t = r["pool_targets_100k"]
        timed = f"{t['read_work_median_ms']:.1f} / {t['read_work_max_ms']:.1f}"
        rows.append(
            "| 6 | read_work + pool_targets(), 100,000 tasks, 3 pools, ms "
            f"(median / max) | {timed} | | | |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default="time_to_workers,bursty,walltime,simulate,pools"
    )
    args = parser.parse_args()
    results: dict[str, Any] = {}
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    partial = out_dir / "adaptive-partial.json"
    for scenario in args.only.split(","):
        if scenario == "simulate":
            from benchmarks.simulate import main as simulate

            print("simulate ...", flush=True)
            results["simulate"] = simulate()
            continue
        if scenario == "pools":
            from benchmarks.pools import simulate_all, time_pool_targets

            print("pools ...", flush=True)
            results["pools"] = simulate_all((1, 2, 3, 4, 5))
            results["pools"]["pool_targets_100k"] = time_pool_targets()
            continue
        results[scenario] = {}
        for tool in TOOLS[scenario]:
            print(f"{scenario} / {tool} ...", flush=True)
            try:
                results[scenario][tool] = run_scenario(scenario, tool)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print(f"  failed: {e}", flush=True)
                results[scenario][tool] = {"error": str(e)}
            partial.write_text(json.dumps(results, indent=2))
    out = out_dir / f"adaptive-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
