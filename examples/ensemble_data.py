"""Write a synthetic ensemble of daily weather to a Zarr store: the workload of
hpcdask's examples, tests and benchmarks.

The dataset looks like a gridded ensemble meteorology product over the
contiguous United States: ``member`` x ``time`` (days) x ``lat`` x ``lon`` for

- ``precipitation`` (mm/day): dry days and gamma-distributed wet days, wetter
  in the east and the north-west;
- ``tmean`` (degC): a latitude and elevation climate, a seasonal cycle, a small
  offset per member and weather that persists for days;
- ``trange`` (degC): the diurnal temperature range, larger where it is dry and
  high, smaller on wet days;
- ``elevation`` (m, ``lat`` x ``lon``): mountains where the Rockies, the Sierra
  Nevada and the Appalachians are; NaN over the sea, so it doubles as the land
  mask (all variables are NaN over the sea).

Chunks are one member by one year (365 days) by the whole grid. ``size`` sets
the grid's resolution (and, unless given, the members and years): ``5MB`` for
tests, several GB for benchmarks. Values come from numpy's random generator
seeded per chunk from ``seed``, so the same arguments write the same numbers,
and chunks are made and written a few at a time, so memory stays bounded
however large the store. Nothing is downloaded.

    python examples/ensemble_data.py --size 5MB --out ensemble.zarr
    python examples/ensemble_data.py --size 4GB --out /scratch/me/ensemble.zarr
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
import zarr
from dask.utils import format_bytes, parse_bytes

#: the grid's extent: the contiguous United States
LAT_RANGE = (25.0, 49.5)
LON_RANGE = (-124.5, -67.0)
START = "1981-01-01"
DAYS_PER_CHUNK = 365
VARIABLES = ("precipitation", "tmean", "trange")
_ASPECT = (LON_RANGE[1] - LON_RANGE[0]) / (LAT_RANGE[1] - LAT_RANGE[0])
_COARSE = (6, 12)  # the weather's own grid (lat, lon), interpolated to the data's
#: ``to_zarr`` options: Zarr format 2 with consolidated metadata, which every
#: zarr-python (2 and 3) and other Zarr readers open with one metadata read
ZARR_OPTIONS: dict[str, Any] = {"consolidated": True}
if int(zarr.__version__.split(".")[0]) >= 3:
    ZARR_OPTIONS["zarr_format"] = 2


@dataclass(frozen=True)
class EnsembleShape:
    """Sizes of the ensemble's dimensions."""

    members: int
    days: int
    lat: int
    lon: int

    @property
    def nbytes(self) -> int:
        """Bytes of the data, uncompressed (float32)."""
        cells = self.lat * self.lon
        return 4 * (len(VARIABLES) * self.members * self.days * cells + cells)

    @classmethod
    def for_size(
        cls, size: str | int, members: int | None = None, years: int | None = None
    ) -> EnsembleShape:
        """The shape whose data takes about ``size`` bytes (``"5MB"``, ``"4GB"``).

        Without ``members`` and ``years``: 4 members over 1 year up to 256 MB,
        10 over 2 years up to 2 GB, 25 over 3 years beyond; the grid takes the
        rest, at least 8 x 16 points.
        """
        nbytes = parse_bytes(size) if isinstance(size, str) else int(size)
        if nbytes <= 0:
            raise ValueError(f"size must be positive, got {size!r}")
        tier = 0 if nbytes <= 2**28 else 1 if nbytes <= 2**31 else 2
        members = members or (4, 10, 25)[tier]
        years = years or (1, 2, 3)[tier]
        if members < 1 or years < 1:
            raise ValueError("members and years must be at least 1")
        days = DAYS_PER_CHUNK * years
        cells = nbytes / (4 * len(VARIABLES) * members * days)
        lat = max(8, round(math.sqrt(cells / _ASPECT)))
        lon = max(16, round(lat * _ASPECT))
        return cls(members=members, days=days, lat=lat, lon=lon)


def _interpolation(n_fine: int, n_coarse: int) -> np.ndarray:
    """Weights that interpolate ``n_coarse`` points linearly onto ``n_fine``,
    scaled so that interpolated unit-variance noise keeps unit variance at
    every point (plain weights would leave less of it between coarse points)."""
    x = np.linspace(0, n_coarse - 1, n_fine)
    weights = np.maximum(0.0, 1.0 - np.abs(x[:, None] - np.arange(n_coarse)))
    scaled: np.ndarray = weights / np.sqrt((weights**2).sum(axis=1, keepdims=True))
    return scaled


@dataclass(frozen=True)
class _Climate:
    """The fields every chunk starts from (lat x lon)."""

    lat: np.ndarray
    lon: np.ndarray
    elevation: np.ndarray  # m, NaN over the sea
    land: np.ndarray
    annual_mean: np.ndarray  # degC
    seasonal_amplitude: np.ndarray  # degC
    wetness: np.ndarray  # 0 (dry) .. 1 (wet)
    w_lat: np.ndarray
    w_lon: np.ndarray


