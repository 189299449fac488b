"""The dashboard's ``/hpc`` page: its data and its Bokeh models.

The page plots a :class:`History` of :class:`Sample` points (the cluster once a
second, in bounded memory) and shows the cluster's job table and summary; the
scheduler plugin that serves it is :mod:`hpcdask.dashboard`. The data functions
are pure; Bokeh is imported only when a browser opens the page, and each
session gets its own :class:`HPCPage`.
"""

from __future__ import annotations

import html
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpcdask.format import format_duration
from hpcdask.view import ClusterView, rows_to_show

if TYPE_CHECKING:
    from bokeh.models import ColumnDataSource

__all__ = ["SERIES", "TABLE", "HPCPage", "History", "Sample", "sample_of"]

logger = logging.getLogger(__name__)

#: (column, colour) of each job state plotted over time
_STATE_LINES = (("pending", "#e69f00"), ("running", "#009e73"), ("failed", "#c00000"))
#: (field, title, width) of the job table's columns
_TABLE_COLUMNS = (
    ("job_id", "job id", 80),
    ("name", "name", 140),
    ("state", "state", 80),
    ("reason", "reason", 140),
    ("node", "node", 80),
    ("queue", "queue", 80),
    ("workers", "workers", 60),
    ("age", "age", 80),
    ("left", "walltime left", 90),
    ("why", "why this walltime", 300),
)


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
TABLE = (
    "job_id", "name", "state", "reason", "node", "queue", "workers", "age", "left",
    "why",
)  # fmt: skip


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
        "queue": [j.status.partition for j in rows],
        "workers": [j.workers for j in rows],
        "age": [format_duration(j.age) for j in rows],
        "left": [format_duration(j.walltime_left) for j in rows],
        "why": [j.note for j in rows],
    }


def summary_html(view: ClusterView) -> str:

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
    items += [("Pool", pool.describe()) for pool in view.pools]
    if view.shape_reason:
        items.append(("Job walltime", view.shape_reason))
    if view.controller_error:
        items.append(("Queue not answering", view.controller_error))
    cells = "".join(
        f"<div style='margin-right:2em'><b>{e(k)}</b>: {e(v)}</div>" for k, v in items
    )
    return f"<div style='display:flex;flex-wrap:wrap;font-size:14px'>{cells}</div>"


class HPCPage:
    """The Bokeh models of one session's page and how they are kept current."""

    def __init__(
        self, history: History, view: Callable[[], ClusterView | None]
    ) -> None:
        from bokeh.layouts import column, row
        from bokeh.models import ColumnDataSource, Div

        self.history = history
        self.view = view
        self.generation = -1
        self.seen = 0
        self.series = ColumnDataSource({name: [] for name in SERIES}, name="hpc-series")
        self.table = ColumnDataSource({name: [] for name in TABLE}, name="hpc-table")
        self.header = Div(text="", name="hpc-summary", sizing_mode="stretch_width")
        table = jobs_table(self.table)
        self.root = column(
            self.header,
            row(
                _jobs_figure(self.series),
                _workers_figure(self.series),
                sizing_mode="stretch_width",
            ),
            row(_cost_figure(self.series), table, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
        self.update()

    def update(self) -> None:
        """Stream new samples and refresh the summary and the job table."""
        history = self.history
        if history.generation != self.generation:
            self.series.data = series_columns(history.samples)
            self.generation = history.generation
        elif len(history.samples) > self.seen:
            self.series.stream(series_columns(history.samples[self.seen :]))
        self.seen = len(history.samples)
        try:
            view = self.view()
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


class JobsPane:
    """The job table alone, with its summary: the ``individual-hpc-jobs`` page
    that JupyterLab's Dask sidebar offers as a pane."""

    def __init__(self, view: Callable[[], ClusterView | None]) -> None:
        from bokeh.layouts import column
        from bokeh.models import ColumnDataSource, Div

        self.view = view
        self.table = ColumnDataSource({name: [] for name in TABLE}, name="hpc-table")
        self.header = Div(text="", name="hpc-summary", sizing_mode="stretch_width")
        self.root = column(
            self.header, jobs_table(self.table), sizing_mode="stretch_both"
        )
        self.update()

    def update(self) -> None:
        try:
            view = self.view()
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


def jobs_table(source: ColumnDataSource) -> Any:
    """The job table's Bokeh model, drawing ``source``."""
    from bokeh.models import DataTable, TableColumn

    return DataTable(
        source=source,
        columns=[
            TableColumn(field=f, title=title, width=width)
            for f, title, width in _TABLE_COLUMNS
        ],
        name="hpc-jobs-table",
        height=280,
        sizing_mode="stretch_width",
        index_position=None,
    )


def _time_figure(title: str, y_label: str, name: str, counts: bool = True) -> Any:
    """A figure over wall-clock time, its legend above."""
    from bokeh.models import AdaptiveTicker, Legend
    from bokeh.plotting import figure

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


def _jobs_figure(source: ColumnDataSource) -> Any:
    fig = _time_figure("Jobs by state", "jobs", "hpc-jobs")
    for column_name, colour in _STATE_LINES:
        fig.step(
            "time", column_name, source=source, mode="after", line_width=2,
            color=colour, legend_label=column_name,
        )  # fmt: skip
    return fig


def _workers_figure(source: ColumnDataSource) -> Any:
    fig = _time_figure(
        "Workers against the planned (adaptive) target", "workers", "hpc-workers"
    )
    fig.step(
        "time", "workers", source=source, mode="after", line_width=2,
        color="#0072b2", legend_label="connected",
    )  # fmt: skip
    fig.step(
        "time", "planned", source=source, mode="after", line_width=2,
        color="#000000", line_dash="dashed", legend_label="planned target",
    )  # fmt: skip
    for bound in ("minimum", "maximum"):
        fig.step(
            "time", bound, source=source, mode="after", line_width=1,
            color="#999999", line_dash="dotted", legend_label="adaptive range",
        )  # fmt: skip
    return fig


def _cost_figure(source: ColumnDataSource) -> Any:
    from bokeh.models import NumeralTickFormatter

    fig = _time_figure("Core-hours charged", "core-hours", "hpc-cost", counts=False)
    fig.yaxis.formatter = NumeralTickFormatter(format="0.[000]")
    fig.varea(
        x="time", y1=0, y2="core_hours", source=source, fill_alpha=0.25,
        fill_color="#cc79a7",
    )  # fmt: skip
    fig.line(
        "time", "core_hours", source=source, line_width=2, color="#cc79a7",
        legend_label="core-hours",
    )  # fmt: skip
    return fig
