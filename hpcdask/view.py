"""What every display of a cluster shows, built once.

:func:`build_view` turns what a cluster knows into a frozen :class:`ClusterView`
(plain data, no I/O); the notebook repr and widget (:mod:`hpcdask.widget`), the
dashboard's ``/hpc`` page (:mod:`hpcdask.dashboard`), ``cluster.jobs()`` and the
``hpcdask jobs`` command render it. One job is one :class:`JobRow` everywhere;
live jobs are listed first, then the latest ended ones (:func:`rows_to_show`).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from hpcdask.config import dashboard_link_template
from hpcdask.cost import JobResources, Usage, measure_usage
from hpcdask.format import format_count, format_duration
from hpcdask.models import (
    FAILED,
    QUEUED,
    RUNNING,
    JobRecord,
    JobState,
    JobStatus,
    PolicyParams,
)
from hpcdask.options import JobOptions
from hpcdask.poolview import PoolRow

if TYPE_CHECKING:
    import pandas

__all__ = [
    "HPC_JOBS_PANE",
    "HPC_PAGE",
    "ClusterView",
    "JobRow",
    "build_view",
    "copied",
    "dashboard_host",
    "dashboard_link_for",
    "hpc_page_link",
    "jobs_frame",
    "proxied_dashboard_link",
    "rows_to_show",
]

#: the dashboard page's path, next to the dashboard's own ``status`` page.
HPC_PAGE = "hpc"
#: the jobs pane's page: JupyterLab's Dask sidebar offers pages named individual-*
HPC_JOBS_PANE = "individual-hpc-jobs"
DEFAULT_DASHBOARD_LINK = "{scheme}://{host}:{port}/status"
JUPYTER_PROXY_LINK = "{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status"


@dataclass(frozen=True)
class JobRow:
    """One job as every display lists it: its queue status (as shown: while the
    controller does not answer, a live job shows as ``unknown``), its workers,
    and its age and walltime left at the view's time."""

    job_id: str
    name: str
    status: JobStatus
    workers: int = 0
    age: float | None = None  # seconds since submission
    walltime_left: float | None = None
    #: the job's worker pool, in a cluster of several ("" otherwise)
    pool: str = ""
    #: why the job asks for its walltime, when the adaptive policy chose it
    note: str = ""

    @property
    def state(self) -> JobState:
        return self.status.state

    @classmethod
    def of(
        cls,
        job_id: str,
        name: str,
        status: JobStatus,
        now: float,
        workers: int = 0,
        pool: str = "",
        note: str = "",
    ) -> JobRow:
        submitted = status.submit_time
        return cls(
            job_id=job_id,
            name=name,
            status=status,
            workers=workers,
            age=None if submitted is None else now - submitted,
            walltime_left=walltime_left(status, now),
            pool=pool,
            note=note,
        )