def _climate(shape: EnsembleShape, seed: int) -> _Climate:
    lat = np.linspace(*LAT_RANGE, shape.lat)
    lon = np.linspace(*LON_RANGE, shape.lon)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    # coasts: the west coast runs south-east below 42N, the east coast south-west
    # below 45N; the Gulf of Mexico is sea south of 29.5N except for Florida
    west = -124.0 + 7.0 * np.clip((42.0 - la) / 17.0, 0, 1)
    east = -67.5 - 13.5 * np.clip((45.0 - la) / 15.0, 0, 1)
    gulf = (la < 29.5) & (lo > -97.5) & (lo < -83.0)
    land = (lo > west) & (lo < east) & ~gulf
    band = np.clip((la - 31.0) / 4.0, 0, 1) * np.clip((49.0 - la) / 2.0, 0, 1)
    rockies = 2300.0 * np.exp(-(((lo + 106.0 + 0.45 * (la - 33.0)) / 4.0) ** 2)) * band
    sierra = 1700.0 * np.exp(-(((lo + 119.5 + 0.6 * (la - 37.0)) / 1.5) ** 2))
    sierra *= np.clip((42.0 - la) / 2.0, 0, 1) * np.clip((la - 35.0) / 1.0, 0, 1)
    appalachians = 700.0 * np.exp(-(((lo + 80.5 + 0.8 * (la - 37.0)) / 2.0) ** 2))
    appalachians *= np.clip((la - 33.0) / 2.0, 0, 1) * np.clip((46.0 - la) / 2.0, 0, 1)
    plains = 900.0 * np.clip((-95.0 - lo) / 10.0, 0, 1)
    w_lat = _interpolation(shape.lat, _COARSE[0])
    w_lon = _interpolation(shape.lon, _COARSE[1])
    rng = np.random.default_rng([seed, 0])
    hills = w_lat @ rng.normal(0.0, 150.0, _COARSE) @ w_lon.T
    elevation = np.maximum(
        rockies + sierra + appalachians + plains + 100.0 + hills, 0.0
    )
    elevation = np.where(land, elevation, np.nan)
    km = np.nan_to_num(elevation) / 1000.0
    annual_mean = 25.0 - 0.6 * (la - 25.0) - 6.0 * km
    # far from the sea the seasons are stronger
    inland = np.clip(np.minimum(lo - west, east - lo) / 15.0, 0, 1)
    seasonal_amplitude = 5.0 + 0.25 * (la - 25.0) + 5.0 * inland
    wetness = 0.15 + 0.6 * np.clip((lo + 100.0) / 20.0, 0, 1)
    wetness += 0.7 * np.exp(-(((lo + 123.0) / 3.0) ** 2)) * np.clip((la - 40) / 6, 0, 1)
    return _Climate(
        lat=lat,
        lon=lon,
        elevation=elevation.astype(np.float32),
        land=land,
        annual_mean=annual_mean,
        seasonal_amplitude=seasonal_amplitude,
        wetness=np.clip(wetness, 0.0, 1.0),
        w_lat=w_lat,
        w_lon=w_lon,
    )


def _weather(rng: np.random.Generator, days: int, climate: _Climate) -> np.ndarray:
    """Anomalies that persist for a few days and span several hundred km, N(0, 1)
    at every point."""
    noise = rng.standard_normal((days, *_COARSE))
    persistence = 0.7
    for t in range(1, days):
        noise[t] = persistence * noise[t - 1] + math.sqrt(1 - persistence**2) * noise[t]
    fine: np.ndarray = np.einsum(
        "ia,tab,jb->tij", climate.w_lat, noise, climate.w_lon, optimize=True
    )
    return fine


def _chunk(
    climate: _Climate, seed: int, member: int, first_day: int, days: np.ndarray
) -> np.ndarray:
    """The three variables of one member over ``days`` (day numbers from START),
    shape (3, 1, len(days), lat, lon), float32."""
    rng = np.random.default_rng([seed, 1, member, first_day])
    n = len(days)
    offset_rng = np.random.default_rng([seed, 2, member])
    member_offset = (
        climate.w_lat @ offset_rng.normal(0.0, 0.5, _COARSE) @ climate.w_lon.T
    )
    doy = (np.asarray(days) % 365)[:, None, None]
    season = np.cos(2 * np.pi * (doy - 200) / 365.0)  # warmest around 19 July
    warm = _weather(rng, n, climate)
    wet = _weather(rng, n, climate)
    tmean = (
        climate.annual_mean
        + climate.seasonal_amplitude * season
        + member_offset
        + 3.0 * warm
        + rng.normal(0.0, 0.5, (n, *climate.land.shape))
    )
    # it rains where the wet anomaly beats a threshold that is lower where wet
    threshold = 1.2 - 1.5 * climate.wetness
    raining = wet > threshold
    amount = rng.gamma(0.8, 1.0, raining.shape) * (3.0 + 9.0 * climate.wetness)
    precipitation = np.where(raining, amount * (1.0 + 0.5 * (wet - threshold)), 0.0)
    km = np.nan_to_num(climate.elevation) / 1000.0
    trange = (
        9.0
        + 6.0 * (1.0 - climate.wetness)
        + 2.0 * km
        - 4.0 * raining
        + rng.normal(0.0, 1.0, raining.shape)
    )
    block = np.stack([precipitation, tmean, np.maximum(trange, 1.0)])
    block[:, :, ~climate.land] = np.nan
    return block[:, None].astype(np.float32)


