"""The MPI launcher under a real ``mpirun`` (Open MPI from Debian), no fakes.

Each test starts a whole MPI job (scheduler, client, workers as separate
processes) on this machine, so the file takes about a minute. ``mpirun -q``
keeps Open MPI's own notices out of stderr, so what is left there is what the
launcher, Dask and the script printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from distributed import Client

REPO = Path(__file__).resolve().parents[2]
HPCDASK_MPI = [sys.executable, "-m", "hpcdask.mpi"]
# a free dashboard port: other tests may hold 8787
FREE_DASHBOARD = ["--dashboard-address", ":0"]

# Warnings a loaded 2-core machine may print that say nothing about shutdown.
_LOAD_WARNINGS = (
    "Event loop was unresponsive",
    "full garbage collections took",
    "Port 8787 is already in use",
    "Perhaps you already have a cluster running?",
    "Hosting the HTTP server on port",
    "warnings.warn(",
)


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def mpi_env() -> dict[str, str]:
    env = dict(os.environ)
    if os.geteuid() == 0:
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO), env.get("PYTHONPATH")])
    )
    return env


def mpirun_argv(ranks: int, *argv: str) -> list[str]:
    if shutil.which("mpirun") is None:
        pytest.fail("mpirun is missing: apt-get install openmpi-bin libopenmpi-dev")
    return ["mpirun", "-q", "--oversubscribe", "-np", str(ranks), *argv]


def mpirun(
    ranks: int,
    *argv: str,
    cwd: Path,
    timeout: float = 120,
    env: dict[str, str] | None = None,
) -> Finished:
    start = time.monotonic()
    done = subprocess.run(
        mpirun_argv(ranks, *argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**mpi_env(), **(env or {})},
        cwd=cwd,
    )
    return Finished(done.returncode, done.stdout, done.stderr, time.monotonic() - start)


def unexpected_lines(stderr: str) -> list[str]:
    """stderr lines other than load-related warnings."""
    return [
        line
        for line in stderr.splitlines()
        if line.strip() and not any(w in line for w in _LOAD_WARNINGS)
    ]


def noise(stderr: str) -> list[str]:
    """Traceback and error lines."""
    return [
        line
        for line in stderr.splitlines()
        if "Traceback" in line or re.search(r"\b(ERROR|CRITICAL)\b", line)
    ]


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def background(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """MPI jobs started in the background; killed if a test leaves one running."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start(
    background: list[subprocess.Popen[bytes]],
    ranks: int,
    *argv: str,
    cwd: Path,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start an MPI job in its own session, output to ``cwd``/stdout, stderr."""
    with (cwd / "stdout").open("wb") as out, (cwd / "stderr").open("wb") as err:
        process = subprocess.Popen(
            mpirun_argv(ranks, *argv),
            stdout=out,
            stderr=err,
            env={**mpi_env(), **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    background.append(process)
    return process


def wait_for_json(path: Path, process: subprocess.Popen[bytes], timeout: float) -> Any:
    """The content of a JSON file another process writes, once it is complete."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, ValueError):
            return json.loads(path.read_text())
        if process.poll() is not None:
            stderr = (path.parent / "stderr").read_text()
            pytest.fail(f"the MPI job ended early ({process.returncode}): {stderr}")
        if time.monotonic() > deadline:
            pytest.fail(f"{path.name} did not appear within {timeout}s")
        time.sleep(0.1)


COMPUTE = """
    import sys
    import dask.array as da
    from distributed import Client

    with Client() as client:
        x = da.arange(1_000_000, chunks=100_000)
        total = int(x.sum().compute())
        workers = len(client.scheduler_info()["workers"])
    print(f"total={total} workers={workers} argv={sys.argv[1:]}", flush=True)
"""


