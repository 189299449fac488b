"""The one-node Son of Grid Engine test site (ci/sge-up.sh) does what the SGE
adapter's tests will rely on: jobs run and write their output, arrays, the smp
parallel environment, h_rt, Eqw with its reason, qacct, a queue that keeps jobs
pending, and a plain ``qsub`` that is still Slurm's Torque wrapper.

SGE's commands run with ``sge.env`` only (see ``tests/integration/conftest.py``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import wait_for
from tests.integration.sge_site import SGE, SGEJobs

pytestmark = pytest.mark.timeout(120)


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def wait_gone(sge: SGE, job_id: str, timeout: float = 30.0) -> None:
    wait_for(lambda: job_id not in sge.queued(), timeout, f"SGE job {job_id} to end")


def qacct(sge: SGE, job_id: str) -> list[dict[str, str]]:
    """``qacct -j ID`` as one dict per record (an array has one per task)."""
    wait_for(
        lambda: sge.run("qacct", "-j", job_id, check=False).returncode == 0,
        15,
        f"the accounting record of job {job_id}",
    )
    records: list[dict[str, str]] = []
    for line in sge.run("qacct", "-j", job_id).stdout.splitlines():
        if line.startswith("====="):
            records.append({})
        elif records and line.strip():
            key, _, value = line.partition(" ")
            records[-1][key] = value.strip()
    return records


def test_plain_qsub_is_still_slurms_torque_wrapper(sge: SGE) -> None:
    # this process's PATH: Slurm's qsub (the PBS tests use it), no SGE
    plain = shutil.which("qsub")
    assert plain is not None
    assert not Path(plain).resolve().is_relative_to(sge.root)
    owner = subprocess.run(
        ["dpkg-query", "-S", str(Path(plain).resolve())],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert owner.startswith("slurm-wlm-torque:"), owner
    assert str(sge.root) not in os.environ.get("PATH", "")
    # SGE's environment: SGE's qsub first
    assert sge.env["SGE_ROOT"] == str(sge.root)
    assert sge.env["SGE_CELL"] == "default"
    sge_qsub = shutil.which("qsub", path=sge.env["PATH"])
    assert sge_qsub == str(sge.root / "bin" / "lx-amd64" / "qsub")
    help_text = sge.run("qsub", "-help").stdout
    assert help_text.splitlines()[0] == "SGE 8.1.9"


def test_job_runs_and_its_output_appears(
    sge: SGE, sge_jobs: SGEJobs, tmp_path: Path
) -> None:
    job = script(tmp_path / "hello.sh", 'echo "hello from $JOB_ID in $QUEUE"\n')
    out = tmp_path / "hello.out"
    started = time.monotonic()
    job_id = sge_jobs.submit("-N", "hx-hello", "-o", str(out), "-j", "y", str(job))
    assert job_id.isdigit()
    wait_gone(sge, job_id)
    elapsed = time.monotonic() - started
    assert out.read_text() == f"hello from {job_id} in all.q\n"
    assert elapsed < 15, f"a trivial job took {elapsed:.1f} s from qsub to its end"


def test_array_of_four_runs_four_tasks(
    sge: SGE, sge_jobs: SGEJobs, tmp_path: Path
) -> None:
    job = script(tmp_path / "task.sh", 'echo "task $SGE_TASK_ID of $JOB_ID"\n')
    out = sge.run(
        "qsub",
        "-terse",
        "-t",
        "1-4",
        "-o",
        f"{tmp_path}/task.$TASK_ID",
        "-j",
        "y",
        str(job),
    ).stdout.strip()
    job_id, _, tasks = out.partition(".")
    sge_jobs.ids.append(job_id)
    assert tasks == "1-4:1"  # `qsub -terse` of an array prints ID.FIRST-LAST:STEP
    wait_gone(sge, job_id)
    outputs = sorted(p.name for p in tmp_path.glob("task.*") if p.name != "task.sh")
    assert outputs == ["task.1", "task.2", "task.3", "task.4"]
    for i in range(1, 5):
        assert (tmp_path / f"task.{i}").read_text() == f"task {i} of {job_id}\n"


def test_pe_smp_gives_the_job_its_slots(
    sge: SGE, sge_jobs: SGEJobs, tmp_path: Path
) -> None:
    job = script(tmp_path / "pe.sh", 'echo "$NSLOTS $PE"; cat "$PE_HOSTFILE"\n')
    out = tmp_path / "pe.out"
    job_id = sge_jobs.submit("-pe", "smp", "2", "-o", str(out), "-j", "y", str(job))
    wait_gone(sge, job_id)
    first, host_line = out.read_text().splitlines()
    assert first == "2 smp"
    # PE_HOSTFILE: host, slots, queue instance, processor range
    assert host_line.split()[1:3] == ["2", "all.q@vm"]
    record = qacct(sge, job_id)[0]
    assert (record["granted_pe"], record["slots"]) == ("smp", "2")


def test_h_rt_kills_an_over_long_job(
    sge: SGE, sge_jobs: SGEJobs, tmp_path: Path
) -> None:
    job = script(tmp_path / "long.sh", "echo started; sleep 60; echo finished\n")
    out = tmp_path / "long.out"
    started = time.monotonic()
    job_id = sge_jobs.submit("-l", "h_rt=0:0:2", "-o", str(out), "-j", "y", str(job))
    wait_gone(sge, job_id, timeout=30)
    elapsed = time.monotonic() - started
    assert elapsed < 20, f"h_rt=2 s job ended after {elapsed:.1f} s"
    assert out.read_text() == "started\n"
    record = qacct(sge, job_id)[0]
    assert record["failed"].startswith("37")  # "37  : qmaster enforced h_rt, ..."
    assert record["exit_status"].split()[0] == "137"  # SIGKILL


def test_eqw_job_shows_its_reason(sge: SGE, sge_jobs: SGEJobs, tmp_path: Path) -> None:
    job = script(tmp_path / "eqw.sh", "echo never\n")
    missing = tmp_path / "missing" / "dir" / "out"
    job_id = sge_jobs.submit("-o", str(missing), str(job))
    wait_for(lambda: sge.states(job_id) == {"Eqw"}, 20, f"job {job_id} in Eqw")
    detail = sge.run("qstat", "-j", job_id).stdout
    reason = [line for line in detail.splitlines() if line.startswith("error reason")]
    assert len(reason) == 1
    assert f'can\'t open output file "{missing}"' in reason[0]
    sge.run("qdel", job_id)
    wait_gone(sge, job_id)


def test_qacct_reports_an_ended_job(
    sge: SGE, sge_jobs: SGEJobs, tmp_path: Path
) -> None:
    job = script(tmp_path / "fail.sh", "echo about to fail >&2; exit 3\n")
    job_id = sge_jobs.submit(
        "-N", "hx-exit3", "-o", "/dev/null", "-e", "/dev/null", str(job)
    )
    wait_gone(sge, job_id)
    (record,) = qacct(sge, job_id)
    assert record["jobnumber"] == job_id
    assert record["jobname"] == "hx-exit3"
    assert record["qname"] == "all.q"
    assert record["failed"] == "0"  # the job ran; its own exit code is separate
    assert record["exit_status"] == "3"


def test_script_shell_is_bin_sh_unless_dash_S(
    sge: SGE, sge_jobs: SGEJobs, tmp_path: Path
) -> None:
    # shell_start_mode posix_compliant (SGE's default): the #! line is ignored
    # and the queue's shell (/bin/sh) runs the script, unless -S names one
    job = tmp_path / "shell.sh"
    job.write_text('#!/bin/bash\necho "${BASH_VERSION:-no bash}"\n')
    plain, with_s = tmp_path / "plain.out", tmp_path / "with_s.out"
    a = sge_jobs.submit("-o", str(plain), "-j", "y", str(job))
    b = sge_jobs.submit("-S", "/bin/bash", "-o", str(with_s), "-j", "y", str(job))
    wait_gone(sge, a)
    wait_gone(sge, b)
    assert plain.read_text() == "no bash\n"
    assert with_s.read_text().strip()[0].isdigit()  # e.g. 5.2.15(1)-release


def test_down_q_keeps_a_job_pending(
    sge: SGE, sge_jobs: SGEJobs, tmp_path: Path
) -> None:
    job = script(tmp_path / "never.sh", "echo never\n")
    job_id = sge_jobs.submit("-q", "down.q", "-o", "/dev/null", "-j", "y", str(job))
    wait_for(lambda: sge.states(job_id) == {"qw"}, 10, f"job {job_id} pending")
    time.sleep(3)  # three scheduler runs (schedule_interval 1 s)
    assert sge.states(job_id) == {"qw"}
    detail = sge.run("qstat", "-j", job_id).stdout
    assert 'queue instance "down.q@vm" dropped because it is disabled' in detail
    deleted = sge.run("qdel", job_id).stdout
    assert deleted == f"root has deleted job {job_id}\n"
    wait_gone(sge, job_id)
