"""hpcdask as JupyterLab's Dask sidebar's cluster factory, on the real Slurm.

dask-labextension's own cluster manager (the Python side of the sidebar) makes
an hpcdask cluster from ``labextension.factory`` (a scheduler-job cluster, as a
site would configure it), adapts and scales it, lists it with its workers and
dashboard link, and closes it; the "insert client" address it shows connects.
The JupyterLab page itself, in Chromium, is in test_lab_browser.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import dask.config
import pytest
from distributed import Client

from tests.integration.conftest import wait_for

pytestmark = pytest.mark.usefixtures("new_jobs")

FACTORY = {
    "module": "hpcdask",
    "class": "SLURMCluster",
    "args": [],
    "kwargs": {
        "cores": 1,
        "memory": "1GB",
        "walltime": "00:10:00",
        "scheduler-in": "job",
        "scheduler-job": {"memory": "1GB", "walltime": "00:15:00"},
    },
}


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "registry"
    # for the processes the test starts, and for this one
    monkeypatch.setenv("DASK_HPCDASK__REGISTRY_DIRECTORY", str(root))
    with dask.config.set({"hpcdask.registry-directory": str(root)}):
        yield root


async def test_the_sidebar_manager_runs_an_hpcdask_cluster(
    registry: Path, new_jobs: Callable[[], list[str]]
) -> None:
    from dask_labextension.manager import DaskClusterManager

    with dask.config.set({"labextension.factory": FACTORY}):
        manager = DaskClusterManager()
        await manager
        model = await manager.start_cluster(
            configuration={"adapt": {"minimum": 1, "maximum": 2}}
        )
    cluster_id = model["id"]
    try:
        assert model["adapt"] == {"minimum": 1, "maximum": 2}
        assert model["scheduler_address"].startswith("hpcdask://")
        assert model["name"] == "ClusterHandle 1"
        name = model["scheduler_address"].removeprefix("hpcdask://")
        assert (registry / name).is_dir()
        # adaptive scaling runs in the scheduler job: its minimum brings a worker
        await _wait_async(lambda: manager.get_cluster(cluster_id)["workers"] == 1)
        assert len(new_jobs()) == 2  # the scheduler job and one worker job

        model = await manager.scale_cluster(cluster_id, 2)
        assert model is not None and "adapt" not in model
        await _wait_async(lambda: manager.get_cluster(cluster_id)["workers"] == 2)

        (listed,) = manager.list_clusters()
        assert listed["id"] == cluster_id and listed["workers"] == 2
        assert listed["cores"] == 2 and listed["memory"] == "1.86 GiB"  # 2 x 1GB
        assert listed["dashboard_link"].startswith("http://")
        assert listed["dashboard_link"].endswith("/status")
        # the dashboard offers the jobs pane to the sidebar
        plots = (
            listed["dashboard_link"].removesuffix("status") + "individual-plots.json"
        )
        # (through the handle's local forward, served by this event loop)
        panes = await asyncio.to_thread(_get_json, plots)
        assert panes["Individual Hpc Jobs"] == "/individual-hpc-jobs"

        # the code "insert client" writes connects, from a fresh process
        # whose dask config has no TLS settings
        address = listed["scheduler_address"]
        code = (
            "from dask.distributed import Client\n"
            f"client = Client({address!r})\n"
            "print(client.submit(lambda: 42).result(), len(client.scheduler_info()['workers']))"
        )
        out = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", code],
            capture_output=True, text=True, timeout=120, env=os.environ.copy(),
        )  # fmt: skip
        assert out.stdout.split() == ["42", "2"], out.stderr
        # and so does a Client in this process (its address is the same form)
        async with Client(address, asynchronous=True) as client:
            assert await client.submit(lambda: 1) == 1
    finally:
        closed = await manager.close_cluster(cluster_id)
    assert closed is not None and manager.list_clusters() == []
    assert new_jobs() == []
    assert list(registry.iterdir()) == []


async def _wait_async(predicate: Callable[[], object], timeout: float = 120) -> None:
    await asyncio.to_thread(wait_for, predicate, timeout)


def _get_json(url: str) -> dict[str, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        data: dict[str, str] = json.load(response)
    return data
