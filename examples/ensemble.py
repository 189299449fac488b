"""Ensemble statistics on an adaptive hpcdask cluster: the notebook
``ensemble.ipynb`` as one script, and the README's main job.

    python examples/ensemble.py                     # Slurm if it answers, else local
    python examples/ensemble.py --system local --size 200MB --plot ensemble.png

``bash ci/main.sh`` runs it (2 GB of data by default: enough work for the cluster
to grow to a few jobs).

Writes a synthetic ensemble (``ensemble_data.py``) to a Zarr store, starts a
cluster whose workers are 1-core batch jobs, lets it grow with the work
(``cluster.adapt``), computes

- the ensemble spread (standard deviation over members) of ``tmean`` on one day,
- the intra-ensemble range (largest minus smallest member) of ``tmean``,
  averaged over time,
- seasonal means of ``tmean`` and ``precipitation``,
- the hottest day near one city, over all members,

checks two of them against a computation without Dask, lets the cluster shrink
back to no jobs, and prints what the jobs cost.

The notebook imports the analysis functions from here, so the notebook, this
script and the test that executes the notebook run the same code.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr

#: (latitude, longitude) of the cities the maximum can be asked near
CITIES = {
    "Boulder": (40.01, -105.27),
    "Chicago": (41.88, -87.63),
    "Denver": (39.74, -104.99),
    "Phoenix": (33.45, -112.07),
    "Seattle": (47.61, -122.33),
}


def spread_on_day(tmean: xr.DataArray, day: str) -> xr.DataArray:
    """Ensemble spread on ``day``: the standard deviation over members."""
    return tmean.sel(time=pd.Timestamp(day)).std("member")


def ensemble_range(tmean: xr.DataArray) -> xr.DataArray:
    """Intra-ensemble range: largest minus smallest member, averaged over time."""
    return (tmean.max("member") - tmean.min("member")).mean("time")


def seasonal_means(ds: xr.Dataset) -> xr.Dataset:
    """Means of ``tmean`` and ``precipitation`` over members and each season's
    days (DJF, MAM, JJA, SON)."""
    variables = ds[["tmean", "precipitation"]]
    means = variables.mean("member").groupby("time.season").mean("time")
    return means.sel(season=["DJF", "MAM", "JJA", "SON"])


def max_near(values: xr.DataArray, lat: float, lon: float) -> xr.DataArray:
    """The largest value over members at the grid point nearest to (lat, lon),
    for each day: its maximum is the city's extreme, its ``idxmax`` the day."""
    return values.sel(lat=lat, lon=lon, method="nearest").max("member")


def collect_results(
    spread: xr.DataArray,
    intra_range: xr.DataArray,
    seasons: xr.Dataset,
    city_series: xr.DataArray,
    city: str,
    day: str,
) -> xr.Dataset:
    """The computed statistics (no Dask arrays left) as one small dataset."""
    hottest = city_series.idxmax("time")
    results = xr.Dataset(
        {
            "spread": spread.drop_vars("time", errors="ignore"),
            "range": intra_range,
            "seasonal_tmean": seasons["tmean"],
            "seasonal_precipitation": seasons["precipitation"],
            "city_tmax": city_series.rename(time="day").drop_vars(["lat", "lon"]),
        },
        attrs={
            "day": day,
            "city": city,
            "city_lat": float(city_series["lat"]),
            "city_lon": float(city_series["lon"]),
            "city_max": float(city_series.max()),
            "city_max_day": str(hottest.dt.strftime("%Y-%m-%d").item()),
        },
    )
    return results.load().drop_encoding()


def analyse(ds: xr.Dataset, day: str, city: str) -> xr.Dataset:
    """All four statistics, computed in one pass over the data."""
    lat, lon = CITIES[city]
    spread, intra_range, seasons, series = dask.compute(
        spread_on_day(ds["tmean"], day),
        ensemble_range(ds["tmean"]),
        seasonal_means(ds),
        max_near(ds["tmean"], lat, lon),
    )
    return collect_results(spread, intra_range, seasons, series, city, day)


def check_without_dask(results: xr.Dataset, data: str | Path) -> list[str]:
    """Differences between ``results`` and a direct numpy computation of the
    spread on the day and the city's maximum (reads only what they need)."""
    ds = xr.open_zarr(data, chunks=None)
    day = results.attrs["day"]
    problems = []
    expected_spread = ds["tmean"].sel(time=pd.Timestamp(day)).values.std(axis=0, ddof=0)
    if not np.allclose(
        results["spread"].values, expected_spread, rtol=1e-5, equal_nan=True
    ):
        problems.append("the spread on the day differs from numpy's")
    point = ds["tmean"].sel(
        lat=results.attrs["city_lat"], lon=results.attrs["city_lon"]
    )
    if not np.isclose(results.attrs["city_max"], float(point.values.max())):
        problems.append("the city's maximum differs from numpy's")
    return problems


