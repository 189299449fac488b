"""JupyterLab's Dask sidebar with an hpcdask cluster, in a real headless Chromium.

A real JupyterLab server with dask-labextension, configured (dask config, as a
site would) with hpcdask as its cluster factory; Debian's Chromium driven by
Playwright clicks the sidebar's NEW button, sees the cluster listed with its
``hpcdask://`` address and worker, opens the cluster's "Hpc Jobs" pane and reads
the job table the pane's Bokeh document holds. A screenshot is kept in
tests/artifacts/.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import dask.config
import pytest
import yaml
from playwright.sync_api import BrowserContext, sync_playwright

from hpcdask.handle import ClusterHandle
from tests.integration.conftest import wait_for
from tests.integration.test_dashboard import CHROMIUM, FLAGS

pytestmark = pytest.mark.usefixtures("new_jobs")

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

READ_PANE = """() => {
    const doc = Bokeh.documents[0];
    const table = doc.get_model_by_name('hpc-table').data;
    return {job_id: Array.from(table.job_id), state: Array.from(table.state),
            summary: doc.get_model_by_name('hpc-summary').text};
}"""
PANE_READY = """() => window.Bokeh !== undefined && Bokeh.documents.length > 0
    && Bokeh.documents[0].get_model_by_name('hpc-table') !== null
    && Bokeh.documents[0].get_model_by_name('hpc-table').get_length() >= 1
    && Array.from(Bokeh.documents[0].get_model_by_name('hpc-table').data.state)
         .includes('running')"""


@pytest.fixture
def lab(tmp_path: Path, log_directory: Path) -> Iterator[tuple[str, Path]]:
    """A JupyterLab server (no token: it listens on 127.0.0.1 only) whose Dask
    sidebar makes hpcdask clusters. Yields its URL and the registry; closes
    every cluster the test left (a scheduler-job cluster outlives the server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home, config, registry = tmp_path / "lab", tmp_path / "dask", tmp_path / "registry"
    home.mkdir()
    config.mkdir()
    settings = {
        "labextension": {
            "factory": {
                "module": "hpcdask",
                "class": "SLURMCluster",
                "args": [],
                "kwargs": {
                    "cores": 1,
                    "memory": "1GB",
                    "walltime": "00:10:00",
                    "scheduler_in": "job",
                    "scheduler_job": {"memory": "1GB"},
                },
            },
            "default": {"workers": 1, "adapt": None},
        },
        "hpcdask": {
            "poll-interval": "0.5s",
            "registry-directory": str(registry),
            "slurm": {"log-directory": str(log_directory)},
        },
    }
    (config / "lab.yaml").write_text(yaml.safe_dump(settings))
    env = {
        **os.environ,
        "DASK_CONFIG": str(config),
        "DASK_HPCDASK__REGISTRY_DIRECTORY": str(registry),
        "JUPYTER_RUNTIME_DIR": str(home),
        "JUPYTER_CONFIG_DIR": str(home),
    }
    server = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
            "--ip=127.0.0.1", f"--port={port}", "--IdentityProvider.token=",
            "--ServerApp.password=", f"--ServerApp.root_dir={home}",
        ],
        stdout=subprocess.DEVNULL, stderr=(home / "server.log").open("w"), env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"{base}/dask/clusters", timeout=2):
                    return True
            except OSError:
                return server.poll() is not None

        wait_for(answers, timeout=120, what="JupyterLab to answer")
        assert server.poll() is None, (home / "server.log").read_text()
        yield base, registry
    finally:
        server.terminate()
        server.wait(30)
        with dask.config.set({"hpcdask.registry-directory": str(registry)}):
            for entry in registry.iterdir() if registry.exists() else []:
                ClusterHandle.from_name(entry.name).close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1500, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()


def test_the_dask_sidebar_shows_an_hpcdask_cluster_and_its_jobs(
    lab: tuple[str, Path], browser: BrowserContext, new_jobs: Callable[[], list[str]]
) -> None:
    base, registry = lab
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/lab?reset", timeout=120_000)
    page.click("[data-id='dask-dashboard-launcher']", timeout=120_000)
    # the sidebar's NEW button: dask-labextension's manager calls the factory
    page.locator(".jp-Toolbar-item", has_text="NEW").first.click()
    title = page.locator(".dask-ClusterListingItem-title")
    title.wait_for(timeout=120_000)
    assert title.inner_text() == "ClusterHandle 1"
    (name,) = [p.name for p in registry.iterdir()]
    address = page.locator(".dask-ClusterListingItem-link").first.inner_text()
    assert address.endswith(f"hpcdask://{name}")
    page.wait_for_function(
        """() => [...document.querySelectorAll('.dask-ClusterListingItem-stats')]
            .some(e => /Workers:\\s*1/.test(e.textContent))""",
        timeout=120_000,
    )
    # the cluster's dashboard, through the server's proxy, offers the jobs pane
    page.locator(".dask-ClusterListingItem").first.click()
    button = page.locator(".dask-DashboardListing-item button[value='Hpc Jobs']")
    button.wait_for(timeout=60_000)
    assert not button.is_disabled()
    button.click()
    iframe = page.wait_for_selector(
        "iframe[src*='individual-hpc-jobs']", timeout=60_000
    )
    assert iframe is not None
    frame = iframe.content_frame()
    assert frame is not None
    frame.wait_for_function(PANE_READY, timeout=60_000)
    shown = frame.evaluate(READ_PANE)
    with urllib.request.urlopen(f"{base}/dask/clusters", timeout=10) as response:
        (model,) = json.load(response)
    assert model["workers"] == 1
    queued = set(new_jobs())
    assert len(shown["job_id"]) == 1 and set(shown["job_id"]) < queued
    assert shown["state"] == ["running"]
    assert "1 running, 0 pending, 0 failed" in shown["summary"]
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "lab-dask-sidebar.png"))
    assert errors == []
