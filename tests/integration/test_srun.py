"""The launcher without MPI (``hpcdask-srun``) and the job scripts of both
launchers, as batch jobs on a real Slurm.

Each test submits an ``sbatch`` job whose script runs ``srun -n 4 ...`` and
checks what the job printed, its exit code and its stderr. The Slurm is a
parameter (:data:`SITES`): the one-node Slurm of this machine now; the
multi-node test site (its own ``SLURM_CONF``, partition and node count) is one
more entry, and every test here then runs across its nodes too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from distributed import Client

from hpcdask import SLURMCluster
from tests.integration.multinode_site import MultiNode
from tests.integration.test_mpi import mpi_env, noise, write


@dataclass(frozen=True)
class SlurmSite:
    """A Slurm to submit to: its partition, how many nodes a job spans, and
    the environment its commands need (``SLURM_CONF`` of a second cluster)."""

    partition: str
    nodes: int
    env: dict[str, str]

    def environ(self) -> dict[str, str]:
        """The commands' environment; jobs inherit it: hpcdask from this
        checkout, and mpirun allowed as root."""
        allowed = mpi_env()
        env = {**self.env, "PYTHONPATH": allowed["PYTHONPATH"]}
        env.update((k, v) for k, v in allowed.items() if k.startswith("OMPI_"))
        return env

    def run(self, *argv: str, check: bool = True) -> str:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
            env=self.environ(),
        )
        return done.stdout

    def job_field(self, job_id: str, name: str) -> str:
        out = self.run("scontrol", "-o", "show", "job", job_id)
        for item in out.split():
            key, _, value = item.partition("=")
            if key == name:
                return value
        raise KeyError(name)


#: the Slurms these tests run on: the one-node Slurm of ci/slurm-up.sh, and the
#: four nodes of ci/multinode-up.sh (each task of a 4-task job on its own node)
SITES = ("local", "multinode")

RANKS = 4

# srun's own notice of a non-zero exit, as mpirun prints one without -q
_SRUN_NOTICE = re.compile(
    r"^srun: error: \S+: tasks? [\d,-]+: Exited with exit code \d+$"
)


@pytest.fixture(params=SITES)
def site(request: pytest.FixtureRequest) -> SlurmSite:
    if request.param == "local":
        request.getfixturevalue("slurm")
        return SlurmSite(partition="debug", nodes=1, env=dict(os.environ))
    multinode = request.getfixturevalue("steady_multinode")
    return SlurmSite(multinode.partition, len(multinode.nodes), dict(multinode.env))


#: seconds every node of the multi-node site must stay up before these tests use
#: it: a node back from the site's own fault tests may drop out once more
STEADY = 15.0


@pytest.fixture(scope="module")
def steady_multinode(multinode: MultiNode) -> MultiNode:
    """The multi-node site once all its nodes have been up for STEADY seconds."""
    deadline = time.monotonic() + 120
    up_since = None
    while True:
        states = multinode.node_states()
        if all(s in ("idle", "mixed", "allocated") for s in states.values()):
            up_since = up_since or time.monotonic()
            if time.monotonic() - up_since >= STEADY:
                return multinode
        else:
            up_since = None
        if time.monotonic() > deadline:
            pytest.fail(f"the multi-node site's nodes do not stay up: {states}")
        time.sleep(1)


@dataclass
class Job:
    job_id: str
    state: str
    exit_code: str
    stdout: str
    stderr: str


@pytest.fixture
def jobs(site: SlurmSite) -> Iterator[list[str]]:
    """The ids of the jobs a test submits; cancelled, and the test failed, if
    one is still queued when it ends."""
    submitted: list[str] = []
    yield submitted
    left = [
        j for j in submitted if site.run("squeue", "-h", "-j", j, check=False).strip()
    ]
    if left:
        site.run("scancel", *left, check=False)
        pytest.fail(f"jobs left in the queue: {left}")


def submit(site: SlurmSite, jobs: list[str], script: Path, cwd: Path) -> str:
    """Submit ``script`` from ``cwd``; its id. A controller that does not
    answer (the shared Slurm restarting) is asked again for up to 30 s."""
    deadline = time.monotonic() + 30
    while True:
        done = subprocess.run(
            ["sbatch", "--parsable", str(script)],
            capture_output=True,
            text=True,
            timeout=30,
            env=site.environ(),
            cwd=cwd,
        )
        unreachable = "Unable to contact slurm controller" in done.stderr
        if done.returncode == 0 or not unreachable or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert done.returncode == 0, f"sbatch failed: {done.stderr}"
    job_id = done.stdout.strip().split(";")[0]
    jobs.append(job_id)
    return job_id


def wait_until_ended(site: SlurmSite, job_id: str, timeout: float) -> str:
    """The job's final state; cancels it and fails if it takes too long."""
    deadline = time.monotonic() + timeout
    while True:
        state = site.job_field(job_id, "JobState")
        if state not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
            return state
        if time.monotonic() > deadline:
            site.run("scancel", job_id, check=False)
            pytest.fail(f"job {job_id} still {state} after {timeout}s")
        time.sleep(0.3)


