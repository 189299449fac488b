"""The installed ``hpcdask`` command against the real Slurm and a real cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import dask.config
import pytest
import yaml

from hpcdask import PBSCluster, SLURMCluster
from tests.integration.conftest import job_field, wait_for

pytestmark = pytest.mark.usefixtures("new_jobs")

HPCDASK = str(Path(sys.executable).with_name("hpcdask"))


def hpcdask(
    *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HPCDASK, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def queued_named(name: str) -> list[str]:
    """Ids of the queued jobs named ``name`` (other users of this Slurm may be
    submitting jobs of their own meanwhile)."""
    out = subprocess.run(
        ["squeue", "--noheader", f"--name={name}", "--format=%i"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return sorted(out.split())


@pytest.fixture
def hung_kernel(tmp_path: Path) -> Iterator[str]:
    """A notebook kernel's clusters, then the kernel hung (SIGSTOP): its jobs stay
    queued and nothing will cancel them. Yields their job name.

    Two jobs run (workers connected) and one waits in the ``down`` partition, all
    with the same job name, unique to this test. (A killed kernel's running jobs
    end by themselves once their workers lose the scheduler; its pending ones
    stay: stopping it keeps the scene still while the test looks.)
    """
    name = f"cli-{uuid.uuid4().hex[:8]}"
    script = textwrap.dedent(
        f"""
        import time
        from distributed import Client
        from hpcdask import SLURMCluster

        common = dict(cores=1, memory="1GB", walltime="00:05:00", name={name!r},
                      log_directory={str(tmp_path)!r},
                      scheduler_options={{"dashboard_address": "127.0.0.1:0"}})
        cluster = SLURMCluster(**common)
        waiting = SLURMCluster(queue="down", **common)
        cluster.scale(2)
        waiting.scale(1)
        Client(cluster).wait_for_workers(2, timeout=60)
        print("ready", flush=True)
        time.sleep(600)
        """
    )
    kernel = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert kernel.stdout is not None
        assert kernel.stdout.readline().strip() == "ready"
        kernel.send_signal(signal.SIGSTOP)
        yield name
    finally:
        kernel.kill()  # no close(), no atexit: nothing of it cancels a job
        kernel.wait(timeout=30)


def cluster_tags(listing: str) -> dict[str, str]:
    """Tag -> owner state of each cluster ``hpcdask jobs`` printed."""
    found = {}
    for line in listing.splitlines():
        if line.startswith("cluster "):
            tag, _, owner = line.removeprefix("cluster ").partition(" (process ")
            found[tag] = owner.split(": ", 1)[1].rstrip(")")
    return found


def test_jobs_and_cancel_the_jobs_of_a_hung_kernel(hung_kernel: str) -> None:
    """A hung kernel's process is alive: `hpcdask cancel` leaves its clusters
    alone (they might be someone's live notebook) until named with --cluster."""
    name = hung_kernel
    left_behind = queued_named(name)
    assert len(left_behind) == 3

    listing = hpcdask("jobs", "--name", name)
    assert listing.returncode == 0, listing.stderr
    tags = cluster_tags(listing.stdout)
    assert len(tags) == 2 and set(tags.values()) == {"alive"}  # two clusters
    rows = [line.split() for line in listing.stdout.splitlines() if line[:1].isdigit()]
    assert sorted(row[0] for row in rows) == sorted(left_behind)
    states = sorted((row[2], row[3]) for row in rows)
    assert states == [("pending", "PartitionDown"), ("running", "-"), ("running", "-")]
    assert {row[1] for row in rows} == {name}

    alone = hpcdask("cancel", name)
    assert alone.returncode == 0, alone.stderr
    assert "cancelled 0 job(s)" in alone.stdout
    assert alone.stdout.count("left alone: ") == 2
    assert queued_named(name) == left_behind  # nothing cancelled

    dry = hpcdask("cancel", "--cluster", next(iter(tags)), "--dry-run")
    assert dry.returncode == 0 and "would cancel " in dry.stdout
    assert queued_named(name) == left_behind
    for tag in tags:
        cancel = hpcdask("cancel", "--cluster", tag)
        assert cancel.returncode == 0, cancel.stderr
        assert f"cancelled the jobs of cluster {tag}" in cancel.stdout
    wait_for(lambda: queued_named(name) == [])
    assert {job_field(i, "JobState") for i in left_behind} == {"CANCELLED"}
    again = hpcdask("jobs", "--name", name)
    assert again.returncode == 0 and again.stdout.startswith("no queued jobs of ")


def test_cancel_leaves_live_clusters_and_other_names_alone() -> None:
    keep = f"keep-{uuid.uuid4().hex[:6]}"
    with SLURMCluster(cores=1, memory="1GB", queue="down", name=keep) as cluster:
        cluster.scale(jobs=1)
        job_id = cluster.jobs()["job_id"][0]
        assert queued_named(keep) == [job_id]
        # (not `hpcdask cancel` alone: on a shared machine it would also take
        # the leftovers of other tests' killed processes)
        for name in (f"other-{uuid.uuid4().hex[:6]}", keep):
            result = hpcdask("cancel", name)
            assert result.returncode == 0
            assert "cancelled 0 job(s)" in result.stdout
            assert queued_named(keep) == [job_id]
        assert f"left alone: 1 job(s) of cluster {cluster.manager.tag}" in result.stdout
        listed = hpcdask("jobs", "--name", keep)
        assert cluster_tags(listed.stdout) == {str(cluster.manager.tag): "alive"}
        assert listed.stdout.splitlines()[2].split()[:4] == [
            job_id, keep, "pending", "PartitionDown",
        ]  # fmt: skip


def test_profiles_and_job_script_from_a_config_file(tmp_path: Path) -> None:
    config = {
        "hpcdask": {
            "profiles": {
                "tiny": {
                    "description": "1 core, 1 GB, 10 minutes",
                    "system": "slurm",
                    "queue": "debug",
                    "cores": 1,
                    "memory": "1GB",
                    "walltime": "00:10:00",
                    "log-directory": str(tmp_path / "logs"),
                    "directives": ["--comment=hpcdask-cli-test"],
                }
            }
        }
    }
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(config))
    env = {"DASK_CONFIG": str(tmp_path)}

    listing = hpcdask("profiles", env=env)
    assert listing.returncode == 0, listing.stderr
    row = listing.stdout.splitlines()[1].split()
    assert row[:8] == ["tiny", "slurm", "debug", "1", "1", "GB", "00:10:00", "1"]

    script = hpcdask("job-script", "--profile", "tiny", env=env)
    assert script.returncode == 0, script.stderr
    # the same script a cluster from that profile submits, but the address
    with (
        dask.config.set({"hpcdask.profiles": config["hpcdask"]["profiles"]}),
        SLURMCluster.from_profile("tiny") as cluster,
    ):
        address = cluster.scheduler.address
        private_dir = cluster.credentials.private_dir
        expected = cluster.job_script()
    # TLS by default: the cluster's own credentials directory is a placeholder too
    assert private_dir is not None
    placeholder = os.path.join(os.path.dirname(private_dir), "cluster-XXXXXXXX")
    expected = expected.replace(address, "tls://SCHEDULER-ADDRESS:8786")
    assert expected.replace(private_dir, placeholder) == script.stdout
    assert "--tls-key" in script.stdout
    # the profile's own comment is kept: the jobs carry no hpcdask tag then
    assert "#SBATCH --comment=hpcdask-cli-test" in script.stdout
    assert "--comment=hpcdask:" not in script.stdout
    plain = hpcdask(
        "job-script", "--system", "slurm", "--cores", "1", "--memory", "1GB"
    )
    assert "#SBATCH --comment=hpcdask:" in plain.stdout  # a placeholder tag

    # a profile with a typo is a one-line error naming it
    config["hpcdask"]["profiles"]["tiny"]["wallclock"] = "1:00:00"  # type: ignore[index]
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(config))
    bad = hpcdask("job-script", "--profile", "tiny", env=env)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1
    assert "hpcdask.profiles.tiny.wallclock" in bad.stderr
    assert "did you mean 'walltime'" in bad.stderr


