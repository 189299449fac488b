"""Job shapes in a cluster of several worker pools: each pool's adaptive loop
reads the forecast of its own partitions and chooses walltimes for its own
job shape; a pool's shaped jobs are submitted with the pool's options.
FakeRunner fed with saved real output, no processes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace

import pytest

from hpcdask.config import adaptive_settings, resolve_job_options
from hpcdask.forecast import JobShape
from hpcdask.jobs import JobTable
from hpcdask.models import ScaleDecision
from hpcdask.options import JobOptions
from hpcdask.pools import DEFAULT_POOL, pool_settings
from hpcdask.poolscaling import PoolScaling
from hpcdask.poolset import PoolSet
from hpcdask.probe import ClusterScaling, SchedulerProbe
from hpcdask.runner import Completed, FakeRunner
from hpcdask.startprobe import start_probe
from hpcdask.systems.base import CommandBackend
from hpcdask.systems.slurm import Slurm

BUSY = Path(__file__).parent.parent / "fixtures" / "slurm" / "busy"


def ok(stdout: str = "") -> Completed:
    return Completed(("x",), 0, stdout, "")


def slurm_options(tmp_path: Path, **kwargs: object) -> JobOptions:
    given = {"memory": "2GB", **kwargs}
    return resolve_job_options("slurm", log_directory=str(tmp_path), **given)


def two_pools(tmp_path: Path) -> dict[str, JobOptions]:
    """A default pool of 1-h jobs on ``busy``, and a ``big`` pool of 2-h jobs
    of 4 cores on ``busy`` or ``idle``."""
    return {
        DEFAULT_POOL: slurm_options(
            tmp_path, cores=1, walltime="01:00:00", queue="busy"
        ),
        "big": slurm_options(
            tmp_path,
            cores=4,
            memory="8GB",
            walltime="02:00:00",
            queue=["busy", "idle"],
            name="w-big",
        ),
    }


class Actions:
    async def retire(self, worker_names: list[str]) -> None:
        pass

    def drain(self, job_names: Iterable[str]) -> None:
        pass

    def forget(self, worker_names: list[str]) -> None:
        pass


def pool_set(
    tmp_path: Path,
    options: dict[str, JobOptions],
    runner: FakeRunner,
    rendered: list[tuple[str, list[str], float | None]] | None = None,
) -> PoolSet:
    table = JobTable(CommandBackend(Slurm(), runner), options[DEFAULT_POOL])
    probe = SchedulerProbe(table, options[DEFAULT_POOL].walltime, 1)

    def render(opts: JobOptions, names: list[str], walltime: float | None) -> str:
        if rendered is not None:
            rendered.append((opts.name, names, walltime))
        return "#!/bin/bash\n"

    pools = PoolSet(table, probe, None, render)
    for key, opts in options.items():
        pools.add(key, opts)
    return pools


def test_each_pool_chooses_shapes_for_its_own_jobs(tmp_path: Path) -> None:
    options = two_pools(tmp_path)
    settings, _ = pool_settings(options, {"pools": {"big": (0, 2)}})
    default, big = (settings[k].params.shapes for k in (DEFAULT_POOL, "big"))
    assert default is not None and big is not None
    assert (default.partitions, default.cpus, default.walltime) == (
        ("busy",),
        1,
        3600.0,
    )
    assert (big.partitions, big.cpus, big.memory, big.walltime) == (
        ("busy", "idle"),
        4,
        8 * 10**9,
        7200.0,
    )


@pytest.mark.parametrize(
    "shape",
    [{"nodes": 2}, {"gpus": 1}],
    ids=["multi-node jobs", "GPU jobs"],
)
def test_jobs_the_forecast_cannot_place_keep_their_walltime(
    tmp_path: Path, shape: dict[str, object]
) -> None:
    opts = slurm_options(tmp_path, cores=2, walltime="01:00:00", **shape)
    assert adaptive_settings(opts).params.shapes is None


async def test_each_pools_loop_reads_its_own_partitions(tmp_path: Path) -> None:
    runner = FakeRunner(
        {
            "sinfo": [ok((BUSY / "sinfo_busy_idle.txt").read_text())],
            "squeue": [ok((BUSY / "squeue_plan.txt").read_text())],
        }
    )
    options = two_pools(tmp_path)
    pools = pool_set(tmp_path, options, runner)
    settings, cap = pool_settings(options, {})
    pools.adapt(settings, cap)
    starts = {}
    for key, pool in pools.items():
        assert pool.adaptive is not None
        scaling = pool.adaptive.target
        assert isinstance(scaling, PoolScaling) and scaling.starts is not None
        starts[key] = scaling.starts
    assert starts[DEFAULT_POOL].partitions == ("busy",)
    assert starts["big"].partitions == ("busy", "idle")
    starts["big"].read(1000.0, wanted=True)
    for _ in range(5):
        await asyncio.sleep(0)
    sinfo = next(argv for argv in runner.calls if argv[0] == "sinfo")
    assert "--partition=busy,idle" in sinfo
    pools.stop_adaptive()


def test_a_cluster_of_one_pool_keeps_its_one_loop(tmp_path: Path) -> None:
    options = {DEFAULT_POOL: two_pools(tmp_path)[DEFAULT_POOL]}
    pools = pool_set(tmp_path, options, FakeRunner())
    settings, cap = pool_settings(options, {})
    adaptive = pools.adapt(settings, cap)
    assert isinstance(adaptive.target, ClusterScaling)
    assert adaptive.target.starts is not None
    assert adaptive.target.starts.partitions == ("busy",)
    backend = pools.table.backend
    off = adaptive_settings(options[DEFAULT_POOL], job_shapes=False)
    assert start_probe(backend, off) is None


async def test_a_pools_shaped_jobs_carry_pool_options_and_walltime(
    tmp_path: Path,
) -> None:
    runner = FakeRunner({"sbatch": [ok("71\n"), ok("72\n")], "scontrol": [ok("")]})
    rendered: list[tuple[str, list[str], float | None]] = []
    pools = pool_set(tmp_path, two_pools(tmp_path), runner, rendered)
    note = "20-min jobs start now in backfill (idle); 2-h jobs at 12:40"
    shapes = (JobShape(1, 1200.0, note), JobShape(1, 7200.0, "2-h jobs start now"))
    await pools.get("big").fleet.apply(ScaleDecision(submit=2, shapes=shapes))
    assert sorted(rendered) == [
        ("w-big", ["w-big-0"], 1200.0),
        ("w-big", ["w-big-1"], 7200.0),
    ]
    records = pools.table.records
    assert {r.pool for r in records.values()} == {"big"}
    assert records["w-big-0"].note == note
    assert records["w-big-0"].status.time_limit == 1200.0


def test_the_shape_reason_names_each_pool(tmp_path: Path) -> None:
    options = two_pools(tmp_path)
    pools = pool_set(tmp_path, options, FakeRunner())
    assert pools.shape_reason() == ""
    reasons = {DEFAULT_POOL: "1-h jobs start now", "big": "20-min jobs start now"}
    for key, pool in pools.items():
        pool.adaptive = SimpleNamespace(shape_reason=reasons[key])  # type: ignore[assignment]
    assert pools.shape_reason() == (
        "default: 1-h jobs start now; big: 20-min jobs start now"
    )