def srun_batch_script(site: SlurmSite, tmp_path: Path, command: str) -> Path:
    """A batch script that runs ``command`` (an ``srun`` line) in ``tmp_path``."""
    return write(
        tmp_path / "job.sbatch",
        f"""\
        #!/bin/bash
        #SBATCH -J hpcdask-srun-test
        #SBATCH -p {site.partition}
        #SBATCH -N {site.nodes}
        #SBATCH -n {RANKS}
        #SBATCH -t 5
        #SBATCH --no-requeue
        #SBATCH -o {tmp_path}/out-%j.txt
        #SBATCH -e {tmp_path}/err-%j.txt
        {command}
        """,
    )


def run_job(
    site: SlurmSite, jobs: list[str], tmp_path: Path, *launcher_args: str
) -> Job:
    """``srun -n 4 python -m hpcdask.mpi.srun ARGS`` as a batch job, to its end."""
    words = [sys.executable, "-m", "hpcdask.mpi.srun", *launcher_args]
    script = srun_batch_script(site, tmp_path, f"srun -n {RANKS} " + " ".join(words))
    job_id = submit(site, jobs, script, tmp_path)
    state = wait_until_ended(site, job_id, timeout=150)
    return Job(
        job_id,
        state,
        site.job_field(job_id, "ExitCode"),
        (tmp_path / f"out-{job_id}.txt").read_text(),
        (tmp_path / f"err-{job_id}.txt").read_text(),
    )


def stderr_lines(stderr: str) -> list[str]:
    """stderr without srun's notice of a non-zero exit."""
    return [x for x in stderr.splitlines() if x.strip() and not _SRUN_NOTICE.match(x)]


ROLES = """
    import json, os, socket, sys
    from distributed import Client

    def where():
        return os.environ["SLURM_PROCID"], socket.gethostname()

    with Client() as client:
        client.wait_for_workers(2, timeout=60)
        workers = client.run(where)
        names = sorted(w["name"] for w in client.scheduler_info()["workers"].values())
        record = {
            "client": where(),
            "scheduler": client.run_on_scheduler(where),
            "workers": sorted(workers.values()),
            "names": names,
            "sum": client.submit(sum, range(10)).result(),
            "argv": sys.argv[1:],
        }
    print("RESULT " + json.dumps(record), flush=True)
    sys.exit(int(sys.argv[1]))
"""


@pytest.mark.parametrize("code", [0, 3])
def test_srun_runs_the_roles_and_exits_with_the_scripts_code(
    site: SlurmSite, jobs: list[str], tmp_path: Path, code: int
) -> None:
    write(tmp_path / "roles.py", ROLES)
    job = run_job(
        site, jobs, tmp_path, "run", "--dashboard-address", ":0", "roles.py", str(code)
    )
    results = re.findall(r"RESULT (\{.*\})", job.stdout)
    assert results, f"no result; exit {job.exit_code}, stderr: {job.stderr}"
    record = json.loads(results[0])
    assert record["client"][0] == "1"
    assert record["scheduler"][0] == "0"
    assert [rank for rank, _ in record["workers"]] == ["2", "3"]
    assert record["names"] == [2, 3]
    assert record["sum"] == 45
    assert record["argv"] == [str(code)]
    hosts = {
        host for _, host in [record["client"], record["scheduler"], *record["workers"]]
    }
    assert len(hosts) == min(site.nodes, RANKS)
    assert job.exit_code == f"{code}:0"
    assert job.state == ("COMPLETED" if code == 0 else "FAILED")
    assert stderr_lines(job.stderr) == [], job.stderr
    if code == 0:
        assert job.stderr == ""
    # the rendezvous file is gone with the step
    assert not list(tmp_path.glob(".hpcdask-srun-*"))


