"""The hpcdask page of the scheduler's Bokeh dashboard (``/hpc``).

:class:`HPCDashboard` is a scheduler plugin the cluster hands its scheduler. When
the scheduler starts it adds the page to the dashboard's own web server (and its
menu) and begins sampling the cluster once a second into a :class:`History`. The
page shows, live: jobs by state over time, workers over time against the planned
(adaptive) target, core-hours charged over time, and the job table.

Everything runs on the scheduler's event loop, which for hpcdask's clusters is the
cluster's own: samples and page updates render the cluster's
:class:`~hpcdask.view.ClusterView` and never wait on the queue. The plugin holds
the cluster's view method weakly, so a dashboard left open keeps no closed
cluster alive.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from distributed.diagnostics.plugin import SchedulerPlugin
from tornado.ioloop import IOLoop, PeriodicCallback

from hpcdask.format import format_duration
from hpcdask.view import HPC_PAGE, ClusterView, rows_to_show

if TYPE_CHECKING:
    from bokeh.document import Document
    from distributed.scheduler import Scheduler

logger = logging.getLogger(__name__)

__all__ = ["HPCDashboard", "History", "Sample", "sample_of"]


@dataclass(frozen=True, slots=True)
class Sample:
    """The cluster at one moment, as the page's time series plot it."""

    time: float
    pending: int
    running: int
    failed: int
    workers: int
    planned: int
    minimum: float  # adaptive range, NaN when not adaptive
    maximum: float
    core_hours: float
    burn_rate: float


def sample_of(view: ClusterView) -> Sample:
    """The time-series point of ``view``."""
    nan = math.nan
    maximum = view.adaptive_maximum
    return Sample(
        time=view.now,
        pending=view.pending,
        running=view.running,
        failed=view.failed,
        workers=view.workers_connected,
        planned=view.workers_planned,
        minimum=nan if view.adaptive_minimum is None else view.adaptive_minimum,
        # an unbounded maximum has no place on a plot
        maximum=nan if maximum is None or math.isinf(maximum) else maximum,
        core_hours=view.usage.core_hours,
        burn_rate=view.usage.burn_rate,
    )


class History:
    """Samples over the cluster's life in bounded memory.

    When more than ``limit`` samples are held, the older half is thinned to every
    other sample, so recent minutes keep full resolution and a day-long cluster
    still fits. ``generation`` counts thinnings: a reader that saw an older
    generation reloads everything instead of appending.
    """

    def __init__(self, limit: int = 4000) -> None:
        if limit < 4:
            raise ValueError("limit must be at least 4")
        self.limit = limit
        self.samples: list[Sample] = []
        self.generation = 0

    def append(self, sample: Sample) -> None:
        self.samples.append(sample)
        if len(self.samples) > self.limit:
            half = len(self.samples) // 2
            self.samples = self.samples[:half:2] + self.samples[half:]
            self.generation += 1


#: columns of the time-series source.
SERIES = (
    "time",
    "pending",
    "running",
    "failed",
    "workers",
    "planned",
    "minimum",
    "maximum",
    "core_hours",
)
#: columns of the job-table source.
TABLE = ("job_id", "name", "state", "reason", "node", "workers", "age", "left")


def series_columns(samples: Sequence[Sample]) -> dict[str, Any]:
    """Column data for Bokeh; times in ms of local wall-clock time (Bokeh's
    datetime axis shows what it gets as UTC)."""
    columns: dict[str, list[float]] = {name: [] for name in SERIES}
    for s in samples:
        offset = time.localtime(s.time).tm_gmtoff
        columns["time"].append((s.time + offset) * 1000.0)
        for name in SERIES[1:]:
            columns[name].append(float(getattr(s, name)))
    return columns


def table_columns(view: ClusterView) -> dict[str, Any]:
    """Column data of the job table: live jobs first, then the latest ended."""
    rows = rows_to_show(view.jobs, 200)
    return {
        "job_id": [j.job_id for j in rows],
        "name": [j.name for j in rows],
        "state": [j.state.value for j in rows],
        "reason": [j.status.reason for j in rows],
        "node": [j.status.node for j in rows],
        "workers": [j.workers for j in rows],
        "age": [format_duration(j.age) for j in rows],
        "left": [format_duration(j.walltime_left) for j in rows],
    }