def walltime_left(status: JobStatus, now: float) -> float | None:
    """Seconds before the queue ends the job; a job still queued has all of its
    time limit left."""
    left = status.walltime_left(now)
    if left is None and status.state in QUEUED:
        return status.time_limit
    return left


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
    #: nodes of each job; ``cores_per_job``, ``memory_per_job`` and
    #: ``processes_per_job`` are then per node of a job
    nodes_per_job: int = 1
    #: one row per worker pool when the cluster has several (the per-job
    #: fields above are then the default pool's)
    pools: tuple[PoolRow, ...] = ()
    #: why the latest jobs asked for their walltime ("" when not chosen)
    shape_reason: str = ""

    def _count(self, states: frozenset[JobState]) -> int:
        return sum(n for s, n in self.counts.items() if s in states)

    @property
    def pending(self) -> int:
        return self._count(QUEUED)

    @property
    def running(self) -> int:
        return self._count(RUNNING)

    @property
    def failed(self) -> int:
        return self._count(FAILED)

    @property
    def ended(self) -> int:
        """Jobs that ended without failing (completed, cancelled, gone)."""
        return sum(
            n for s, n in self.counts.items() if s.is_terminal and s not in FAILED
        )

    @property
    def pending_reasons(self) -> Counter[str]:
        """Why pending jobs wait, as the queue says (``Resources``, ``Priority``)."""
        return Counter(
            row.status.reason or "no reason given"
            for row in self.jobs
            if row.state in QUEUED
        )

    @property
    def oldest_running(self) -> JobRow | None:
        """The running job with the least walltime left (the oldest one)."""
        running = [
            r for r in self.jobs if r.state in RUNNING and r.walltime_left is not None
        ]
        return min(running, key=lambda r: r.walltime_left or 0.0, default=None)

    @property
    def adaptive(self) -> bool:
        return self.adaptive_maximum is not None

    def describe_jobs(self) -> str:
        """Counts by state: "2 running, 1 pending (Resources), 0 failed"."""
        pending = f"{self.pending} pending"
        reasons = [
            reason if n == 1 else f"{reason}: {n}"
            for reason, n in self.pending_reasons.most_common()
        ]
        if reasons:
            pending += f" ({', '.join(reasons)})"
        parts = [f"{self.running} running", pending, f"{self.failed} failed"]
        if self.ended:
            parts.append(f"{self.ended} ended")
        return ", ".join(parts)

    def describe_scaling(self) -> str:
        if self.adaptive_maximum is not None:
            low = format_count(self.adaptive_minimum or 0.0)
            return (
                f"adaptive {low} to {format_count(self.adaptive_maximum)} workers, "
                f"target {self.workers_planned}"
            )
        return f"manual, {self.workers_planned} workers planned"

    def describe_walltime(self) -> str:
        oldest = self.oldest_running
        if oldest is None:
            return f"no job running (walltime {format_duration(self.walltime)})"
        return (
            f"{format_duration(oldest.walltime_left)} for the oldest running job "
            f"({oldest.job_id}) of {format_duration(self.walltime)}"
        )


def build_view(
    *,
    now: float,
    cluster_type: str,
    name: str,
    opts: JobOptions,
    records: Sequence[JobRecord],
    shown: Callable[[JobRecord], JobStatus] = lambda record: record.status,
    workers: Sequence[Mapping[str, Any]] = (),
    planned: int = 0,
    adaptive: PolicyParams | None = None,
    resources: JobResources,
    dashboard_link: str = "",
    failures: Iterable[Exception] = (),
    controller_error: str = "",
    usage: Usage | None = None,
    pools: Sequence[PoolRow] = (),
    pool_labels: Mapping[str, str] | None = None,
    shape_reason: str = "",
) -> ClusterView:
    """The view of a cluster with ``opts`` whose jobs are ``records`` and whose
    scheduler knows ``workers`` (their ``scheduler_info`` entries). A cluster
    of several pools passes its ``usage``, its ``pools`` and the label of
    each pool key (``pool_labels``) for the jobs' ``pool``."""
    return ClusterView(
        now=now,
        cluster_type=cluster_type,
        name=name,
        system=opts.system,
        queue=opts.queue,
        account=opts.account,
        cores_per_job=opts.cores,
        memory_per_job=opts.memory,
        processes_per_job=opts.processes,
        nodes_per_job=opts.nodes,
        walltime=opts.walltime,
        jobs=_job_rows(records, shown, now, pool_labels or {}),
        workers_connected=len(workers),
        threads_connected=sum(int(w.get("nthreads", 0)) for w in workers),
        memory_connected=sum(int(w.get("memory_limit") or 0) for w in workers),
        workers_planned=planned,
        usage=usage or measure_usage(records, resources, now),
        adaptive_minimum=None if adaptive is None else float(adaptive.minimum_workers),
        adaptive_maximum=None if adaptive is None else float(adaptive.maximum_workers),
        dashboard_link=dashboard_link,
        failures=tuple(str(f).splitlines()[0] for f in failures),
        controller_error=controller_error,
        counts=Counter(r.state for r in records),
        pools=tuple(pools),
        shape_reason=shape_reason,
    )


