"""What a notebook shows for a cluster: a snapshot, its HTML, a live widget.

:func:`cluster_view` copies what the cluster knows into a frozen
:class:`ClusterView` (no I/O, no waiting: it reads memory the cluster's event loop
keeps up to date); :func:`render_html` turns a view into the cluster's notebook
repr, a pure function tested without a cluster. :func:`cluster_widget` is the live
ipywidgets view: the cluster's event loop re-renders it periodically, so the
kernel is never blocked. The dashboard page (:mod:`hpcdask.dashboard`) reads the
same views.
"""

from __future__ import annotations

import html
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import dask.config

from hpcdask.cost import Usage, job_resources, measure_usage
from hpcdask.models import JobRecord, JobState

if TYPE_CHECKING:
    from hpcdask.cluster import HPCCluster

__all__ = [
    "ClusterView",
    "JobRow",
    "cluster_view",
    "cluster_widget",
    "hpc_page_link",
    "proxied_dashboard_link",
    "render_html",
]

#: how job states are grouped for people.
PENDING_STATES = frozenset({JobState.SUBMITTING, JobState.PENDING, JobState.HELD})
RUNNING_STATES = frozenset({JobState.RUNNING, JobState.COMPLETING})
FAILED_STATES = frozenset({JobState.FAILED, JobState.TIMEOUT, JobState.NODE_FAIL})

#: the dashboard page's path, next to the dashboard's own ``status`` page.
HPC_PAGE = "hpc"
DEFAULT_DASHBOARD_LINK = "{scheme}://{host}:{port}/status"
JUPYTER_PROXY_LINK = "{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status"

#: at most this many jobs are listed in the repr (live ones first).
MAX_JOB_ROWS = 20


@dataclass(frozen=True)
class JobRow:
    """One job as the repr and the dashboard list it."""

    job_id: str
    name: str
    state: JobState
    reason: str
    node: str
    workers: int
    age: float | None  # seconds since submission
    walltime_left: float | None

    @classmethod
    def of(cls, record: JobRecord, now: float) -> JobRow:
        return cls(
            job_id=record.job_id,
            name=record.name,
            state=record.state,
            reason=record.reason,
            node=record.node,
            workers=len(record.workers),
            age=None if record.submit_time is None else now - record.submit_time,
            walltime_left=record.walltime_left(now),
        )


@dataclass(frozen=True)
class ClusterView:
    """A copy of what a cluster knows at one moment; plain data."""

    now: float
    cluster_type: str
    name: str
    system: str
    queue: str | None
    account: str | None
    cores_per_job: int
    memory_per_job: int
    processes_per_job: int
    walltime: int
    jobs: tuple[JobRow, ...]
    workers_connected: int
    threads_connected: int
    memory_connected: int
    workers_planned: int
    usage: Usage
    adaptive_minimum: float | None = None
    adaptive_maximum: float | None = None
    dashboard_link: str = ""
    failures: tuple[str, ...] = ()
    controller_error: str = ""
    counts: Mapping[JobState, int] = field(default_factory=dict)

    @property
    def pending(self) -> int:
        return sum(n for s, n in self.counts.items() if s in PENDING_STATES)

    @property
    def running(self) -> int:
        return sum(n for s, n in self.counts.items() if s in RUNNING_STATES)

    @property
    def failed(self) -> int:
        return sum(n for s, n in self.counts.items() if s in FAILED_STATES)

    @property
    def pending_reasons(self) -> Counter[str]:
        """Why pending jobs wait, as the queue says (``Resources``, ``Priority``)."""
        return Counter(
            row.reason or "no reason given"
            for row in self.jobs
            if row.state in PENDING_STATES
        )

    @property
    def oldest_running(self) -> JobRow | None:
        """The running job with the least walltime left (the oldest one)."""
        running = [
            r
            for r in self.jobs
            if r.state in RUNNING_STATES and r.walltime_left is not None
        ]
        return min(running, key=lambda r: r.walltime_left or 0.0, default=None)

    @property
    def adaptive(self) -> bool:
        return self.adaptive_maximum is not None


_T = TypeVar("_T")


def _copy(read: Callable[[], _T]) -> _T:
    """Run ``read``, again if the event loop's thread changed a dict under it."""
    for _ in range(5):
        try:
            return read()
        except RuntimeError:  # "dictionary changed size during iteration"
            continue
    return read()