def plot_results(results: xr.Dataset) -> Any:
    """One figure: spread, range, summer and winter means, the city's series."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 7), layout="constrained")
    results["spread"].plot(ax=axes[0, 0], cmap="viridis")
    axes[0, 0].set_title(f"tmean ensemble spread on {results.attrs['day']}")
    results["range"].plot(ax=axes[0, 1], cmap="magma")
    axes[0, 1].set_title("intra-ensemble range of tmean, time mean")
    results["seasonal_precipitation"].sel(season="JJA").plot(
        ax=axes[0, 2], cmap="Blues"
    )
    axes[0, 2].set_title("JJA mean precipitation")
    results["seasonal_tmean"].sel(season="DJF").plot(ax=axes[1, 0], cmap="coolwarm")
    axes[1, 0].set_title("DJF mean tmean")
    results["seasonal_tmean"].sel(season="JJA").plot(ax=axes[1, 1], cmap="coolwarm")
    axes[1, 1].set_title("JJA mean tmean")
    results["city_tmax"].plot(ax=axes[1, 2])
    axes[1, 2].set_title(f"tmean near {results.attrs['city']}, warmest member")
    return fig


def detect_system() -> str:
    """``slurm`` if ``sinfo`` answers, else ``local`` (the embedded backend)."""
    if shutil.which("sinfo") is None:
        return "local"
    try:
        subprocess.run(
            ["sinfo", "--noheader"], capture_output=True, check=True, timeout=15
        )
    except (subprocess.SubprocessError, OSError):
        return "local"
    return "slurm"


def wait_until_shrunk(cluster: Any, timeout: float) -> int:
    """Wait (up to ``timeout`` s) until adaptive scaling has given every job
    back: no worker connected, and no job holding cores as the queue last said
    (so ``cluster.usage()`` stops growing). The number of workers left."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not cluster.scheduler_info["workers"] and not cluster.usage().cores_in_use:
            break
        time.sleep(0.5)
    return len(cluster.scheduler_info["workers"])


def main(argv: list[str] | None = None) -> int:
    from distributed import Client

    from hpcdask import LocalBatchCluster, PBSCluster, SLURMCluster

    from ensemble_data import ZARR_OPTIONS, write_ensemble  # beside this file

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", choices=["auto", "slurm", "pbs", "local"])
    parser.add_argument("--size", default="2GB", help="data size (default 2GB)")
    parser.add_argument("--maximum-jobs", type=int, default=4)
    parser.add_argument("--day", default="1981-07-04")
    parser.add_argument("--city", choices=sorted(CITIES), default="Boulder")
    parser.add_argument("--data", help="an ensemble store (default: write one)")
    parser.add_argument("--results", help="also save the results to this Zarr store")
    parser.add_argument("--plot", help="also save the figure to this file (.png)")
    args = parser.parse_args(argv)
    system = args.system if args.system not in (None, "auto") else detect_system()
    started = time.monotonic()
    # in the current directory, which batch jobs see on a shared file system
    # (a compute node's /tmp is not this machine's)
    with tempfile.TemporaryDirectory(prefix=".ensemble-", dir=".") as tmp:
        data = args.data
        if data is None:
            data = str(Path(tmp) / "ensemble.zarr")
            shape = write_ensemble(data, args.size)
            print(
                f"data: {shape.members} members x {shape.days} days x {shape.lat} x "
                f"{shape.lon} points ({shape.nbytes / 1e6:.0f} MB) in {data}"
            )
        cls = {"slurm": SLURMCluster, "pbs": PBSCluster, "local": LocalBatchCluster}
        with (
            cls[system](
                cores=1, memory="2GB", walltime="00:20:00", name="ensemble"
            ) as cluster,
            Client(cluster),
        ):
            print(f"cluster on {system}: adaptive, 0 to {args.maximum_jobs} jobs")
            cluster.adapt(minimum_jobs=0, maximum_jobs=args.maximum_jobs)
            ds = xr.open_zarr(data)
            work_started = time.monotonic()
            results = analyse(ds, args.day, args.city)
            work_time = time.monotonic() - work_started
            jobs = cluster.jobs()
            print(jobs.to_string(index=False))
            idle_started = time.monotonic()
            left = wait_until_shrunk(cluster, timeout=60)
            idle_time = time.monotonic() - idle_started
            usage = cluster.usage()
        print_summary(results)
        print(
            f"work done in {work_time:.1f} s by {int(jobs['workers'].sum())} "
            f"workers in {len(jobs)} jobs; {left} workers left {idle_time:.1f} s "
            f"later; charged {usage.core_hours:.4f} core-hours "
            f"({usage.core_hours * 3600:.0f} core-seconds)"
        )
        if args.results:
            results.to_zarr(args.results, mode="w", **ZARR_OPTIONS)
        if args.plot:
            plot_results(results).savefig(args.plot)
            print(f"figure: {args.plot}")
        problems = check_without_dask(results, data)
        if left:
            problems.append(f"{left} workers were not given back within 60 s")
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"done in {time.monotonic() - started:.1f} s")
    return 1 if problems else 0


def print_summary(results: xr.Dataset) -> None:
    """The statistics in a few lines."""
    a = results.attrs
    seasons = results["seasonal_tmean"].mean(["lat", "lon"])
    rain = results["seasonal_precipitation"].mean(["lat", "lon"])
    spread, intra_range = (float(results[v].mean()) for v in ("spread", "range"))
    print(f"spread of tmean on {a['day']}: mean {spread:.2f} degC")
    print(f"intra-ensemble range of tmean: mean {intra_range:.2f} degC")
    for season in seasons["season"].values:
        print(
            f"{season}: tmean {float(seasons.sel(season=season)):6.2f} degC, "
            f"precipitation {float(rain.sel(season=season)):.2f} mm/day"
        )
    print(
        f"hottest near {a['city']} (grid point {a['city_lat']:.2f}, "
        f"{a['city_lon']:.2f}): {a['city_max']:.2f} degC on {a['city_max_day']}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
