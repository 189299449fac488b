"""The synthetic ensemble of examples/ensemble_data.py: sizes, determinism and
physical sense, computed in memory (no Zarr store, no cluster)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dask
import numpy as np
import pytest
import xarray as xr

from examples.ensemble_data import (
    EnsembleShape,
    ensemble_dataset,
    main,
    write_ensemble,
)


@pytest.fixture(autouse=True)
def _local_threads() -> Iterator[None]:
    # computed here, whatever scheduler an earlier test's Client left configured
    with dask.config.set(scheduler="threads"):
        yield


@pytest.mark.parametrize(
    ("size", "members", "days"),
    [("5MB", 4, 365), ("200MB", 4, 365), ("1GB", 10, 730), ("8GB", 25, 1095)],
)
def test_shape_for_size_is_close_to_the_size(
    size: str, members: int, days: int
) -> None:
    shape = EnsembleShape.for_size(size)
    assert (shape.members, shape.days) == (members, days)
    target = dask.utils.parse_bytes(size)
    assert 0.85 * target < shape.nbytes < 1.15 * target
    assert 2.0 < shape.lon / shape.lat < 2.7  # the contiguous US is wide


def test_shape_for_size_takes_members_and_years_and_refuses_nonsense() -> None:
    shape = EnsembleShape.for_size("5MB", members=2, years=2)
    assert (shape.members, shape.days) == (2, 730)
    assert EnsembleShape.for_size(1).lat == 8  # the smallest grid
    with pytest.raises(ValueError, match="positive"):
        EnsembleShape.for_size(0)


@pytest.fixture(scope="module")
def small() -> xr.Dataset:
    shape = EnsembleShape(members=3, days=400, lat=10, lon=24)
    with dask.config.set(scheduler="sync"):
        return ensemble_dataset(shape, seed=7).load()


def test_layout_one_chunk_per_member_and_year() -> None:
    ds = ensemble_dataset(EnsembleShape(members=3, days=400, lat=10, lon=24))
    assert ds["tmean"].dims == ("member", "time", "lat", "lon")
    assert ds["tmean"].chunks == ((1, 1, 1), (365, 35), (10,), (24,))
    assert set(ds.data_vars) == {"precipitation", "tmean", "trange", "elevation"}
    assert ds["elevation"].dims == ("lat", "lon")
    assert all(ds[v].dtype == np.float32 for v in ds.data_vars)
    assert str(ds["time"].values[0])[:10] == "1981-01-01"


def test_same_seed_same_numbers_whatever_is_computed(small: xr.Dataset) -> None:
    shape = EnsembleShape(members=3, days=400, lat=10, lon=24)
    again = ensemble_dataset(shape, seed=7)
    # one chunk alone equals the same chunk computed with all the others
    alone = again["tmean"].isel(member=2, time=slice(365, 400)).values
    np.testing.assert_array_equal(alone, small["tmean"].isel(member=2)[365:].values)
    other = ensemble_dataset(shape, seed=8)["tmean"].isel(member=0, time=0).values
    assert not np.allclose(
        other, small["tmean"].isel(member=0, time=0).values, equal_nan=True
    )


def test_values_make_physical_sense(small: xr.Dataset) -> None:
    sea = np.isnan(small["elevation"].values)
    assert 0.05 < sea.mean() < 0.7
    for name in ("precipitation", "tmean", "trange"):
        values = small[name].values
        # NaN exactly over the sea, for every member and day
        assert np.array_equal(np.isnan(values), np.broadcast_to(sea, values.shape))
    land = small.where(~np.isnan(small["elevation"]))
    assert float(land["precipitation"].min()) == 0.0  # dry days
    assert 0.1 < float((land["precipitation"] > 0).mean()) < 0.6
    assert float(land["trange"].min()) >= 1.0 and float(land["trange"].max()) < 40
    seasons = land["tmean"].groupby("time.season").mean(...)
    assert float(seasons.sel(season="JJA")) - float(seasons.sel(season="DJF")) > 10
    # members differ, but not by much
    spread = float(land["tmean"].std("member").mean())
    assert 0.5 < spread < 6.0
    assert float(small["elevation"].max()) > 1500  # mountains


def test_write_refuses_to_overwrite_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "e.zarr"
    shape = write_ensemble(path, "1MB", seed=3)
    with pytest.raises(FileExistsError):
        write_ensemble(path, "1MB")
    ds = xr.open_zarr(path)
    assert ds["tmean"].shape == (shape.members, shape.days, shape.lat, shape.lon)
    expected = ensemble_dataset(shape, seed=3)["trange"].isel(member=1).values
    np.testing.assert_array_equal(ds["trange"].isel(member=1).values, expected)
    assert main(["--out", str(path), "--size", "1MB", "--overwrite"]) == 0
