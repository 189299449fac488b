"""Clusters that outlive the notebook (``scheduler_in="job"``) on the real Slurm.

Process A starts a cluster whose scheduler runs in a batch job and exits without
closing it; process B reconnects by name and finds the same jobs and A's
published result; an abandoned cluster ends by its idle timeout, and a
cancelled scheduler job cancels its workers. Each process is a real Python
process; the registry is the test's own directory (config
``hpcdask.registry-directory`` through the environment, as a user would set it).
Every test ends with no job of its own in the queue (``new_jobs``) and no
registry entry left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dask.config
import pytest
from distributed import Client

from hpcdask import PBSCluster, SLURMCluster
from hpcdask.cluster import HPCCluster
from tests.integration.conftest import run, wait_for

pytestmark = pytest.mark.usefixtures("new_jobs")

FIGURES: dict[str, float] = {}


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "registry"
    # for the processes the test starts, and for this one
    monkeypatch.setenv("DASK_HPCDASK__REGISTRY_DIRECTORY", str(root))
    with dask.config.set({"hpcdask.registry-directory": str(root)}):
        yield root


def run_python(
    code: str, log_directory: Path, timeout: float = 240
) -> dict[str, object]:
    """Run ``code`` in a new Python process (a notebook kernel of its own);
    it prints one JSON line of results last."""
    prelude = f"""
        import json, time
        import dask.config
        dask.config.set({{"hpcdask.poll-interval": "0.5s",
                          "hpcdask.slurm.log-directory": {str(log_directory)!r}}})
        from distributed import Client
        from hpcdask import SLURMCluster
    """
    script = textwrap.dedent(prelude) + textwrap.dedent(code)
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )
    assert done.returncode == 0, f"the process failed:\n{done.stdout}\n{done.stderr}"
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


A_STARTS = """
    started = time.monotonic()
    cluster = SLURMCluster(cores=1, memory="1GB", walltime="00:10:00",
                           scheduler_in="job", cluster_name="keep-a",
                           scheduler_job={"memory": "1GB", "walltime": "00:15:00"})
    up = time.monotonic() - started
    cluster.scale(jobs=2)
    client = Client(cluster)
    client.wait_for_workers(2, timeout=120)
    total = client.submit(sum, range(101))
    client.publish_dataset(total=total)
    print(json.dumps({"up": up, "total": total.result(),
                      "jobs": sorted(cluster.jobs()["job_id"]),
                      "address": cluster.scheduler_address}))
    # no close(): the process ends, the cluster stays
"""

B_RECONNECTS = """
    started = time.monotonic()
    cluster = SLURMCluster.from_name("keep-a")
    reconnect = time.monotonic() - started
    client = Client(cluster)
    total = client.get_dataset("total").result()
    jobs = sorted(cluster.jobs()["job_id"])
    more = client.gather(client.map(lambda x: x * 2, range(10)))
    charged = cluster.usage().core_hours
    workers = len(client.scheduler_info()["workers"])
    client.close()
    started = time.monotonic()
    cluster.close()
    closing = time.monotonic() - started
    print(json.dumps({"reconnect": reconnect, "total": total, "jobs": jobs,
                      "more": sum(more), "charged": charged, "workers": workers,
                      "close": closing}))