def test_srun_a_failing_script_prints_only_its_own_traceback(
    site: SlurmSite, jobs: list[str], tmp_path: Path
) -> None:
    write(
        tmp_path / "failing.py",
        """
        from distributed import Client

        with Client() as client:
            total = client.submit(sum, [1, 2]).result()
        raise ValueError(f"bad total {total}")
        """,
    )
    job = run_job(
        site, jobs, tmp_path, "run", "--dashboard-address", ":0", "failing.py"
    )
    assert job.exit_code == "1:0"
    lines = stderr_lines(job.stderr)
    assert lines[0] == "Traceback (most recent call last):", job.stderr
    assert lines[-1] == "ValueError: bad total 3"
    assert noise(job.stderr) == ["Traceback (most recent call last):"]


def test_srun_too_few_tasks_is_a_clear_error(
    site: SlurmSite, jobs: list[str], tmp_path: Path
) -> None:
    write(tmp_path / "analysis.py", "print('should not run')\n")
    nodes = min(2, site.nodes)  # two tasks the allocation can hold
    command = (
        f"srun -N {nodes} -n 2 {sys.executable} -m hpcdask.mpi.srun run analysis.py"
    )
    script = srun_batch_script(site, tmp_path, command)
    job_id = submit(site, jobs, script, tmp_path)
    wait_until_ended(site, job_id, timeout=60)
    stderr = (tmp_path / f"err-{job_id}.txt").read_text()
    assert site.job_field(job_id, "ExitCode") == "2:0"
    assert stderr_lines(stderr) == [
        "hpcdask-srun: error: hpcdask's launcher needs at least 3 Slurm tasks (a "
        "scheduler on rank 0, a client on rank 1, at least one worker on a rank of "
        "its own); this run has 2: start it with e.g. `srun -n 3 ...`"
    ]
    assert "should not run" not in (tmp_path / f"out-{job_id}.txt").read_text()


KILLABLE = """
    import json, os, time
    from distributed import Client

    def pid():
        return os.getpid()

    client = Client()
    client.wait_for_workers(2)
    pids = {
        "client": os.getpid(),
        "scheduler": client.run_on_scheduler(pid),
        "worker": sorted(client.run(pid).values())[0],
    }
    with open("pids.json.tmp", "w") as f:
        json.dump(pids, f)
    os.rename("pids.json.tmp", "pids.json")
    time.sleep(600)
"""


@pytest.mark.parametrize("victim", ["worker", "scheduler", "client"])
def test_srun_a_killed_rank_ends_the_step(
    site: SlurmSite, jobs: list[str], tmp_path: Path, victim: str
) -> None:
    write(tmp_path / "killable.py", KILLABLE)
    words = [sys.executable, "-m", "hpcdask.mpi.srun", "run", "--dashboard-address"]
    words += [":0", "killable.py"]
    script = srun_batch_script(site, tmp_path, f"srun -n {RANKS} " + " ".join(words))
    job_id = submit(site, jobs, script, tmp_path)
    pids_file = tmp_path / "pids.json"
    deadline = time.monotonic() + 90
    while not pids_file.exists():
        assert time.monotonic() < deadline, (tmp_path / f"err-{job_id}.txt").read_text()
        time.sleep(0.2)
    os.kill(json.loads(pids_file.read_text())[victim], signal.SIGKILL)
    killed = time.monotonic()
    wait_until_ended(site, job_id, timeout=60)
    assert time.monotonic() - killed < 20
    assert site.job_field(job_id, "ExitCode") != "0:0"
    stderr = (tmp_path / f"err-{job_id}.txt").read_text()
    assert "ending the job step" in stderr
    assert not list(tmp_path.glob(".hpcdask-srun-*"))


