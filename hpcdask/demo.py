"""The README's main job: a real computation on an adaptive hpcdask cluster.

Runs on Slurm when a Slurm controller answers here, else on the embedded local
backend. ``python -m hpcdask.demo [--system slurm|pbs|local] [--maximum-jobs N]``
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time

import dask.array as da
from distributed import Client

from hpcdask.cluster import HPCCluster


def detect_system() -> str:
    """``slurm`` if ``sinfo`` answers, else ``local``."""
    if shutil.which("sinfo") is None:
        return "local"
    try:
        subprocess.run(
            ["sinfo", "--noheader"], capture_output=True, check=True, timeout=15
        )
    except (subprocess.SubprocessError, OSError):
        return "local"
    return "slurm"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", choices=["slurm", "pbs", "local"], default=None)
    parser.add_argument("--maximum-jobs", type=int, default=4)
    args = parser.parse_args(argv)
    system = args.system or detect_system()
    print(f"hpcdask demo on {system}")
    started = time.monotonic()
    with (
        HPCCluster(
            system=system,
            cores=1,
            memory="1GB",
            walltime="00:10:00",
            name="hpcdask-demo",
        ) as cluster,
        Client(cluster) as client,
    ):
        print(cluster.job_script())
        cluster.adapt(minimum=0, maximum=args.maximum_jobs)
        # a 1.6 GB array in 64 chunks: the scheduler asks for workers, jobs arrive
        x = da.random.default_rng(42).standard_normal(
            (20_000, 10_000), chunks=(2_500, 2_500)
        )
        stats = da.compute(x.mean(), x.std(), (x > 3).sum())
        print(f"mean={stats[0]:.5f} std={stats[1]:.5f} beyond 3 sigma={int(stats[2])}")
        expected_tail = 20_000 * 10_000 * 0.00135
        if not (
            abs(stats[0]) < 1e-3
            and abs(stats[1] - 1) < 1e-3
            and abs(stats[2] / expected_tail - 1) < 0.05
        ):
            print("unexpected statistics")
            return 1
        print(cluster.jobs().to_string())
        # idle now: adaptive scaling gives the jobs back
        deadline = time.monotonic() + 60
        while client.scheduler_info()["workers"] and time.monotonic() < deadline:
            time.sleep(1)
        print(f"workers after idling: {len(client.scheduler_info()['workers'])}")
    print(f"done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