def test_config_writes_a_file_dask_reads(tmp_path: Path) -> None:
    env = {"DASK_CONFIG": str(tmp_path)}
    written = hpcdask("config", env=env)
    assert written.returncode == 0
    path = tmp_path / "hpcdask.yaml"
    assert written.stdout == f"wrote {path}\n"
    text = path.read_text()
    # uncomment one option the way the header says, and the command sees it
    text = text.replace("# hpcdask:\n", "hpcdask:\n").replace(
        "#   profiles:\n#     small:\n", "  profiles:\n    small:\n"
    )
    for key in ("description", "system", "queue", "cores", "memory", "walltime"):
        text = text.replace(f"#       {key}:", f"      {key}:", 1)
    path.write_text(text)
    listing = hpcdask("profiles", env=env)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.splitlines()[1].split()[:3] == ["small", "slurm", "shared"]
    refused = hpcdask("config", env=env)
    assert refused.returncode == 1 and "exists; use --force" in refused.stderr


def test_jobs_and_cancel_through_the_pbs_commands() -> None:
    """Slurm's Torque-compatible qstat shows no job variables, so the cluster's
    tag (-v HPCDASK_CLUSTER) is not seen there: its jobs are listed with --all
    and `hpcdask cancel` never takes them; close() does."""
    name = f"pbs-{uuid.uuid4().hex[:6]}"
    with PBSCluster(cores=1, memory="1GB", queue="down", name=name) as cluster:
        cluster.scale(jobs=2)
        ids = sorted(cluster.jobs()["job_id"])
        assert "#PBS -v HPCDASK_CLUSTER=hpcdask:" in cluster.job_script()
        listed = hpcdask("jobs", "--system", "pbs", "--all", "--name", name)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.startswith("jobs of no hpcdask cluster")
        rows = [line.split() for line in listed.stdout.splitlines()[2:]]
        assert sorted(row[0] for row in rows) == ids
        assert {(row[1], row[2]) for row in rows} == {(name, "pending")}
        cancel = hpcdask("cancel", "--system", "pbs", name)
        assert cancel.returncode == 0, cancel.stderr
        assert "cancelled 0 job(s)" in cancel.stdout
        assert queued_named(name) == ids
    wait_for(lambda: queued_named(name) == [])
    assert {job_field(i, "JobState") for i in ids} == {"CANCELLED"}
