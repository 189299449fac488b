"""The notebook's view of a cluster: its HTML repr and a live widget.

Renderers only: what they show is a :class:`~hpcdask.view.ClusterView`, built by
:mod:`hpcdask.view`. :func:`render_html` is a pure function tested without a
cluster; :func:`cluster_widget` is the live ipywidgets view, re-rendered by a
periodic callback on the cluster's event loop, so the kernel is never blocked.
"""

from __future__ import annotations

import html
from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING

from hpcdask.format import format_bytes, format_duration, plural
from hpcdask.models import FAILED, QUEUED, RUNNING, JobState
from hpcdask.view import ClusterView, hpc_page_link, rows_to_show

if TYPE_CHECKING:
    from tornado.ioloop import IOLoop, PeriodicCallback

__all__ = ["MAX_JOB_ROWS", "cluster_widget", "render_html", "render_jobs_table"]

#: at most this many jobs are listed in the repr (live ones first).
MAX_JOB_ROWS = 20


# -- HTML ------------------------------------------------------------------------

_STATE_COLOURS = {
    "pending": "#e69f00",
    "running": "#009e73",
    "failed": "#d55e00",
    "ended": "#777777",
}


def state_group(state: JobState) -> str:
    """How job states are grouped for people: pending, running, failed, ended."""
    for group, states in (
        ("pending", QUEUED),
        ("running", RUNNING),
        ("failed", FAILED),
    ):
        if state in states:
            return group
    return "ended"


def render_jobs_table(view: ClusterView) -> str:
    """The job table (the columns of ``cluster.jobs()``) as HTML."""
    if not view.jobs:
        return "<p>No jobs submitted yet.</p>"
    head = "".join(
        f"<th style='text-align:left'>{h}</th>"
        for h in (
            "job id",
            "name",
            "state",
            "reason",
            "workers",
            "node",
            "queue",
            "age",
            "walltime left",
        )
    )
    body = []
    for job in rows_to_show(view.jobs, MAX_JOB_ROWS):
        colour = _STATE_COLOURS[state_group(job.state)]
        cells = [
            html.escape(job.job_id or "-"),
            html.escape(job.name),
            f"<span style='color:{colour};font-weight:bold'>"
            f"{html.escape(job.state.value)}</span>",
            html.escape(job.status.reason),
            str(job.workers),
            html.escape(job.status.node),
            html.escape(job.status.partition),
            format_duration(job.age),
            format_duration(job.walltime_left),
        ]
        body.append(
            "<tr>"
            + "".join(f"<td style='text-align:left'>{c}</td>" for c in cells)
            + "</tr>"
        )
    more = len(view.jobs) - min(len(view.jobs), MAX_JOB_ROWS)
    note = f"<p>… and {more} more ended jobs (see cluster.jobs())</p>" if more else ""
    return (
        f"<table class='hpcdask-jobs'><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>{note}"
    )


def _summary_rows(view: ClusterView) -> list[tuple[str, str]]:
    """The repr's summary as (heading, HTML) pairs."""
    e = html.escape
    where = e(view.system)
    if view.queue:
        where += f", queue <code>{e(view.queue)}</code>"
    if view.account:
        where += f", account <code>{e(view.account)}</code>"
    per_job = (
        f"{plural(view.cores_per_job, 'core')}, {format_bytes(view.memory_per_job)}, "
        f"{view.processes_per_job} worker "
        f"{'process' if view.processes_per_job == 1 else 'processes'}"
    )
    if view.nodes_per_job > 1:
        per_job = f"{view.nodes_per_job} nodes, each {per_job}"
    per_job += f", walltime {format_duration(view.walltime)}"
    workers = (
        f"{view.workers_connected} connected of {view.workers_planned} planned "
        f"({view.threads_connected} threads, {format_bytes(view.memory_connected)})"
    )
    usage = view.usage
    charged = f"<b>{usage.core_hours:.2f} core-hours</b> ({usage.node_hours:.2f} "
    charged += "node-hours"
    if usage.gpu_hours or usage.gpus_in_use:
        charged += f", {usage.gpu_hours:.2f} GPU-hours"
    charged += f"), burning {usage.burn_rate:g} core-hours/hour"
    rows = [
        ("Batch system", where),
        ("Jobs", e(view.describe_jobs())),
        ("Workers", workers),
        ("Each job", per_job),
        ("Walltime left", e(view.describe_walltime())),
        ("Charged", charged),
        ("Scaling", e(view.describe_scaling())),
        ("Dashboard", _dashboard_links(view.dashboard_link)),
    ]
    if view.pools:
        # the per-job fields are the default pool's: each pool says its own
        rows[3] = ("Pools", "<br>".join(e(p.describe()) for p in view.pools))
    if view.shape_reason:
        rows.append(("Job walltime", e(view.shape_reason)))
    if view.controller_error:
        rows.append(("Queue", f"<b>not answering</b>: {e(view.controller_error)}"))
    if view.failures:
        last = e(view.failures[-1])
        rows.append(("Failed starts", f"{len(view.failures)}; last: {last}"))
    return rows


def _dashboard_links(dashboard_link: str) -> str:
    if not dashboard_link:
        return "not available"
    e = html.escape
    link = e(dashboard_link, quote=True)
    page = e(hpc_page_link(dashboard_link), quote=True)
    return (
        f"<a href='{link}' target='_blank'>{e(dashboard_link)}</a>"
        f" · <a href='{page}' target='_blank'>jobs page</a>"
    )


def render_html(view: ClusterView) -> str:
    """The notebook repr of a cluster, from a :class:`ClusterView` only."""
    e = html.escape
    table = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{k}</th>"
        f"<td style='text-align:left'>{v}</td></tr>"
        for k, v in _summary_rows(view)
    )
    return (
        "<div class='hpcdask-cluster'>"
        f"<h4 style='margin-bottom:0.3em'>{e(view.cluster_type)} "
        f"<code>{e(view.name)}</code></h4>"
        f"<table>{table}</table>"
        f"<details><summary>Jobs ({len(view.jobs)})</summary>"
        f"{render_jobs_table(view)}</details>"
        "</div>"
    )


# -- the live widget ---------------------------------------------------------------


def cluster_widget(
    view: Callable[[], ClusterView],
    loop: IOLoop | None,
    callbacks: MutableMapping[str, PeriodicCallback],
    interval: float,
) -> object:
    """An ipywidgets view of a cluster that its event loop keeps current.

    ``view`` builds the cluster's view; a periodic callback on ``loop`` (kept in
    the cluster's ``callbacks``) re-renders it every ``interval`` seconds,
    never in the kernel's thread. Returns ``None`` when ipywidgets is not
    installed.
    """
    try:
        from ipywidgets import HTML
    except ImportError:
        return None
    from tornado.ioloop import PeriodicCallback

    widget = HTML(render_html(view()))

    def update() -> None:
        widget.value = render_html(view())

    def install() -> None:
        callback = PeriodicCallback(update, interval * 1000)
        callbacks["hpcdask-repr"] = callback
        callback.start()

    if loop is not None:
        loop.add_callback(install)
    return widget
