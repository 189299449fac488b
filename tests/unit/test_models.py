"""A job's status over its life: requeue, suspension, site faults. Pure."""

from __future__ import annotations

from hpcdask.models import SITE_FAULTS, JobRecord, JobState, JobStatus

T0 = 1_800_000_000.0


def running(start: float = T0) -> JobStatus:
    return JobStatus(
        JobState.RUNNING,
        node="n1",
        submit_time=T0 - 60,
        start_time=start,
        time_limit=600,
    )


def test_a_requeued_job_is_queued_again_and_keeps_its_earlier_charge() -> None:
    record = JobRecord("w-0", "7", running(), workers_seen=1, connected_time=T0 + 5)
    # Slurm requeued it after a node failure: pending, no start, no node
    requeued = JobStatus(JobState.PENDING, reason="BeginTime", submit_time=T0 + 300)
    record.observe(requeued, now=T0 + 300)
    assert record.status.start_time is None and record.status.node == ""
    assert (record.requeues, record.earlier_runs) == (1, 300.0)
    assert record.connected_time is None  # its next start-up is timed afresh
    # pending time is not charged; the earlier run stays charged
    assert record.charged_seconds(now=T0 + 900) == 300.0
    record.observe(running(start=T0 + 1000), now=T0 + 1000)
    assert record.charged_seconds(now=T0 + 1100) == 400.0
    assert not record.failed_start


def test_a_status_without_times_keeps_the_known_ones() -> None:
    status = running().updated(JobStatus(JobState.RUNNING))
    assert (status.start_time, status.node, status.time_limit) == (T0, "n1", 600)
    assert running().updated(JobStatus(JobState.UNKNOWN)) == running()


def test_a_suspended_job_has_started() -> None:
    record = JobRecord("w-0", "7", running(), workers_seen=1)
    record.observe(JobStatus(JobState.SUSPENDED, start_time=T0), now=T0 + 60)
    assert record.status.start_time == T0 and record.requeues == 0


def test_site_faults_are_never_failed_starts() -> None:
    for state in SITE_FAULTS:
        assert not JobRecord("w-0", "7", JobStatus(state)).failed_start
    assert JobRecord("w-0", "7", JobStatus(JobState.FAILED)).failed_start
    assert not JobRecord(
        "w-0", "7", JobStatus(JobState.FAILED), cancel_requested=True
    ).failed_start