def summary_html(view: ClusterView) -> str:
    import html

    e = html.escape
    usage = view.usage
    charged = f"{usage.core_hours:.3f} core-hours"
    if usage.gpu_hours or usage.gpus_in_use:
        charged += f", {usage.gpu_hours:.3f} GPU-hours"
    items = [
        ("Cluster", f"{view.cluster_type} {view.name} on {view.system}"),
        ("Queue", view.queue or "default"),
        ("Jobs", view.describe_jobs()),
        ("Workers", f"{view.workers_connected} of {view.workers_planned} planned"),
        ("Scaling", view.describe_scaling()),
        ("Walltime left", view.describe_walltime()),
        ("Charged", f"{charged}, burning {usage.burn_rate:g} core-hours/hour"),
    ]
    if view.controller_error:
        items.append(("Queue not answering", view.controller_error))
    cells = "".join(
        f"<div style='margin-right:2em'><b>{e(k)}</b>: {e(v)}</div>" for k, v in items
    )
    return f"<div style='display:flex;flex-wrap:wrap;font-size:14px'>{cells}</div>"


class HPCDashboard(SchedulerPlugin):
    """Scheduler plugin that serves the ``/hpc`` page for one cluster.

    Parameters
    ----------
    view
        the view of the cluster to show: a bound method (the cluster's
        ``view``), held weakly.
    http_prefix
        the scheduler's ``http_prefix`` (the dashboard's URL prefix).
    interval
        seconds between samples and page updates.
    """

    name = "hpcdask-dashboard"

    def __init__(
        self,
        view: Callable[[], ClusterView],
        http_prefix: str | None = "/",
        interval: float = 1.0,
    ) -> None:
        self._view = weakref.WeakMethod(view)
        self.http_prefix = http_prefix or "/"
        self.interval = interval
        self.history = History()
        self._sampler: PeriodicCallback | None = None
        self.page_registered = False

    async def start(self, scheduler: Scheduler) -> None:
        with contextlib.suppress(ImportError):  # no bokeh: no dashboard at all
            self.page_registered = self._register_page(scheduler)
        self.sample()
        self._sampler = PeriodicCallback(self.sample, self.interval * 1000)
        self._sampler.start()

    async def close(self) -> None:
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None

    def view(self) -> ClusterView | None:
        """The cluster's view now; ``None`` once the cluster is gone."""
        method = self._view()
        return None if method is None else method()

    def sample(self) -> None:
        """Add the cluster's current state to the history."""
        try:
            view = self.view()
        except Exception:  # a half-built or closing cluster
            logger.debug("no sample of the cluster", exc_info=True)
            return
        if view is not None:
            self.history.append(sample_of(view))

    def _register_page(self, scheduler: Scheduler) -> bool:
        from distributed.dashboard.core import BokehApplication
        from distributed.dashboard.scheduler import template_variables

        application = getattr(scheduler, "http_application", None)
        if application is None or not getattr(application, "applications", None):
            return False  # the dashboard is off: nothing to add a page to
        variables = template_variables(scheduler)
        # the menu's list is shared with the dashboard's own pages: "hpc" shows
        # in the menu of every page of this scheduler
        if HPC_PAGE not in variables["pages"]:
            variables["pages"].append(HPC_PAGE)
        bokeh_app = BokehApplication(  # type: ignore[no-untyped-call]
            {f"/{HPC_PAGE}": self.make_document},
            scheduler,
            prefix=self.http_prefix,
            template_variables=variables,
        )
        application.add_application(bokeh_app)
        bokeh_app.initialize(IOLoop.current())
        bokeh_app.start()
        return True

    def make_document(
        self, scheduler: Scheduler, extra: dict[str, Any], doc: Document
    ) -> None:
        """Build one browser session's page (Bokeh calls this per session)."""
        from distributed.dashboard.components.scheduler import BOKEH_THEME, env

        page = HPCPage(self)
        doc.title = "Dask: HPC jobs"
        doc.add_root(page.root)
        doc.template = env.get_template("simple.html")
        doc.template_variables.update(extra)
        doc.theme = BOKEH_THEME
        doc.add_periodic_callback(page.update, round(self.interval * 1000))