"""


def test_process_b_reconnects_to_the_cluster_process_a_left(
    registry: Path, log_directory: Path, new_jobs: Callable[[], list[str]]
) -> None:
    a = run_python(A_STARTS, log_directory)
    assert a["total"] == 5050 and a["address"] == "hpcdask://keep-a"
    # A has exited: its scheduler job and the two worker jobs still run
    queued = new_jobs()
    assert set(a["jobs"]) <= set(queued)  # type: ignore[arg-type]
    assert len(queued) == 3
    entry = registry / "keep-a"
    assert oct(entry.stat().st_mode & 0o777) == "0o700"
    assert oct(registry.stat().st_mode & 0o777) == "0o700"
    for f in entry.iterdir():
        assert oct(f.stat().st_mode & 0o777) == "0o600", f

    b = run_python(B_RECONNECTS, log_directory)
    assert b["total"] == 5050
    assert b["jobs"] == a["jobs"]
    assert b["workers"] == 2 and b["more"] == 90
    assert b["charged"] > 0  # type: ignore[operator]
    # close() returned: the scheduler job and the workers' jobs have left
    assert new_jobs() == []
    assert not entry.exists()
    FIGURES.update(up=a["up"], reconnect=b["reconnect"], close=b["close"])  # type: ignore[arg-type]
    print(f"figures: {FIGURES}")


def test_an_abandoned_cluster_ends_after_its_idle_timeout(
    registry: Path, log_directory: Path, new_jobs: Callable[[], list[str]]
) -> None:
    a = run_python(
        """
        cluster = SLURMCluster(cores=1, memory="1GB", walltime="00:10:00",
                               scheduler_in="job", cluster_name="keep-idle",
                               scheduler_job={"idle_timeout": "10s", "memory": "1GB"})
        cluster.scale(jobs=1)
        cluster.wait_for_workers(1, timeout=120)
        print(json.dumps({"jobs": list(cluster.jobs()["job_id"])}))
        """,
        log_directory,
    )
    assert len(a["jobs"]) == 1  # type: ignore[arg-type]
    abandoned = time.monotonic()
    assert len(new_jobs()) == 2  # the scheduler job and one worker job
    wait_for(lambda: new_jobs() == [], 120, "the idle cluster to empty the queue")
    FIGURES["idle_to_empty_queue"] = time.monotonic() - abandoned
    wait_for(lambda: not (registry / "keep-idle").exists(), 10, "the entry to go")
    # the scheduler job ended cleanly, saying why
    log = "".join(p.read_text() for p in log_directory.glob("keep-idle-*.err"))
    assert "idle timeout" in log
    print(f"figures: {FIGURES}")


def test_a_cancelled_scheduler_job_cancels_its_workers(
    registry: Path, log_directory: Path, new_jobs: Callable[[], list[str]]
) -> None:
    run_python(
        """
        cluster = SLURMCluster(cores=1, memory="1GB", walltime="00:10:00",
                               scheduler_in="job", cluster_name="keep-term",
                               scheduler_job={"memory": "1GB"})
        cluster.scale(jobs=2)
        cluster.wait_for_workers(2, timeout=120)
        print(json.dumps({}))
        """,
        log_directory,
    )
    assert len(new_jobs()) == 3
    # what the batch system does at walltime, or on scancel: SIGTERM
    run("scancel", "--name", "keep-term", "--signal", "TERM", "--full")
    wait_for(lambda: new_jobs() == [], 90, "the workers' jobs to be cancelled")
    assert not (registry / "keep-term").exists()


def test_from_name_of_an_unknown_cluster_is_a_clear_error(registry: Path) -> None:
    with pytest.raises(ValueError, match=r"nope.*no such cluster"):
        SLURMCluster.from_name("nope")
    with pytest.raises(ValueError, match="cluster_name"):
        SLURMCluster.from_name("../etc")


def test_the_default_cluster_keeps_its_scheduler_here(registry: Path) -> None:
    with SLURMCluster(cores=1, memory="1GB", walltime="00:05:00") as cluster:
        assert isinstance(cluster, HPCCluster)
        assert cluster.scheduler is not None  # in this process
        assert cluster.scheduler_address.startswith("tls://")
    assert not registry.exists() or list(registry.iterdir()) == []


#: dask-ctl 2024.1.0 imports distributed.cli.utils.install_signal_handlers, which
#: distributed 2026.8 no longer has: its CLI fails at import. The test gives it
#: a stand-in that installs nothing, and runs dask-ctl's own `dask cluster list`.
DASK_CTL = """
import sys
import distributed.cli.utils
distributed.cli.utils.install_signal_handlers = lambda loop=None, cleanup=None: None
from dask.cli import run_cli
sys.argv = ["dask", "cluster", "list"]
run_cli()
"""


def test_dask_ctl_lists_a_running_cluster(
    registry: Path, log_directory: Path, new_jobs: Callable[[], list[str]]
) -> None:
    run_python(
        """
        cluster = SLURMCluster(cores=1, memory="1GB", walltime="00:10:00",
                               scheduler_in="job", cluster_name="keep-ctl",
                               scheduler_job={"memory": "1GB"})
        cluster.scale(jobs=1)
        cluster.wait_for_workers(1, timeout=120)
        print(json.dumps({}))
        """,
        log_directory,
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", DASK_CTL],
            capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"},
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        (row,) = [line for line in out.stdout.splitlines() if "keep-ctl" in line]
        assert "hpcdask://keep-ctl" in row
        assert "hpcdask.handle.ClusterHandle" in row and "hpcdask" in row.split()
        assert " 1 " in row and "Running" in row  # one worker
        # and `hpcdask list` shows it too
        listed = run(str(Path(sys.executable).parent / "hpcdask"), "list")
        assert "keep-ctl" in listed and "running" in listed
    finally:
        SLURMCluster.from_name("keep-ctl").close()
    assert new_jobs() == []


def test_a_pbs_cluster_keeps_its_scheduler_in_a_job_too(
    registry: Path, log_directory: Path, new_jobs: Callable[[], list[str]]
) -> None:
    """The same through Slurm's Torque-compatible qsub / qstat / qdel: the
    scheduler job and its worker jobs are PBS jobs."""
    with dask.config.set({"hpcdask.pbs.log-directory": str(log_directory)}):
        cluster = PBSCluster(
            cores=1, memory="1GB", walltime="00:10:00", scheduler_in="job",
            cluster_name="keep-pbs", scheduler_job={"memory": "1GB"},
        )  # fmt: skip
    try:
        assert cluster.scheduler_address == "hpcdask://keep-pbs"
        assert "#PBS -l walltime=00:10:00" in cluster.job_script()
        cluster.scale(jobs=1)
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=120)
            assert client.submit(sum, range(10)).result() == 45
        assert len(new_jobs()) == 2  # the scheduler job and one worker job
        assert list(cluster.jobs()["state"]) == ["running"]
    finally:
        cluster.close()
    assert new_jobs() == []
    assert not (registry / "keep-pbs").exists()


def test_a_kept_cluster_takes_pools_through_its_handle(
    registry: Path, log_directory: Path, new_jobs: Callable[[], list[str]]
) -> None:
    """pools=, add_pool(), scale(pool=), job_script(pool=) and usage(pool=)
    reach the scheduler job's cluster; jobs() has the pool column."""
    cluster = SLURMCluster(
        cores=1, memory="1GB", walltime="00:10:00", scheduler_in="job",
        cluster_name="keep-pools", scheduler_job={"memory": "1GB"},
        pools={"wide": {"cores": 2, "memory": "1GB", "processes": 2}},
    )  # fmt: skip
    try:
        cluster.add_pool("tall", cores=1, memory="2GB")
        assert "--nworkers 2" in cluster.job_script(pool="wide")
        assert "#SBATCH --mem=1908M" in cluster.job_script(pool="tall")  # 2 GB
        cluster.scale(jobs=1, pool="wide")
        cluster.scale(jobs=1, pool="tall")
        with Client(cluster) as client:
            client.wait_for_workers(3, timeout=120)
            names = sorted(client.scheduler_info()["workers"][a]["name"]
                           for a in client.scheduler_info()["workers"])  # fmt: skip
        assert names == ["dask-worker-tall-0", "dask-worker-wide-0-0",
                         "dask-worker-wide-0-1"]  # fmt: skip
        jobs = cluster.jobs()
        assert sorted(jobs["pool"]) == ["tall", "wide"]
        assert cluster.usage(pool="wide").cores_in_use == 2
        assert cluster.usage(pool="default").cores_in_use == 0
    finally:
        cluster.close()
    assert new_jobs() == []