def _job_rows(
    records: Sequence[JobRecord],
    shown: Callable[[JobRecord], JobStatus],
    now: float,
    labels: Mapping[str, str],
) -> tuple[JobRow, ...]:
    """One row per job: its status as shown, its pool's label (``labels``:
    pool key -> label) and why it asks for its walltime."""
    return tuple(
        JobRow.of(
            r.job_id,
            r.name,
            shown(r),
            now,
            workers=len(r.workers),
            pool=labels.get(r.pool, ""),
            note=r.note,
        )
        for r in records
    )


_T = TypeVar("_T")


def copied(read: Callable[[], _T]) -> _T:
    """Run ``read``, again if the event loop's thread changed a dict under it:
    views are built from any thread and never wait on the event loop."""
    for _ in range(5):
        try:
            return read()
        except RuntimeError:  # "dictionary changed size during iteration"
            continue
    return read()


def rows_to_show(jobs: Sequence[JobRow], limit: int) -> list[JobRow]:
    """Live jobs first, then the latest ended ones; at most ``limit``."""
    live = [j for j in jobs if not j.state.is_terminal]
    ended = [j for j in jobs if j.state.is_terminal]
    return (live + ended[::-1])[:limit]


def jobs_frame(rows: Sequence[JobRow], pools: bool = False) -> pandas.DataFrame:
    """Rows as ``cluster.jobs()`` returns them, newest job last; with a
    ``pool`` column when the cluster has ``pools`` (or a row is of one)."""
    import pandas

    records = [
        {
            "job_id": r.job_id,
            "pool": r.pool,
            "name": r.name,
            "state": r.status.state.value,
            "reason": r.status.reason,
            "workers": r.workers,
            "node": r.status.node,
            "submit_time": r.status.submit_time,
            "start_time": r.status.start_time,
            "end_time": r.status.end_time,
            "walltime_left": r.walltime_left,
            "queue": r.status.partition,
            "walltime": r.status.time_limit,
            "why_walltime": r.note,
        }
        for r in rows
    ]
    pool = ["pool"] if pools or any(r.pool for r in rows) else []
    columns = [
        "job_id", *pool, "name", "state", "reason", "workers", "node",
        "submit_time", "start_time", "end_time", "walltime_left",
        "queue", "walltime", "why_walltime",
    ]  # fmt: skip
    frame: pandas.DataFrame = pandas.DataFrame(records, columns=columns)
    for times in ("submit_time", "start_time", "end_time"):
        frame[times] = pandas.to_datetime(frame[times], unit="s")
    for span in ("walltime_left", "walltime"):  # timedeltas, even when all NaT
        frame[span] = pandas.to_timedelta(frame[span], unit="s").dt.round("s")
    return frame


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
    template, scheme = dashboard_link_template()
    return proxied_dashboard_link(host, port, template, os.environ, scheme)


def dashboard_host(address: str) -> str | None:
    """The host a ``dashboard_address`` listens on; ``None`` for every
    interface (``":8787"``, ``"0.0.0.0:8787"``, ``"[::]:8787"``, ``"8787"``)."""
    host, sep, _ = address.rpartition(":")
    host = host.strip("[]") if sep else ""
    return None if host in ("", "0.0.0.0", "::", "*") else host


def hpc_page_link(dashboard_link: str) -> str:
    """The hpcdask page beside the dashboard's ``status`` page."""
    if not dashboard_link:
        return ""
    base, sep, last = dashboard_link.rstrip("/").rpartition("/")
    if sep and last == "status":
        return f"{base}/{HPC_PAGE}"
    return dashboard_link.rstrip("/") + "/" + HPC_PAGE