def cluster_view(cluster: HPCCluster, now: float | None = None) -> ClusterView:
    """Copy the state of ``cluster`` into a :class:`ClusterView`.

    Safe from any thread: it only reads (copies of) memory, never waits on the
    cluster's event loop or the queue.
    """
    now = time.time() if now is None else now
    opts = cluster.job_options
    records = _copy(lambda: list(cluster.table.records.values()))
    info = _copy(lambda: dict(cluster.scheduler_info.get("workers", {})))
    workers = list(info.values())
    adaptive = getattr(cluster, "_adaptive", None)
    minimum = getattr(adaptive, "minimum", None) if adaptive is not None else None
    maximum = getattr(adaptive, "maximum", None) if adaptive is not None else None
    try:
        link = cluster.dashboard_link
    except Exception:  # a bad distributed.dashboard.link template
        link = ""
    return ClusterView(
        now=now,
        cluster_type=type(cluster).__name__,
        name=str(cluster.name),
        system=opts.system,
        queue=opts.queue,
        account=opts.account,
        cores_per_job=opts.cores,
        memory_per_job=opts.memory,
        processes_per_job=opts.processes,
        walltime=opts.walltime,
        jobs=tuple(JobRow.of(r, now) for r in records),
        workers_connected=len(workers),
        threads_connected=sum(int(w.get("nthreads", 0)) for w in workers),
        memory_connected=sum(int(w.get("memory_limit") or 0) for w in workers),
        workers_planned=_copy(lambda: len(cluster.plan)),
        usage=measure_usage(records, job_resources(opts, cluster.backend.system), now),
        adaptive_minimum=None if minimum is None else float(minimum),
        adaptive_maximum=None if maximum is None else float(maximum),
        dashboard_link=link,
        failures=tuple(str(f).splitlines()[0] for f in cluster.failures),
        controller_error=cluster.table.controller_error,
        counts=Counter(r.state for r in records),
    )


# -- links -----------------------------------------------------------------------


def proxied_dashboard_link(
    host: str, port: int, template: str, environ: Mapping[str, str], scheme: str
) -> str:
    """The dashboard link for ``template`` (``distributed.dashboard.link``).

    In a JupyterHub session (``JUPYTERHUB_SERVICE_PREFIX`` set) the scheduler's
    port is rarely reachable from the user's browser, so the untouched default
    template is replaced by jupyter-server-proxy's ``{prefix}proxy/{port}/status``;
    any template a user or site configured is used as it is.
    """
    if template == DEFAULT_DASHBOARD_LINK and environ.get("JUPYTERHUB_SERVICE_PREFIX"):
        template = JUPYTER_PROXY_LINK
    return template.format(**{**environ, "scheme": scheme, "host": host, "port": port})


def dashboard_link_for(host: str, port: int) -> str:
    """:func:`proxied_dashboard_link` with this process's config and environment."""
    scheme = (
        "https"
        if dask.config.get("distributed.scheduler.dashboard.tls.cert")
        else "http"
    )
    template = str(dask.config.get("distributed.dashboard.link"))
    return proxied_dashboard_link(host, port, template, os.environ, scheme)


def hpc_page_link(dashboard_link: str) -> str:
    """The hpcdask page beside the dashboard's ``status`` page."""
    if not dashboard_link:
        return ""
    base, sep, last = dashboard_link.rstrip("/").rpartition("/")
    if sep and last == "status":
        return f"{base}/{HPC_PAGE}"
    return dashboard_link.rstrip("/") + "/" + HPC_PAGE


# -- formatting ------------------------------------------------------------------


