"""The notebook repr from fixed views: content, escaping, links. No cluster runs."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from hpcdask.config import resolve_job_options
from hpcdask.cost import Usage, job_resources
from hpcdask.format import format_bytes, format_duration
from hpcdask.models import JobRecord, JobState, JobStatus, PolicyParams
from hpcdask.systems.slurm import Slurm
from hpcdask.view import (
    ClusterView,
    JobRow,
    build_view,
    hpc_page_link,
    proxied_dashboard_link,
)
from hpcdask.widget import MAX_JOB_ROWS, render_html

NOW = 1_800_000_000.0


def row(
    job_id: str, state: JobState, reason: str = "", node: str = "", **kwargs: Any
) -> JobRow:
    defaults: dict[str, Any] = {
        "name": f"dask-worker-{job_id}",
        "workers": 0,
        "age": 60.0,
        "walltime_left": None,
    }
    defaults.update(kwargs)
    status = JobStatus(state, reason=reason, node=node)
    return JobRow(job_id=job_id, status=status, **defaults)


def view(**kwargs: Any) -> ClusterView:
    jobs = kwargs.pop(
        "jobs",
        (
            row("11", JobState.RUNNING, node="n1", workers=4, walltime_left=1500.0),
            row("12", JobState.RUNNING, node="n2", workers=4, walltime_left=3000.0),
            row("13", JobState.PENDING, reason="Resources"),
            row("14", JobState.PENDING, reason="Priority"),
            row("15", JobState.PENDING, reason="Priority"),
            row("10", JobState.FAILED, reason="NonZeroExitCode"),
        ),
    )
    counts: dict[JobState, int] = {}
    for job in jobs:
        counts[job.state] = counts.get(job.state, 0) + 1
    values: dict[str, Any] = {
        "now": NOW,
        "cluster_type": "SLURMCluster",
        "name": "analysis",
        "system": "slurm",
        "queue": "regular",
        "account": "P12345",
        "cores_per_job": 36,
        "memory_per_job": 109 * 10**9,
        "processes_per_job": 4,
        "walltime": 3600,
        "jobs": jobs,
        "workers_connected": 8,
        "threads_connected": 72,
        "memory_connected": 218 * 10**9,
        "workers_planned": 20,
        "usage": Usage(
            core_hours=12.5,
            node_hours=0.35,
            gpu_hours=0.0,
            cores_in_use=72,
            nodes_in_use=2,
            gpus_in_use=0,
        ),
        "dashboard_link": "http://login1:8787/status",
        "counts": counts,
    }
    values.update(kwargs)
    return ClusterView(**values)


def text_of(html: str) -> str:
    """The visible text of a piece of HTML, whitespace collapsed."""
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    return re.sub(r" ([,;:)])", r"\1", text)


def test_repr_shows_what_the_cluster_does_and_costs() -> None:
    text = text_of(render_html(view()))
    assert "SLURMCluster analysis" in text
    assert "Batch system slurm, queue regular, account P12345" in text
    assert "2 running, 3 pending (Priority: 2, Resources), 1 failed" in text
    assert "8 connected of 20 planned (72 threads, 218 GB)" in text
    assert "36 cores, 109 GB, 4 worker processes, walltime 01:00:00" in text
    # the oldest running job is the one with the least walltime left
    assert "00:25:00 for the oldest running job (11) of 01:00:00" in text
    assert "12.50 core-hours (0.35 node-hours), burning 72 core-hours/hour" in text
    assert "GPU" not in text
    assert "manual, 20 workers planned" in text
    assert "Jobs (6)" in text


def test_repr_links_the_dashboard_and_the_hpc_page() -> None:
    html = render_html(view())
    assert "href='http://login1:8787/status'" in html
    assert "href='http://login1:8787/hpc'" in html
    assert "not available" in render_html(view(dashboard_link=""))


def test_repr_shows_the_adaptive_range_gpus_and_queue_trouble() -> None:
    text = text_of(
        render_html(
            view(
                adaptive_minimum=4.0,
                adaptive_maximum=math.inf,
                usage=Usage(2.0, 1.0, 0.5, 8, 1, 1),
                controller_error="squeue failed: Unable to contact slurm controller",
                failures=("job 10 ended (failed) before its workers connected",),
            )
        )
    )
    assert "adaptive 4 to ∞ workers, target 20" in text
    assert "0.50 GPU-hours" in text
    assert "not answering: squeue failed: Unable to contact slurm controller" in text
    assert "Failed starts 1; last: job 10 ended (failed)" in text


def test_repr_job_table_lists_live_jobs_first_and_escapes_queue_text() -> None:
    ended = [row(str(i), JobState.COMPLETED, walltime_left=0.0) for i in range(30)]
    live = row("99", JobState.PENDING, reason="<script>alert(1)</script>")
    jobs = (*ended, live)
    html = render_html(view(jobs=jobs))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    body = html.split("<tbody>")[1]
    ids = re.findall(r"<tr><td style='text-align:left'>([^<]+)</td>", body)
    assert len(ids) == MAX_JOB_ROWS
    assert ids[0] == "99"  # the live job first, then the latest ended ones
    assert ids[1:4] == ["29", "28", "27"]
    assert "and 11 more ended jobs" in html


def test_repr_without_jobs_or_running_jobs() -> None:
    text = text_of(render_html(view(jobs=(), workers_connected=0)))
    assert "No jobs submitted yet." in text
    assert "no job running (walltime 01:00:00)" in text
    assert "0 running, 0 pending, 0 failed" in text


def test_build_view_copies_the_cluster_state() -> None:
    opts = resolve_job_options("slurm", cores=2, memory="4GB", queue="debug")
    running = JobStatus(
        JobState.RUNNING,
        submit_time=NOW - 600,
        start_time=NOW - 540,
        time_limit=1800.0,
    )
    records = [
        JobRecord("w-0", "5", running, workers={"w-0-0", "w-0-1"}),
        JobRecord("w-1", "6", JobStatus(JobState.PENDING, reason="Resources")),
    ]
    worker = {"nthreads": 1, "memory_limit": 2 * 10**9}
    v = build_view(
        now=NOW,
        cluster_type="SLURMCluster",
        name="w",
        opts=opts,
        records=records,
        workers=[worker, worker],
        planned=4,
        adaptive=PolicyParams(minimum_jobs=0, maximum_jobs=4, workers_per_job=2),
        resources=job_resources(opts, Slurm()),
        dashboard_link="http://h:1/status",
    )
    assert (v.running, v.pending, v.failed) == (1, 1, 0)
    assert (v.workers_connected, v.threads_connected) == (2, 2)
    assert v.memory_connected == 4 * 10**9
    assert v.workers_planned == 4
    assert (v.adaptive_minimum, v.adaptive_maximum) == (0.0, 8.0)
    assert v.usage.core_hours == pytest.approx(2 * 540 / 3600)
    assert v.usage.cores_in_use == 2
    assert v.oldest_running is not None
    assert v.oldest_running.walltime_left == pytest.approx(1800 - 540)
    assert v.jobs[0].workers == 2 and v.jobs[0].age == pytest.approx(600)
    # a later change of the cluster does not change the view
    records[1].status = running
    assert v.pending == 1


@pytest.mark.parametrize(
    ("template", "environ", "expected"),
    [
        ("{scheme}://{host}:{port}/status", {}, "http://10.0.0.5:8787/status"),
        # in a JupyterHub session the default goes through jupyter-server-proxy
        (
            "{scheme}://{host}:{port}/status",
            {"JUPYTERHUB_SERVICE_PREFIX": "/user/ana/"},
            "/user/ana/proxy/8787/status",
        ),
        # a configured template is used as it is, environment variables filled in
        (
            "https://hub.example.org{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status",
            {"JUPYTERHUB_SERVICE_PREFIX": "/user/ana/"},
            "https://hub.example.org/user/ana/proxy/8787/status",
        ),
        (
            "{scheme}://{host}:{port}/status",
            {"HOME": "/root"},
            "http://10.0.0.5:8787/status",
        ),
    ],
)
def test_dashboard_link(template: str, environ: dict[str, str], expected: str) -> None:
    link = proxied_dashboard_link("10.0.0.5", 8787, template, environ, "http")
    assert link == expected


def test_cluster_dashboard_link_reads_distributed_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dask.config

    from hpcdask.view import dashboard_link_for

    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/bo/")
    assert dashboard_link_for("h", 1234) == "/user/bo/proxy/1234/status"
    with dask.config.set({"distributed.dashboard.link": "http://{host}:{port}/x"}):
        assert dashboard_link_for("h", 1234) == "http://h:1234/x"


@pytest.mark.parametrize(
    ("link", "page"),
    [
        ("http://h:8787/status", "http://h:8787/hpc"),
        ("/user/ana/proxy/8787/status", "/user/ana/proxy/8787/hpc"),
        ("http://h:8787/", "http://h:8787/hpc"),
        ("", ""),
    ],
)
def test_hpc_page_link(link: str, page: str) -> None:
    assert hpc_page_link(link) == page


def test_formatting() -> None:
    assert format_duration(None) == "-"
    assert format_duration(90061.4) == "25:01:01"
    assert format_bytes(4 * 10**9) == "4 GB"
    assert format_bytes(16 * 2**30) == "16 GiB"
    assert format_bytes(1536 * 2**20) == "1.50 GiB"
