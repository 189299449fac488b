"""GPU jobs on the multi-node site's ``gpu`` partition (node mn4, two GPUs as
Slurm GRES, ``/run/slurm-mn/dev/nvidia[0-1]``): Slurm grants them in
``CUDA_VISIBLE_DEVICES``; each worker process gets its own, and advertises it
as the ``GPU`` resource that tasks ask for."""

from __future__ import annotations

import os
from pathlib import Path

import dask
from distributed import Client, get_worker

from hpcdask import SLURMCluster
from tests.integration.conftest import wait_for
from tests.integration.multinode_site import MultiNode


def where_am_i(_: int) -> tuple[str, str]:
    return str(get_worker().name), os.environ.get("CUDA_VISIBLE_DEVICES", "")


def test_each_worker_gets_its_own_gpu_and_gpu_tasks_run_there(
    on_multinode: MultiNode, log_directory: Path
) -> None:
    site = on_multinode
    with SLURMCluster(
        queue=site.gpu_partition, cores=2, memory="2GB", gpus=2, walltime="00:05:00"
    ) as cluster:
        assert "#SBATCH --gres=gpu:2" in cluster.job_script()
        cluster.scale(jobs=1)
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=90)
            seen = client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
            assert sorted(seen.values()) == ["0", "1"]  # one GPU each
            info = client.scheduler_info()["workers"].values()
            assert [w["resources"] for w in info] == [{"GPU": 1.0}] * 2
            assert {w["host"] for w in info} == {site.nodes["mn4"]}
            with dask.annotate(resources={"GPU": 1}):
                ran = client.gather(client.map(where_am_i, range(8)))
            names = {name for name, _ in ran}
            assert names == {f"{cluster.jobs()['name'].iloc[0]}-{i}" for i in (0, 1)}
            assert {gpu for _, gpu in ran} == {"0", "1"}
            # a task asking for two GPUs fits no worker: it waits, never runs
            two = client.submit(where_am_i, 0, resources={"GPU": 2}, pure=False)
            wait_for(
                lambda: (
                    client.run_on_scheduler(
                        lambda dask_scheduler, key=two.key: getattr(
                            dask_scheduler.tasks.get(key), "state", None
                        )
                    )
                    == "no-worker"
                ),
                10,
                "the two-GPU task to find no worker",
            )
            assert not two.done()
        usage = cluster.usage()
        assert usage.gpus_in_use == 2 and usage.gpu_hours > 0
