"""The ensemble notebook, executed on the real local Slurm, checked against
numpy on the same data without Dask."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
import xarray as xr
from nbclient import NotebookClient

from examples.ensemble import CITIES

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

pytestmark = pytest.mark.slurm


def with_parameters(nb: Any, **values: object) -> Any:
    """The notebook with a cell setting ``values`` after its ``parameters`` cell
    (papermill's convention)."""
    index = next(
        i
        for i, cell in enumerate(nb.cells)
        if "parameters" in cell.get("metadata", {}).get("tags", [])
    )
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(index + 1, cell)
    return nb


def output_text(nb: Any) -> str:
    return "".join(
        output.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )


def test_notebook_on_slurm_matches_numpy_without_dask(
    tmp_path: Path,
    log_directory: Path,
    new_jobs: Callable[[], list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the kernel is another process: config reaches it through the environment
    monkeypatch.setenv("DASK_HPCDASK__SLURM__LOG_DIRECTORY", str(log_directory))
    monkeypatch.setenv("DASK_HPCDASK__POLL_INTERVAL", "0.5s")
    monkeypatch.setenv(
        "DASK_HPCDASK__SLURM__SCHEDULER_OPTIONS",
        json.dumps({"dashboard_address": "127.0.0.1:0"}),
    )
    data, results_path = tmp_path / "ensemble.zarr", tmp_path / "results.zarr"
    day, city = "1981-07-04", "Boulder"
    nb = with_parameters(
        nbformat.read(EXAMPLES / "ensemble.ipynb", as_version=4),
        SYSTEM="slurm",
        DATA=str(data),
        SIZE="5MB",
        RESULTS=str(results_path),
        MAXIMUM_JOBS=2,
        DAY=day,
        CITY=city,
    )
    # run where Jupyter runs a notebook: in its own directory
    NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(EXAMPLES)}},
    ).execute()

    # the workers were Slurm jobs, all given back by adaptive scaling
    text = output_text(nb)
    assert "workers left: 0" in text
    assert "burn rate now: 0 core-hours per hour" in text  # the queue says: ended
    charged = re.search(r"charged: (\d+) core-seconds for (\d+) jobs", text)
    assert charged and int(charged[1]) > 0 and 1 <= int(charged[2]) <= 2
    logs = sorted(p.name for p in log_directory.glob("ensemble-*.err"))
    assert logs, "no Slurm job wrote a log"
    assert new_jobs() == []
    figures = sum(
        1
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    )
    assert figures >= 5

    got = xr.open_zarr(results_path, chunks=None).load()
    ds = xr.open_zarr(data, chunks=None)  # numpy arrays, no Dask
    assert ds["tmean"].chunks is None
    assert dict(ds.sizes) == {"member": 4, "time": 365, "lat": 11, "lon": 26}
    tmean = ds["tmean"].values
    precipitation = ds["precipitation"].values
    assert tmean.dtype == np.float32
    times = ds["time"].values
    land = ~np.isnan(ds["elevation"].values)
    assert 0.3 < land.mean() < 0.95

    def close(a: Any, b: Any) -> bool:
        a, b = np.asarray(a), np.asarray(b)
        same_sea = np.array_equal(np.isnan(a), np.isnan(b))
        return same_sea and bool(
            np.allclose(a, b, rtol=1e-4, atol=1e-4, equal_nan=True)
        )

    on_day = int(np.flatnonzero(times == np.datetime64(day))[0])
    assert close(got["spread"], tmean[:, on_day].std(axis=0))
    assert close(got["range"], (tmean.max(axis=0) - tmean.min(axis=0)).mean(axis=0))
    months = ds["time"].dt.month.values
    for season, in_season in {
        "DJF": (12, 1, 2),
        "MAM": (3, 4, 5),
        "JJA": (6, 7, 8),
        "SON": (9, 10, 11),
    }.items():
        days = np.isin(months, in_season)
        for name, values in (("tmean", tmean), ("precipitation", precipitation)):
            expected = values[:, days].mean(axis=(0, 1))
            assert close(got[f"seasonal_{name}"].sel(season=season), expected), (
                season,
                name,
            )
    # a warmer summer than winter on land, and rain that is never negative
    summer, winter = (got["seasonal_tmean"].sel(season=s) for s in ("JJA", "DJF"))
    assert float((summer - winter).min()) > 0
    assert float(got["seasonal_precipitation"].min()) >= 0

    lat, lon = CITIES[city]
    i = int(np.abs(ds["lat"].values - lat).argmin())
    j = int(np.abs(ds["lon"].values - lon).argmin())
    series = tmean[:, :, i, j].max(axis=0)
    assert close(got["city_tmax"], series)
    assert got.attrs["city_max"] == pytest.approx(float(series.max()), abs=1e-4)
    hottest = np.datetime_as_string(times[series.argmax()], unit="D")
    assert got.attrs["city_max_day"] == hottest
    assert (got.attrs["city_lat"], got.attrs["city_lon"]) == (
        float(ds["lat"][i]),
        float(ds["lon"][j]),
    )
