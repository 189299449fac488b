"""A CPU pool and a GPU pool in one cluster, on the multi-node site: the CPU
pool on the ``batch`` partition (not the GPU node mn4), the GPU pool on the
``gpu`` partition (mn4: two GPUs as Slurm GRES).

GPU tasks ask ``resources={"GPU": 1}``; CPU tasks ask ``{"CPU": 1}``, a
resource the CPU pool's workers advertise (a task without restrictions may run
on any worker, GPU ones included: see docs/pools.md).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import dask
from distributed import Client, get_worker

from hpcdask import SLURMCluster
from tests.integration.conftest import wait_for
from tests.integration.multinode_site import MultiNode


def where(x: int, seconds: float = 0.0) -> tuple[str, str, str]:
    time.sleep(seconds)
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    return str(get_worker().name), gpus, socket.gethostname()


def two_pools(site: MultiNode, gpus_per_job: int) -> SLURMCluster:
    """One worker of one thread per CPU-pool job (mn1-mn3) and one worker per
    GPU in the GPU pool's jobs (mn4)."""
    return SLURMCluster(
        queue=site.partition,
        cores=1,
        memory="1GB",
        walltime="00:10:00",
        job_extra_directives=["--exclude=mn4"],
        resources={"CPU": 1},
        pools={
            "gpu": {
                "queue": site.gpu_partition,
                "cores": gpus_per_job,
                "memory": "1GB",
                "gpus": gpus_per_job,
            }
        },
    )


def test_gpu_tasks_run_on_the_gpu_pool_each_worker_on_its_own_gpu(
    on_multinode: MultiNode, log_directory: Path
) -> None:
    with two_pools(on_multinode, gpus_per_job=2) as cluster:
        assert "--gres=gpu:2" in cluster.job_script(pool="gpu")
        assert "--gres" not in cluster.job_script()
        cluster.scale(jobs=2)
        cluster.scale(jobs=1, pool="gpu")
        with Client(cluster) as client:
            client.wait_for_workers(4, timeout=120)
            with dask.annotate(resources={"GPU": 1}):
                gpu = client.gather(client.map(where, range(12), [0.2] * 12))
            with dask.annotate(resources={"CPU": 1}):  # other keys than the GPU tasks'
                cpu = client.gather(client.map(where, range(12, 24), [0.2] * 12))
            jobs = cluster.jobs().set_index("name")
        # every GPU task on a GPU-pool worker, on mn4, each worker with its
        # own GPU of the two Slurm granted the job
        gpu_workers = {name: gpus for name, gpus, _ in gpu}
        assert all("-gpu-" in name for name in gpu_workers), gpu_workers
        assert sorted(gpu_workers.values()) == ["0", "1"]
        assert {host for _, _, host in gpu} == {"mn4"}
        # every CPU task on the CPU pool, never on mn4
        assert all("-gpu-" not in name for name, _, _ in cpu)
        assert "mn4" not in {host for _, _, host in cpu}
        assert list(jobs["pool"]) == ["default", "default", "gpu"]
        usage = cluster.usage(pool="gpu")
        assert usage.gpus_in_use == 2 and cluster.usage(pool="default").gpu_hours == 0


def test_a_gpu_backlog_grows_only_the_gpu_pool_and_both_shrink_when_idle(
    on_multinode: MultiNode,
    log_directory: Path,
    multinode_jobs: Callable[[], list[str]],
) -> None:
    with two_pools(on_multinode, gpus_per_job=1) as cluster:
        cluster.adapt(minimum_jobs=0, maximum_jobs=4, pools={"gpu": (0, 2)})
        with Client(cluster) as client:
            with dask.annotate(resources={"GPU": 1}):
                futures = client.map(where, range(16), [1.0] * 16)
            # the backlog asks for GPU workers only: two jobs (the pool's
            # maximum), none of the default pool
            wait_for(
                lambda: (cluster.jobs()["pool"] == "gpu").sum() == 2,
                60,
                "two GPU jobs",
            )
            ran = client.gather(futures)
            assert {name.split("-gpu-")[0] for name, _, _ in ran} == {"dask-worker"}
            # one GPU a job: the two jobs share mn4, each with its own GPU
            by_worker = {name: gpus for name, gpus, _ in ran}
            assert sorted(by_worker.values()) == ["0", "1"], by_worker
            jobs = cluster.jobs()
            assert set(jobs["pool"]) == {"gpu"}, jobs[["pool", "name", "state"]]
            del futures, ran
            # idle, no data held: both pools go back to their minimum, 0
            wait_for(lambda: multinode_jobs() == [], 90, "the idle jobs to go")
            wait_for(
                lambda: set(cluster.jobs()["state"]) <= {"cancelled", "completed"},
                10,
                "the cluster to see its jobs ended",
            )