def ensemble_dataset(shape: EnsembleShape, seed: int = 0) -> xr.Dataset:
    """The ensemble as a lazy, dask-backed :class:`xarray.Dataset`.

    Each chunk (one member, up to 365 days, the whole grid) is made from a
    random generator seeded with ``seed``, the member and the chunk's first day,
    so it does not depend on which other chunks are computed, or in what order.
    """
    climate = _climate(shape, seed)
    time_chunks = tuple(
        min(DAYS_PER_CHUNK, shape.days - start)
        for start in range(0, shape.days, DAYS_PER_CHUNK)
    )

    def block(block_info: dict[Any, Any] | None = None) -> np.ndarray:
        assert block_info is not None
        (_, _), (member, _), (first, last), _, _ = block_info[None]["array-location"]
        return _chunk(climate, seed, member, first, np.arange(first, last))

    stacked = da.map_blocks(
        block,
        dtype=np.float32,
        chunks=(
            (len(VARIABLES),),
            (1,) * shape.members,
            time_chunks,
            (shape.lat,),
            (shape.lon,),
        ),
        meta=np.array((), dtype=np.float32),
    )
    dims = ("member", "time", "lat", "lon")
    attrs = {
        "precipitation": {"long_name": "daily precipitation", "units": "mm/day"},
        "tmean": {"long_name": "daily mean air temperature", "units": "degC"},
        "trange": {"long_name": "diurnal temperature range", "units": "degC"},
    }
    data_vars: dict[str, Any] = {
        name: (dims, stacked[i], attrs[name]) for i, name in enumerate(VARIABLES)
    }
    data_vars["elevation"] = (
        ("lat", "lon"),
        climate.elevation,
        {"long_name": "elevation, NaN over the sea (the land mask)", "units": "m"},
    )
    return xr.Dataset(
        data_vars,
        coords={
            "member": np.arange(1, shape.members + 1, dtype=np.int32),
            "time": pd.date_range(START, periods=shape.days, freq="D"),
            "lat": ("lat", climate.lat, {"units": "degrees_north"}),
            "lon": ("lon", climate.lon, {"units": "degrees_east"}),
        },
        attrs={
            "title": "synthetic daily weather ensemble (hpcdask examples)",
            "source": "examples/ensemble_data.py",
            "seed": seed,
        },
    )


def write_ensemble(
    path: str | Path,
    size: str | int = "5MB",
    *,
    members: int | None = None,
    years: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> EnsembleShape:
    """Write the ensemble of about ``size`` bytes to the Zarr store ``path``.

    Runs on this process's threads, never on a Dask cluster a client may have
    made the default. Raises ``FileExistsError`` if ``path`` exists and not
    ``overwrite``.
    """
    shape = EnsembleShape.for_size(size, members, years)
    if Path(path).exists() and not overwrite:
        raise FileExistsError(f"{path} exists (pass overwrite=True to replace it)")
    ds = ensemble_dataset(shape, seed)
    store = ds.to_zarr(path, mode="w", compute=False, **ZARR_OPTIONS)
    with dask.config.set(scheduler="threads"):
        dask.compute(store)
    return shape


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write a synthetic daily weather ensemble to a Zarr store."
    )
    parser.add_argument("--out", required=True, help="the Zarr store to write")
    parser.add_argument(
        "--size", default="5MB", help="data size, e.g. 5MB, 500MB, 4GB (default 5MB)"
    )
    parser.add_argument("--members", type=int, default=None)
    parser.add_argument("--years", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        shape = write_ensemble(
            args.out,
            args.size,
            members=args.members,
            years=args.years,
            seed=args.seed,
            overwrite=args.overwrite,
        )
    except (FileExistsError, ValueError) as e:
        parser.error(str(e))
    print(
        f"wrote {args.out}: {shape.members} members x {shape.days} days x "
        f"{shape.lat} x {shape.lon} points, {format_bytes(shape.nbytes)} of data, "
        f"in {time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
