"""The dashboard page's data: samples, bounded history, columns. No server runs."""

from __future__ import annotations

import math
import time

import pytest

from hpcdask.cost import Usage
from hpcdask.models import JobState, JobStatus
from hpcdask.page import (
    SERIES,
    TABLE,
    History,
    Sample,
    sample_of,
    series_columns,
    summary_html,
    table_columns,
)
from hpcdask.view import ClusterView, JobRow

NOW = 1_800_000_000.0


def make_view(**kwargs: object) -> ClusterView:
    jobs = (
        JobRow("7", "w-0", JobStatus(JobState.RUNNING, node="n1"), 2, 120.0, 500.0),
        JobRow("8", "w-1", JobStatus(JobState.PENDING, "Priority"), 0, 30.0, None),
        JobRow("6", "w-9", JobStatus(JobState.CANCELLED, node="n1"), 0, 900.0, 0.0),
    )
    values: dict[str, object] = {
        "now": NOW,
        "cluster_type": "SLURMCluster",
        "name": "w",
        "system": "slurm",
        "queue": "debug",
        "account": None,
        "cores_per_job": 2,
        "memory_per_job": 4 * 10**9,
        "processes_per_job": 2,
        "walltime": 600,
        "jobs": jobs,
        "workers_connected": 2,
        "threads_connected": 2,
        "memory_connected": 4 * 10**9,
        "workers_planned": 4,
        "usage": Usage(0.25, 0.125, 0.0, 2, 1, 0),
        "counts": {JobState.RUNNING: 1, JobState.PENDING: 1, JobState.CANCELLED: 1},
    }
    values.update(kwargs)
    return ClusterView(**values)  # type: ignore[arg-type]


def sample(t: float, running: int = 1) -> Sample:
    return Sample(t, 0, running, 0, running, running, math.nan, math.nan, t / 3600, 1)


def test_sample_of_a_view() -> None:
    s = sample_of(make_view(adaptive_minimum=1.0, adaptive_maximum=math.inf))
    assert (s.time, s.pending, s.running, s.failed) == (NOW, 1, 1, 0)
    assert (s.workers, s.planned, s.minimum) == (2, 4, 1.0)
    assert math.isnan(s.maximum)  # no point plotting an unbounded maximum
    assert (s.core_hours, s.burn_rate) == (0.25, 2.0)
    manual = sample_of(make_view())
    assert math.isnan(manual.minimum) and math.isnan(manual.maximum)


def test_history_is_bounded_and_keeps_recent_samples_whole() -> None:
    history = History(limit=100)
    for i in range(1000):
        history.append(sample(float(i)))
    times = [s.time for s in history.samples]
    assert len(times) <= 100
    assert times == sorted(times)
    assert times[0] < 100  # the start of the cluster's life is still there
    assert times[-20:] == [float(i) for i in range(980, 1000)]  # recent: every one
    assert history.generation > 0
    with pytest.raises(ValueError):
        History(limit=2)


def test_series_columns_are_local_wall_clock_milliseconds() -> None:
    columns = series_columns([sample(NOW), sample(NOW + 1, running=3)])
    assert list(columns) == list(SERIES)
    offset = time.localtime(NOW).tm_gmtoff
    assert columns["time"] == [(NOW + offset) * 1000, (NOW + 1 + offset) * 1000]
    assert columns["running"] == [1.0, 3.0]


def test_table_columns_list_live_jobs_first() -> None:
    columns = table_columns(make_view())
    assert list(columns) == list(TABLE)
    assert columns["job_id"] == ["7", "8", "6"]
    assert columns["state"] == ["running", "pending", "cancelled"]
    assert columns["reason"] == ["", "Priority", ""]
    assert columns["left"] == ["00:08:20", "-", "00:00:00"]
    assert columns["age"][0] == "00:02:00"


def test_summary_names_costs_and_escapes() -> None:
    html = summary_html(make_view(controller_error="<b>down</b>"))
    assert "0.250 core-hours, burning 2 core-hours/hour" in html
    assert "1 running, 1 pending (Priority), 0 failed, 1 ended" in html
    assert "&lt;b&gt;down&lt;/b&gt;" in html
