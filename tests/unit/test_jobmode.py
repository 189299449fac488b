"""Scheduler-job clusters, the pure parts: options, the idle clock, stale
registry entries, the scheduler job's script, the registry's files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from distributed.security import Security

from hpcdask.config import resolve_job_options
from hpcdask.errors import InvalidOptionError
from hpcdask.idle import IdleClock
from hpcdask.jobmode import (
    check_cluster_name,
    resolve_scheduler_in,
    resolve_scheduler_job,
    scheduler_job_options,
)
from hpcdask.lookup import UNSUBMITTED_GRACE, stale_entries
from hpcdask.models import JobState, JobStatus
from hpcdask.registry import (
    Entry,
    entry_security,
    list_entries,
    new_entry,
    read_entry,
    write_credentials,
    write_json,
)
from hpcdask.script import render_scheduler_script
from hpcdask.systems.slurm import Slurm


def test_the_scheduler_stays_here_unless_asked() -> None:
    assert resolve_scheduler_in(None, None) == "here"
    assert resolve_scheduler_in(None, "job") == "job"
    assert resolve_scheduler_in("here", "job") == "here"
    with pytest.raises(InvalidOptionError, match=r"scheduler_in.*expected one of"):
        resolve_scheduler_in("notebook", None)
    with pytest.raises(InvalidOptionError, match=r"hpcdask\.scheduler-in"):
        resolve_scheduler_in(None, "jobs")


def test_scheduler_job_options_argument_over_config_over_defaults() -> None:
    job = resolve_scheduler_job(
        {"memory": "2GB", "idle-timeout": "90s"},
        {"memory": "8GB", "queue": "long", "walltime": "02:00:00"},
    )
    assert job.memory == 2 * 10**9 and job.queue == "long"
    assert job.walltime == 7200 and job.idle_timeout == 90
    assert job.cores == 1 and job.start_timeout == 600
    assert resolve_scheduler_job(None, {}).idle_timeout == 30 * 60


@pytest.mark.parametrize(
    ("given", "match"),
    [
        ({"queu": "x"}, "scheduler_job.queu.*unknown scheduler job option"),
        ({"queue": "a;rm -rf"}, "scheduler_job.queue"),
        ({"idle_timeout": "soon"}, "scheduler_job.idle_timeout"),
        ({"cores": 0}, "scheduler_job.cores"),
        ({"job_extra_directives": ["--x\n#SBATCH --y"]}, "job_extra_directives"),
    ],
)
def test_bad_scheduler_job_options_name_what_was_wrong(
    given: dict[str, object], match: str
) -> None:
    with pytest.raises(InvalidOptionError, match=match):
        resolve_scheduler_job(given, {})


@pytest.mark.parametrize("name", ["../x", "a b", "", "-x", "x" * 64, "a/b", 3])
def test_cluster_names_are_plain(name: object) -> None:
    with pytest.raises(InvalidOptionError, match="cluster_name"):
        check_cluster_name(name)


def test_the_idle_clock_counts_from_the_last_busy_moment() -> None:
    clock = IdleClock(timeout=10)
    assert not clock.observe(clients=1, busy=False, now=0)
    assert not clock.observe(clients=0, busy=False, now=5)  # idle from 5
    assert not clock.observe(clients=0, busy=False, now=14)
    assert not clock.observe(clients=0, busy=True, now=15)  # a task: reset
    assert clock.idle_for(15) == 0
    assert not clock.observe(clients=0, busy=False, now=16)
    assert clock.observe(clients=0, busy=False, now=26)
    assert clock.idle_for(26) == 10


def _entry(name: str, job_id: str = "", created: float = 100.0) -> Entry:
    return Entry(name=name, directory=f"/r/{name}", system="slurm", job_id=job_id,
                 created=created)  # fmt: skip


def test_stale_entries_are_those_the_queue_says_ended() -> None:
    entries = [
        _entry("running", "1"),
        _entry("ended", "2"),
        _entry("cancelled", "3"),
        _entry("unknown", "4"),
        _entry("not-asked", "5"),
        _entry("submitting", "", created=1000.0),
        _entry("never-submitted", "", created=1000.0 - UNSUBMITTED_GRACE - 1),
    ]
    statuses = {
        "1": JobStatus(JobState.RUNNING),
        "2": JobStatus(JobState.COMPLETED),
        "3": JobStatus(JobState.GONE),
        "4": JobStatus(JobState.UNKNOWN),  # the controller did not answer
    }
    stale = stale_entries(entries, statuses, now=1000.0)
    assert [e.name for e in stale] == ["ended", "cancelled", "never-submitted"]


def test_the_scheduler_job_script_runs_the_keeper_with_its_own_options() -> None:
    workers = resolve_job_options(
        "slurm", cores=8, memory="32GB", queue="regular", account="P1",
        job_extra_directives=["--gres=gpu:1"], job_script_prologue=["module load x"],
    )  # fmt: skip
    job = resolve_scheduler_job({"memory": "2GB", "walltime": "04:00:00"}, {})
    opts = scheduler_job_options(workers, job, "keep-x")
    script = render_scheduler_script(opts, Slurm(), "/home/u/.hpcdask/clusters/keep-x")
    assert "#SBATCH -J keep-x" in script
    assert "#SBATCH -p regular" in script and "#SBATCH -A P1" in script
    assert "#SBATCH -t 04:00:00" in script and "--gres" not in script
    assert "#SBATCH --cpus-per-task=1" in script
    assert "module load x" in script
    assert script.rstrip().endswith(
        "-m hpcdask.keeper /home/u/.hpcdask/clusters/keep-x"
    )
    assert "\nexec " in script


def test_the_registry_keeps_credentials_private(tmp_path: Path) -> None:
    root = str(tmp_path / "clusters")
    directory = new_entry(root, "keep-a")
    write_credentials(directory, Security.temporary())
    write_json(directory, "entry.json", {"job_id": "7", "system": "slurm"})
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    for name in os.listdir(directory):
        assert stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode) == 0o600
    with pytest.raises(InvalidOptionError, match=r"keep-a.*is registered"):
        new_entry(root, "keep-a")
    entry = read_entry(directory)
    assert entry.job_id == "7" and entry.submitted and not entry.running
    write_json(directory, "scheduler.json", {"address": "tls://10.0.0.1:1234"})
    assert read_entry(directory).running
    assert [e.name for e in list_entries(root)] == ["keep-a"]
    security = entry_security(directory)
    assert security.require_encryption
    assert security.tls_client_key == os.path.join(directory, "key.pem")


def test_a_scheduler_job_clusters_pools_are_checked_before_submitting() -> None:
    from hpcdask.handle import plan_launch

    base = {"cores": 1, "memory": "1GB", "scheduler_in": "job"}
    plan = plan_launch(
        "slurm",
        {**base, "pools": {"gpu": {"cores": 2, "memory": "2GB", "gpus": 1}}},
        "/tmp",
    )
    assert plan.kwargs["pools"] == {"gpu": {"cores": 2, "memory": "2GB", "gpus": 1}}
    with pytest.raises(InvalidOptionError, match=r"pools\.gpu\.gpus=-1"):
        plan_launch(
            "slurm",
            {**base, "pools": {"gpu": {"cores": 2, "memory": "2GB", "gpus": -1}}},
            "/tmp",
        )
    with pytest.raises(InvalidOptionError, match=r"pools\.gpu\.memory=None.*its own"):
        plan_launch("slurm", {**base, "pools": {"gpu": {"cores": 2}}}, "/tmp")
    with pytest.raises(InvalidOptionError, match="lower-case"):
        plan_launch("slurm", {**base, "pools": {"GPU": {}}}, "/tmp")
