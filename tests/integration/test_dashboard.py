"""The /hpc dashboard page in a real headless Chromium while a real SLURMCluster runs.

Debian's /usr/bin/chromium (ci/browser-up.sh) is driven through Playwright's Python
package; Playwright downloads nothing. The page's data is read from the Bokeh
document in the browser (what the plots draw), and a screenshot is kept in
tests/artifacts/.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from distributed import Client
from playwright.sync_api import BrowserContext, Page, sync_playwright

from hpcdask import SLURMCluster
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.usefixtures("new_jobs")

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: the page's data as the browser holds it (Bokeh's document models).
READ_PAGE = """() => {
    const doc = Bokeh.documents[0];
    const series = doc.get_model_by_name('hpc-series').data;
    const table = doc.get_model_by_name('hpc-table').data;
    const column = (data, name) => Array.from(data[name]);
    const out = {summary: doc.get_model_by_name('hpc-summary').text};
    for (const name of ['time', 'pending', 'running', 'failed', 'workers', 'planned',
                        'core_hours']) {
        out[name] = column(series, name);
    }
    for (const name of ['job_id', 'state', 'node', 'left']) {
        out['table_' + name] = column(table, name);
    }
    return out;
}"""

PAGE_READY = """(samples) => window.Bokeh !== undefined && Bokeh.documents.length > 0
    && Bokeh.documents[0].get_model_by_name('hpc-series') !== null
    && Bokeh.documents[0].get_model_by_name('hpc-series').get_length() >= samples"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    """Debian's Chromium, headless, with a fresh profile directory."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()


def read_page(page: Page) -> dict[str, Any]:
    data: dict[str, Any] = page.evaluate(READ_PAGE)
    return data


def test_hpc_page_shows_live_jobs_workers_and_cost(browser: BrowserContext) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with (
        SLURMCluster(
            cores=1, memory="1GB", walltime="00:10:00", name="dash"
        ) as cluster,
        Client(cluster) as client,
    ):
        cluster.scale(2)
        client.wait_for_workers(2, timeout=60)
        # the queue's own start times are in (a poll ran after the workers came)
        wait_for(lambda: all(cluster.jobs()["node"] != ""))
        # and the page's history has sampled the workers (the cluster hears of
        # them a moment after the scheduler does; slower with TLS under load)
        history = cluster._dashboard.history
        wait_for(lambda: history.samples[-1].workers == 2, 10, "a sample of 2 workers")
        job_ids = sorted(cluster.jobs()["job_id"])

        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(cluster.hpc_dashboard_link)
        page.wait_for_function(PAGE_READY, arg=3, timeout=30_000)
        first = read_page(page)

        # the history starts before the jobs ran: 0 running, then 2
        assert first["running"][0] == 0 and max(first["running"]) == 2
        assert max(first["workers"]) == 2 and max(first["planned"]) == 2
        assert first["failed"] == [0] * len(first["failed"])
        assert first["core_hours"][-1] > 0
        assert first["core_hours"] == sorted(first["core_hours"])
        # the job table lists the cluster's jobs as the queue reports them
        assert sorted(first["table_job_id"]) == job_ids
        assert set(first["table_state"]) == {"running"}
        assert all(node for node in first["table_node"])
        assert "2 running, 0 pending, 0 failed" in first["summary"]
        assert "core-hours" in first["summary"]
        # the three plots drew (Playwright's locators see into Bokeh's shadow DOM)
        assert page.locator("canvas").count() >= 3

        # live: new samples arrive without reloading, and the charge grows
        n = len(first["time"])
        page.wait_for_function(PAGE_READY, arg=n + 2, timeout=15_000)
        later = read_page(page)
        assert later["time"][: n - 1] == first["time"][: n - 1]
        assert later["core_hours"][-1] > first["core_hours"][-1]

        # the notebook's live widget: the cluster's event loop re-renders it
        widget = cluster._widget()
        assert "2 running, 0 pending, 0 failed" in widget.value

        # scaling up shows in the plots while the page is open
        cluster.scale(3)
        client.wait_for_workers(3, timeout=60)
        page.wait_for_function(
            """() => Math.max(...Bokeh.documents[0].get_model_by_name('hpc-series')
                .data.running) === 3""",
            timeout=30_000,
        )
        # ... and in the widget, with nobody asking it to update
        wait_for(lambda: "3 running, 0 pending, 0 failed" in widget.value)
        page.wait_for_timeout(1500)  # let the canvases repaint before the picture
        page.screenshot(path=str(ARTIFACTS / "dashboard-hpc.png"), full_page=True)
        assert errors == []

        # the dashboard's own pages link to it from their menu
        status = browser.new_page()
        status.goto(cluster.dashboard_link)
        status.wait_for_selector("a[href='hpc']", timeout=15_000)
        status.click("a[href='hpc']")
        status.wait_for_function(PAGE_READY, arg=1, timeout=30_000)
        assert status.url == cluster.hpc_dashboard_link


@pytest.fixture
def jupyter_server(tmp_path: Path) -> Iterator[str]:
    """A real Jupyter server with jupyter-server-proxy under a JupyterHub-style
    prefix (no token: it listens on 127.0.0.1 only). Yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = tmp_path / "jupyter"
    home.mkdir()
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(home),
        "JUPYTER_CONFIG_DIR": str(home),
        "JUPYTER_DATA_DIR": str(home),
    }
    server = subprocess.Popen(
        [
            sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root",
            "--ip=127.0.0.1", f"--port={port}", f"--ServerApp.base_url={PREFIX}",
            "--IdentityProvider.token=", "--ServerApp.password=",
            f"--ServerApp.root_dir={home}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"{base}{PREFIX}api/status", timeout=2):
                    return True
            except OSError:
                return server.poll() is not None  # died: fail below, not wait

        wait_for(answers, timeout=60)
        assert server.poll() is None, "the Jupyter server did not start"
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


PREFIX = "/user/ana/"


def test_hpc_page_through_jupyter_server_proxy(
    browser: BrowserContext, jupyter_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as in a JupyterHub session: the link goes through the notebook server
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", PREFIX)
    with (
        SLURMCluster(cores=1, memory="1GB", walltime="00:10:00") as cluster,
        Client(cluster) as client,
    ):
        port = cluster.scheduler_info["services"]["dashboard"]
        assert cluster.dashboard_link == f"{PREFIX}proxy/{port}/status"
        assert cluster.hpc_dashboard_link == f"{PREFIX}proxy/{port}/hpc"
        cluster.scale(1)
        client.wait_for_workers(1, timeout=60)

        page = browser.new_page()
        page.goto(jupyter_server + cluster.hpc_dashboard_link)
        # the page's scripts and its websocket come through the proxy too
        page.wait_for_function(PAGE_READY, arg=2, timeout=30_000)
        n = read_page(page)["time"]
        page.wait_for_function(PAGE_READY, arg=len(n) + 2, timeout=15_000)
        data = read_page(page)
        assert max(data["running"]) == 1
        assert data["table_job_id"] == list(cluster.jobs()["job_id"])
        assert page.url == jupyter_server + cluster.hpc_dashboard_link