class HPCPage:
    """The Bokeh models of one session's page and how they are kept current."""

    def __init__(self, plugin: HPCDashboard) -> None:
        from bokeh.layouts import column, row
        from bokeh.models import (
            AdaptiveTicker,
            ColumnDataSource,
            DataTable,
            Div,
            Legend,
            NumeralTickFormatter,
            TableColumn,
        )
        from bokeh.plotting import figure

        self.plugin = plugin
        self.generation = -1
        self.seen = 0
        self.series = ColumnDataSource({name: [] for name in SERIES}, name="hpc-series")
        self.table = ColumnDataSource({name: [] for name in TABLE}, name="hpc-table")
        self.header = Div(text="", name="hpc-summary", sizing_mode="stretch_width")

        def time_figure(
            title: str, y_label: str, name: str, counts: bool = True
        ) -> Any:
            fig = figure(
                title=title,
                name=name,
                x_axis_type="datetime",
                height=280,
                sizing_mode="stretch_width",
                tools="pan,wheel_zoom,box_zoom,reset",
                toolbar_location="above",
            )
            fig.yaxis.axis_label = y_label
            fig.y_range.start = 0
            fig.y_range.range_padding = 0.15
            if counts:  # whole jobs and workers: no ticks at 0.5
                fig.yaxis.ticker = AdaptiveTicker(min_interval=1, num_minor_ticks=0)
            legend = Legend(orientation="horizontal", location="top_left")
            legend.background_fill_alpha = 0.7
            fig.add_layout(legend, "above")
            return fig

        source = self.series
        jobs = time_figure("Jobs by state", "jobs", "hpc-jobs")
        for column_name, colour in (
            ("pending", "#e69f00"),
            ("running", "#009e73"),
            ("failed", "#c00000"),
        ):
            jobs.step(
                "time",
                column_name,
                source=source,
                mode="after",
                line_width=2,
                color=colour,
                legend_label=column_name,
            )
        workers = time_figure(
            "Workers against the planned (adaptive) target", "workers", "hpc-workers"
        )
        workers.step(
            "time", "workers", source=source, mode="after", line_width=2,
            color="#0072b2", legend_label="connected",
        )  # fmt: skip
        workers.step(
            "time", "planned", source=source, mode="after", line_width=2,
            color="#000000", line_dash="dashed", legend_label="planned target",
        )  # fmt: skip
        for bound in ("minimum", "maximum"):
            workers.step(
                "time", bound, source=source, mode="after", line_width=1,
                color="#999999", line_dash="dotted", legend_label="adaptive range",
            )  # fmt: skip
        cost = time_figure("Core-hours charged", "core-hours", "hpc-cost", False)
        cost.yaxis.formatter = NumeralTickFormatter(format="0.[000]")
        cost.varea(
            x="time", y1=0, y2="core_hours", source=source, fill_alpha=0.25,
            fill_color="#cc79a7",
        )  # fmt: skip
        cost.line(
            "time", "core_hours", source=source, line_width=2, color="#cc79a7",
            legend_label="core-hours",
        )  # fmt: skip
        columns = [
            TableColumn(field="job_id", title="job id", width=80),
            TableColumn(field="name", title="name", width=140),
            TableColumn(field="state", title="state", width=80),
            TableColumn(field="reason", title="reason", width=140),
            TableColumn(field="node", title="node", width=80),
            TableColumn(field="workers", title="workers", width=60),
            TableColumn(field="age", title="age", width=80),
            TableColumn(field="left", title="walltime left", width=90),
        ]
        table = DataTable(
            source=self.table,
            columns=columns,
            name="hpc-jobs-table",
            height=280,
            sizing_mode="stretch_width",
            index_position=None,
        )
        self.root = column(
            self.header,
            row(jobs, workers, sizing_mode="stretch_width"),
            row(cost, table, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
        self.update()

    def update(self) -> None:
        """Stream new samples and refresh the summary and the job table."""
        history = self.plugin.history
        if history.generation != self.generation:
            self.series.data = series_columns(history.samples)
            self.generation = history.generation
        elif len(history.samples) > self.seen:
            self.series.stream(series_columns(history.samples[self.seen :]))
        self.seen = len(history.samples)
        try:
            view = self.plugin.view()
        except Exception:
            logger.debug("no view of the cluster", exc_info=True)
            return
        if view is None:
            self.header.text = "<b>The cluster has closed.</b>"
            return
        self.header.text = summary_html(view)
        data = table_columns(view)
        if data != dict(self.table.data):
            self.table.data = data