def test_importing_the_launcher_does_not_start_mpi() -> None:
    code = (
        "import sys, hpcdask.mpi, hpcdask.mpi.cli, hpcdask.mpi.script; "
        "print('mpi4py.MPI' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


# -- success and failure -------------------------------------------------------------


def test_run_a_script_computes_and_exits_silently(tmp_path: Path) -> None:
    script = write(tmp_path / "analysis.py", COMPUTE)
    done = mpirun(
        4, *HPCDASK_MPI, "run", *FREE_DASHBOARD, str(script), "a", "--b", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert (
        f"total={999_999 * 1_000_000 // 2} workers=2 argv=['a', '--b']" in done.stdout
    )
    assert unexpected_lines(done.stderr) == [], done.stderr


@pytest.mark.parametrize("command", [[sys.executable], [*HPCDASK_MPI, "run"]])
def test_the_example_exits_zero_without_errors(
    tmp_path: Path, command: list[str]
) -> None:
    """``python example.py`` (it calls initialize()) or ``hpcdask-mpi run``."""
    done = mpirun(4, *command, str(REPO / "examples" / "mpi_example.py"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "computed by 2 workers" in done.stdout
    assert unexpected_lines(done.stderr) == [], done.stderr


def test_a_failing_script_exits_nonzero_with_only_its_own_traceback(
    tmp_path: Path,
) -> None:
    script = write(
        tmp_path / "failing.py",
        COMPUTE
        + """
    def check(value):
        raise ValueError(f"bad total {value}")

    check(total)
    """,
    )
    done = mpirun(4, *HPCDASK_MPI, "run", *FREE_DASHBOARD, str(script), cwd=tmp_path)
    assert done.returncode == 1
    assert "total=" in done.stdout  # it ran, then failed
    lines = unexpected_lines(done.stderr)
    assert lines[0] == "Traceback (most recent call last):", done.stderr
    assert lines[-1] == f"ValueError: bad total {999_999 * 1_000_000 // 2}"
    assert sum("Traceback" in line for line in lines) == 1
    frames = [line for line in lines if line.lstrip().startswith("File ")]
    assert frames and all("failing.py" in frame for frame in frames), done.stderr
    assert noise(done.stderr) == ["Traceback (most recent call last):"]


def test_initialize_passes_the_scripts_exit_code_on(tmp_path: Path) -> None:
    script = write(
        tmp_path / "exit3.py",
        """
        import sys
        from distributed import Client
        from hpcdask.mpi import initialize

        initialize(dashboard_address=":0")
        with Client() as client:
            print(client.submit(sum, [1, 2]).result(), flush=True)
        sys.exit(3)
        """,
    )
    done = mpirun(4, sys.executable, str(script), cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert done.stdout.strip() == "3"
    assert unexpected_lines(done.stderr) == [], done.stderr


def test_nanny_workers_do_not_rerun_the_script(tmp_path: Path) -> None:
    script = write(
        tmp_path / "nanny.py",
        """
        import os
        from distributed import Client
        from hpcdask.mpi import initialize

        print("top of script", flush=True)
        initialize(nanny=True, dashboard_address=":0")
        with Client() as client:
            client.wait_for_workers(2)
            pids = set(client.run(os.getpid).values())
            print("workers", len(pids), "result", client.submit(sum, [2, 3]).result())
        """,
    )
    done = mpirun(4, sys.executable, str(script), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # once per rank: the nannies' worker processes did not run it again
    assert done.stdout.count("top of script") == 4
    assert "workers 2 result 5" in done.stdout
    assert unexpected_lines(done.stderr) == [], done.stderr


def test_run_a_function_its_return_value_is_the_exit_code(tmp_path: Path) -> None:
    write(
        tmp_path / "mpi_jobs.py",
        """
        import sys
        from distributed import Client

        def main():
            with Client() as client:
                client.wait_for_workers(3, timeout=60)
                workers = len(client.scheduler_info()["workers"])
                print("workers", workers, "args", sys.argv[1:], flush=True)
            return 4
        """,
    )
    done = mpirun(
        5, *HPCDASK_MPI, "run", "--no-dashboard", "mpi_jobs:main", "z", cwd=tmp_path
    )
    assert done.returncode == 4, done.stderr
    assert "workers 3 args ['z']" in done.stdout
    assert unexpected_lines(done.stderr) == [], done.stderr


# -- too few ranks ---------------------------------------------------------------------


def test_fewer_than_three_ranks_is_a_clear_error(tmp_path: Path) -> None:
    script = write(tmp_path / "analysis.py", COMPUTE)
    done = mpirun(2, *HPCDASK_MPI, "run", str(script), cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("needs at least 3 MPI ranks") == 1, done.stderr
    assert "this run has 2" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_initialize_with_two_ranks_raises(tmp_path: Path) -> None:
    script = write(
        tmp_path / "two.py",
        """
        from hpcdask.mpi import initialize
        initialize()
        print("should not get here")
        """,
    )
    done = mpirun(2, sys.executable, str(script), cwd=tmp_path, timeout=60)
    assert done.returncode != 0
    assert "WorldTooSmallError" in done.stderr
    assert "should not get here" not in done.stdout


# -- failures do not hang the job ----------------------------------------------------------

KILLABLE = """
    import json, os, time
    from distributed import Client
    from hpcdask.mpi import initialize

    initialize(dashboard_address=":0", failure_timeout=2)
    client = Client()
    client.wait_for_workers(2)
    pids = {
        "scheduler": client.run_on_scheduler(os.getpid),
        "workers": sorted(client.run(os.getpid).values()),
        "addresses": sorted(client.scheduler_info()["workers"]),
    }
    with open("pids.json.tmp", "w") as f:
        json.dump(pids, f)
    os.rename("pids.json.tmp", "pids.json")
    if os.environ.get("RETIRE_ONE"):
        client.retire_workers(pids["addresses"][:1], close_workers=True)
    time.sleep(600)
"""


@pytest.mark.parametrize("victim", ["worker", "scheduler"])
def test_a_killed_rank_ends_the_job_within_bounded_time(
    tmp_path: Path, background: list[subprocess.Popen[bytes]], victim: str
) -> None:
    script = write(tmp_path / "killable.py", KILLABLE)
    process = start(background, 4, sys.executable, str(script), cwd=tmp_path)
    pids = wait_for_json(tmp_path / "pids.json", process, timeout=90)
    pid = pids["workers"][0] if victim == "worker" else pids["scheduler"]
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    returncode = process.wait(timeout=60)
    assert returncode != 0
    assert time.monotonic() - killed < 30


def test_a_worker_leaving_while_its_rank_lives_ends_the_job(
    tmp_path: Path, background: list[subprocess.Popen[bytes]]
) -> None:
    """No process dies, so mpirun sees nothing: the launcher's own watch acts."""
    script = write(tmp_path / "killable.py", KILLABLE)
    process = start(
        background,
        4,
        sys.executable,
        str(script),
        cwd=tmp_path,
        env={"RETIRE_ONE": "1"},
    )
    wait_for_json(tmp_path / "pids.json", process, timeout=90)
    retired = time.monotonic()
    returncode = process.wait(timeout=60)
    assert returncode != 0
    assert time.monotonic() - retired < 30
    stderr = (tmp_path / "stderr").read_text()
    assert "ending the MPI job" in stderr
    assert "hpcdask.mpi - ERROR" in stderr


# -- scheduler and workers only -------------------------------------------------------------


def test_serve_mode_with_a_scheduler_file(
    tmp_path: Path, background: list[subprocess.Popen[bytes]]
) -> None:
    scheduler_file = tmp_path / "scheduler.json"
    process = start(
        background,
        3,
        *HPCDASK_MPI,
        "serve",
        *FREE_DASHBOARD,
        "--nthreads",
        "2",
        "--scheduler-file",
        str(scheduler_file),
        cwd=tmp_path,
    )
    wait_for_json(scheduler_file, process, timeout=60)
    with Client(scheduler_file=str(scheduler_file), timeout=30) as client:
        client.wait_for_workers(2, timeout=60)
        info = client.scheduler_info()["workers"].values()
        assert sorted(w["name"] for w in info) == [1, 2]
        assert all(w["nthreads"] == 2 for w in info)
        assert client.submit(sum, [1, 2, 3]).result() == 6
        client.shutdown()
    assert process.wait(timeout=60) == 0
    stderr = (tmp_path / "stderr").read_text()
    assert unexpected_lines(stderr) == [], stderr