COMPUTE = """
    import sys
    import dask.array as da
    from distributed import Client

    with Client() as client:
        total = int(da.arange(1_000_000, chunks=100_000).sum().compute())
        workers = len(client.scheduler_info()["workers"])
    print(f"total={total} workers={workers} argv={sys.argv[1:]}", flush=True)
    sys.exit(3)
"""


@pytest.mark.parametrize("launcher", ["srun", "mpirun"])
def test_a_clusters_mpi_job_script_runs_on_the_site(
    site: SlurmSite, jobs: list[str], tmp_path: Path, log_directory: Path, launcher: str
) -> None:
    """``cluster.mpi_job_script()`` for either launcher, across the site's nodes."""
    script = write(tmp_path / "analysis.py", COMPUTE)
    with SLURMCluster(
        cores=1,
        processes=1,
        memory="1GB",
        walltime="00:05:00",
        queue=site.partition,
        job_name="hpcdask-mpi-test",
        log_directory=str(log_directory),
        nanny=False,
        # a node lost on the shared site ends the job instead of running it again
        job_extra_directives=["--no-requeue"],
    ) as cluster:
        text = cluster.mpi_job_script(
            str(script),
            "x",
            nodes=site.nodes,
            ntasks=RANKS,
            launcher=launcher,
            # Open MPI's own notice of a non-zero exit stays out of the log
            launcher_args=["-q"] if launcher == "mpirun" else [],
            mpi_args=["--dashboard-address", ":0"],
        )
    assert f"#SBATCH --nodes={site.nodes}" in text
    batch = write(tmp_path / "analysis.sbatch", text)
    job_id = submit(site, jobs, batch, log_directory)
    state = wait_until_ended(site, job_id, timeout=150)
    stdout = (log_directory / f"hpcdask-mpi-test-{job_id}.out").read_text()
    stderr = (log_directory / f"hpcdask-mpi-test-{job_id}.err").read_text()
    assert f"total={999_999 * 1_000_000 // 2} workers=2 argv=['x']" in stdout, stderr
    assert state == "FAILED"
    assert site.job_field(job_id, "ExitCode") == "3:0"
    assert noise(stderr) == [], stderr
    assert stderr_lines(stderr) == [], stderr


def test_srun_runs_a_script_that_calls_initialize(
    site: SlurmSite, jobs: list[str], tmp_path: Path
) -> None:
    """The MPI example, unchanged: under hpcdask-srun its initialize() is the
    client rank's no-op, as under hpcdask-mpi."""
    example = Path(__file__).resolve().parents[2] / "examples" / "mpi_example.py"
    job = run_job(
        site, jobs, tmp_path, "run", "--dashboard-address", ":0", str(example)
    )
    assert job.exit_code == "0:0", job.stderr
    assert "computed by 2 workers" in job.stdout
    assert job.stderr == ""


def test_srun_serve_for_a_client_elsewhere(
    site: SlurmSite, jobs: list[str], tmp_path: Path
) -> None:
    scheduler_file = tmp_path / "scheduler.json"
    words = [sys.executable, "-m", "hpcdask.mpi.srun", "serve", "--no-dashboard"]
    words += ["--scheduler-file", str(scheduler_file), "--nthreads", "2"]
    script = srun_batch_script(site, tmp_path, f"srun -n {RANKS} " + " ".join(words))
    job_id = submit(site, jobs, script, tmp_path)
    deadline = time.monotonic() + 90
    while True:  # complete JSON: the scheduler writes it while we read
        with contextlib.suppress(OSError, ValueError):
            address = json.loads(scheduler_file.read_text())["address"]
            break
        assert time.monotonic() < deadline, (tmp_path / f"err-{job_id}.txt").read_text()
        time.sleep(0.2)
    with Client(address, timeout=30) as client:
        client.wait_for_workers(RANKS - 1, timeout=60)
        info = client.scheduler_info()["workers"].values()
        assert sorted(w["name"] for w in info) == [1, 2, 3]
        assert all(w["nthreads"] == 2 for w in info)
        assert client.submit(sum, [1, 2, 3]).result() == 6
        client.shutdown()
    assert wait_until_ended(site, job_id, timeout=60) == "COMPLETED"
    assert site.job_field(job_id, "ExitCode") == "0:0"
    assert (tmp_path / f"err-{job_id}.txt").read_text() == ""