def format_duration(seconds: float | None) -> str:
    """``HH:MM:SS`` (hours may pass 24), or ``-`` when unknown."""
    if seconds is None or math.isnan(seconds):
        return "-"
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def format_bytes(size: int) -> str:
    """A memory size the way it was probably given: "4 GB", "16 GiB", "1.50 GiB"."""
    for unit, factor in (("TB", 10**12), ("TiB", 2**40), ("GB", 10**9), ("GiB", 2**30)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if size >= factor:
            return f"{size / factor:.2f} {unit}"
    return f"{size} B"


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def format_count(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:g}"


def describe_jobs(view: ClusterView) -> str:
    """Counts by state in plain text: "2 running, 1 pending (Resources), 0 failed"."""
    parts = [f"{view.running} running"]
    pending = f"{view.pending} pending"
    reasons = [
        reason if n == 1 else f"{reason}: {n}"
        for reason, n in view.pending_reasons.most_common()
    ]
    if reasons:
        pending += f" ({', '.join(reasons)})"
    parts.append(pending)
    parts.append(f"{view.failed} failed")
    ended = sum(
        n for s, n in view.counts.items() if s.is_terminal and s not in FAILED_STATES
    )
    if ended:
        parts.append(f"{ended} ended")
    return ", ".join(parts)


def describe_scaling(view: ClusterView) -> str:
    if view.adaptive_maximum is not None:
        low = format_count(view.adaptive_minimum or 0.0)
        return (
            f"adaptive {low} to {format_count(view.adaptive_maximum)} workers, "
            f"target {view.workers_planned}"
        )
    return f"manual, {view.workers_planned} workers planned"


def describe_walltime(view: ClusterView) -> str:
    oldest = view.oldest_running
    if oldest is None:
        return f"no job running (walltime {format_duration(view.walltime)})"
    return (
        f"{format_duration(oldest.walltime_left)} for the oldest running job "
        f"({oldest.job_id}) of {format_duration(view.walltime)}"
    )


# -- HTML ------------------------------------------------------------------------

_STATE_COLOURS = {
    "pending": "#e69f00",
    "running": "#009e73",
    "failed": "#d55e00",
    "ended": "#777777",
}


def state_group(state: JobState) -> str:
    if state in PENDING_STATES:
        return "pending"
    if state in RUNNING_STATES:
        return "running"
    if state in FAILED_STATES:
        return "failed"
    return "ended"


def _rows_to_show(jobs: Sequence[JobRow]) -> list[JobRow]:
    live = [j for j in jobs if not j.state.is_terminal]
    ended = [j for j in jobs if j.state.is_terminal]
    return (live + ended[::-1])[:MAX_JOB_ROWS]


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
            "age",
            "walltime left",
        )
    )
    body = []
    for job in _rows_to_show(view.jobs):
        colour = _STATE_COLOURS[state_group(job.state)]
        cells = [
            html.escape(job.job_id or "-"),
            html.escape(job.name),
            f"<span style='color:{colour};font-weight:bold'>"
            f"{html.escape(job.state.value)}</span>",
            html.escape(job.reason),
            str(job.workers),
            html.escape(job.node),
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


def render_html(view: ClusterView) -> str:
    """The notebook repr of a cluster, from a :class:`ClusterView` only."""
    e = html.escape
    where = e(view.system)
    if view.queue:
        where += f", queue <code>{e(view.queue)}</code>"
    if view.account:
        where += f", account <code>{e(view.account)}</code>"
    per_job = (
        f"{plural(view.cores_per_job, 'core')}, {format_bytes(view.memory_per_job)}, "
        f"{view.processes_per_job} worker "
        f"{'process' if view.processes_per_job == 1 else 'processes'}, "
        f"walltime {format_duration(view.walltime)}"
    )
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
    if view.dashboard_link:
        link = e(view.dashboard_link, quote=True)
        page = e(hpc_page_link(view.dashboard_link), quote=True)
        dashboard = (
            f"<a href='{link}' target='_blank'>{e(view.dashboard_link)}</a>"
            f" · <a href='{page}' target='_blank'>jobs page</a>"
        )
    else:
        dashboard = "not available"
    rows = [
        ("Batch system", where),
        ("Jobs", e(describe_jobs(view))),
        ("Workers", workers),
        ("Each job", per_job),
        ("Walltime left", e(describe_walltime(view))),
        ("Charged", charged),
        ("Scaling", e(describe_scaling(view))),
        ("Dashboard", dashboard),
    ]
    if view.controller_error:
        rows.append(("Queue", f"<b>not answering</b>: {e(view.controller_error)}"))
    if view.failures:
        rows.append(
            (
                "Failed starts",
                f"{len(view.failures)}; last: {e(view.failures[-1])}",
            )
        )
    table = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{k}</th>"
        f"<td style='text-align:left'>{v}</td></tr>"
        for k, v in rows
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


def cluster_widget(cluster: HPCCluster) -> Any:
    """An ipywidgets view of ``cluster`` that its event loop keeps current.

    Returns ``None`` when ipywidgets is not installed. The update runs as a
    periodic callback on the cluster's event loop (every
    ``distributed.deploy.cluster-repr-interval``), never in the kernel's thread.
    """
    try:
        from ipywidgets import HTML
    except ImportError:
        return None
    from dask.utils import parse_timedelta
    from tornado.ioloop import PeriodicCallback

    widget = HTML(render_html(cluster_view(cluster)))

    def update() -> None:
        widget.value = render_html(cluster_view(cluster))

    interval = parse_timedelta(
        dask.config.get("distributed.deploy.cluster-repr-interval", default="500ms"),
        default="ms",
    )

    def install() -> None:
        callback = PeriodicCallback(update, float(interval or 0.5) * 1000)
        cluster.periodic_callbacks["hpcdask-repr"] = callback
        callback.start()

    loop = cluster.loop
    if loop is not None:
        loop.add_callback(install)
    return widget
