"""A user's clusters in the queue: tags, owners, `hpcdask jobs` and `cancel`,
from saved real squeue output (the tag column added) and a FakeRunner."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from hpcdask import cli
from hpcdask.errors import BatchCommandError
from hpcdask.listing import Owner, group_by_cluster, owner_of, render_groups
from hpcdask.models import ClusterTag
from hpcdask.runner import Completed, FakeRunner, host_name, process_started
from hpcdask.systems.base import CommandBackend
from hpcdask.systems.pbs import PBS
from hpcdask.systems.slurm import Slurm

FIXTURES = Path(__file__).parent.parent / "fixtures"


def ok(stdout: str = "") -> Completed:
    return Completed(("x",), 0, stdout, "")


def tag_of_this_process(nonce: str = "a1b2c3") -> ClusterTag:
    started = process_started(os.getpid())
    assert started is not None
    return ClusterTag(host_name(), os.getpid(), int(started), nonce)


def tag_of_a_dead_process() -> ClusterTag:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = process_started(child.pid) or 0.0
    child.wait()
    return ClusterTag(host_name(), child.pid, int(started), "dead01")


def listed(fixture: str, name: str, tag: ClusterTag | str | None) -> str:
    """Saved squeue lines with the name and comment columns the listing adds."""
    text = (FIXTURES / "slurm" / fixture).read_text()
    comment = "(null)" if tag is None else str(tag)
    return "".join(f"{line}|{name}|{comment}\n" for line in text.splitlines())


def test_tags_round_trip_and_refuse_anything_else() -> None:
    tag = ClusterTag("login1.site.org", 4242, 1_800_000_000, "ab12cd")
    assert str(tag) == "hpcdask:login1.site.org:4242:1800000000:ab12cd"
    assert ClusterTag.parse(str(tag)) == tag
    for bad in ("", "(null)", "hpcdask:", "hpcdask:h:1:2", "hpcdask:h:x:2:n",
                "hpcdask:h:1:2:n;rm", "other:h:1:2:n"):  # fmt: skip
        assert ClusterTag.parse(bad) is None


def test_slurm_directive_and_listing_carry_the_tag() -> None:
    tag = tag_of_this_process()
    assert Slurm().tag_directives(tag) == [f"--comment={tag}"]
    assert Slurm().list_argv("ana") == [
        "squeue", "--noheader", "--array", "--user=ana",
        "--format=%i|%T|%r|%N|%V|%S|%e|%l|%L|%j|%k",
    ]  # fmt: skip
    stdout = listed("squeue_running.txt", "w", tag) + listed(
        "squeue_pending.txt", "other", None
    )
    jobs = Slurm().parse_listing(stdout, "ana")
    assert [(j.job_id, j.name, j.tag) for j in jobs] == [
        ("93", "w", tag),
        ("95", "other", None),
    ]


def test_pbs_tag_is_a_job_variable_read_from_variable_list() -> None:
    """Hand-written PBS Pro qstat -f (labelled in tests/fixtures/README.md):
    Variable_List holds HPCDASK_CLUSTER."""
    tag = ClusterTag("login1", 77, 1_800_000_000, "beef01")
    assert PBS().tag_directives(tag) == [f"-v HPCDASK_CLUSTER={tag}"]
    text = (FIXTURES / "pbs" / "qstat_f_pbspro.txt").read_text()
    tagged = text.replace(
        "Variable_List = PBS_O_HOME=/home/alice,",
        f"Variable_List = HPCDASK_CLUSTER={tag},PBS_O_HOME=/home/alice,",
        1,
    )
    jobs = PBS().parse_listing(tagged, "alice")
    assert [j.tag for j in jobs] == [tag, None]


def test_owners_alive_gone_elsewhere() -> None:
    host = host_name()
    assert owner_of(tag_of_this_process(), host) is Owner.ALIVE
    assert owner_of(tag_of_a_dead_process(), host) is Owner.GONE
    # a live pid that started at another time is not the owner (pid reused)
    reused = tag_of_this_process()
    reused = ClusterTag(reused.host, reused.pid, reused.started - 3600, "r")
    assert owner_of(reused, host) is Owner.GONE
    assert owner_of(tag_of_this_process(), "elsewhere") is Owner.ELSEWHERE
    assert owner_of(None, host) is Owner.NONE


async def test_jobs_group_by_cluster_whatever_their_names() -> None:
    alive, dead = tag_of_this_process(), tag_of_a_dead_process()
    stdout = (
        listed("squeue_array_running.txt", "run-a", alive)
        + listed("squeue_running.txt", "other-name", dead)
        + listed("squeue_pending.txt", "mine-not-hpcdask", None)
    )
    backend = CommandBackend(Slurm(), FakeRunner({"squeue": [ok(stdout)]}))
    groups = group_by_cluster(await backend.list_jobs("ana"), host_name())
    assert [(g.tag, g.owner, len(g.jobs)) for g in groups] == [
        (alive, Owner.ALIVE, 4),
        (dead, Owner.GONE, 1),
        (None, Owner.NONE, 1),
    ]
    text = render_groups(groups, now=1_800_000_000.0)
    assert f"cluster {dead} (process {dead.pid}: gone)" in text
    assert "jobs of no hpcdask cluster" in text


def run_cli(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue() + err.getvalue()


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeRunner, ClusterTag, ClusterTag]:
    """A queue with a live cluster's 4 jobs, a dead cluster's job, a stranger's."""
    alive, dead = tag_of_this_process(), tag_of_a_dead_process()
    stdout = (
        listed("squeue_array_running.txt", "run-a", alive)
        + listed("squeue_running.txt", "run-b", dead)
        + listed("squeue_pending.txt", "run-a", None)
    )
    runner = FakeRunner({"squeue": [ok(stdout)], "scancel": [ok()]})
    monkeypatch.setattr(
        cli, "queue_backend", lambda system: CommandBackend(Slurm(), runner)
    )
    return runner, alive, dead


def cancels(runner: FakeRunner) -> list[tuple[str, ...]]:
    return [c for c in runner.calls if c[0] == "scancel"]


def test_cancel_takes_dead_clusters_and_leaves_live_ones(
    queue: tuple[FakeRunner, ClusterTag, ClusterTag],
) -> None:
    runner, alive, _dead = queue
    code, out = run_cli("cancel", "--system", "slurm")
    assert code == 0
    assert cancels(runner) == [("scancel", "93")]  # by id, the dead cluster's only
    assert f"left alone: 4 job(s) of cluster {alive}" in out
    assert f"--cluster {alive}" in out


def test_cancel_a_named_live_cluster_and_by_job_name(
    queue: tuple[FakeRunner, ClusterTag, ClusterTag],
) -> None:
    runner, alive, _ = queue
    assert run_cli("cancel", "--cluster", str(alive), "--system", "slurm")[0] == 0
    assert cancels(runner) == [("scancel", "98_2", "98_3", "98_1", "98_0")]
    runner.calls.clear()
    # a name restricts to those jobs; the untagged job of that name is not ours
    code, out = run_cli("cancel", "run-a", "--system", "slurm")
    assert code == 0 and cancels(runner) == [] and "cancelled 0 job(s)" in out


def test_cancel_dry_run_and_jobs_listing(
    queue: tuple[FakeRunner, ClusterTag, ClusterTag],
) -> None:
    runner, alive, dead = queue
    code, out = run_cli("cancel", "--dry-run", "--system", "slurm")
    assert code == 0 and cancels(runner) == [] and "would cancel 1 job(s): 93" in out
    code, out = run_cli("jobs", "--system", "slurm")
    assert code == 0
    assert str(alive) in out and str(dead) in out
    assert "no hpcdask cluster" not in out  # untagged jobs only with --all
    assert (
        "jobs of no hpcdask cluster" in run_cli("jobs", "--all", "--system", "slurm")[1]
    )


async def test_a_failing_listing_is_an_error() -> None:
    stderr = "slurm_load_jobs error: Unable to contact slurm controller"
    runner = FakeRunner({"squeue": [Completed(("squeue",), 1, "", stderr)]})
    with pytest.raises(BatchCommandError, match="squeue failed: slurm_load_jobs"):
        await CommandBackend(Slurm(), runner).list_jobs("ana")


async def test_listing_and_status_run_with_epoch_times() -> None:
    runner = FakeRunner({"squeue": [ok("")]})
    backend = CommandBackend(Slurm(), runner)
    await backend.list_jobs("ana")
    await backend.status(["1"])
    assert runner.environments == [{"SLURM_TIME_FORMAT": "%s"}] * 2


async def test_sge_tags_are_job_contexts_read_with_qstat_j() -> None:
    """Real SGE 8.1.9 output: qstat -xml lists the jobs, qstat -j their
    contexts (tests/fixtures/sge/)."""
    from hpcdask.systems import SGE
    from hpcdask.systems.sge_backend import SGEBackend

    sge_fixtures = FIXTURES / "sge"
    tag = ClusterTag("vm", 4242, 1_800_000_000, "c0ffee")
    assert SGE().tag_directives(tag) == [f"-ac HPCDASK_CLUSTER={tag}"]
    listing = (sge_fixtures / "qstat_xml_r_user.txt").read_text()
    contexts = (sge_fixtures / "qstat_j_context.txt").read_text()
    number = contexts.split("job_number:", 1)[1].split()[0]
    contexts = contexts.replace(
        "context:                    hpcdask_cluster=3f2a9c",
        f"context:                    HPCDASK_CLUSTER={tag}",
    )
    runner = FakeRunner(
        {"qstat": lambda argv: ok(contexts if "-j" in argv else listing)}
    )
    jobs = await SGEBackend(SGE(), runner, user="root").list_jobs("root")
    assert jobs and all(j.name for j in jobs)
    assert {j.job_id.split(".")[0]: j.tag for j in jobs}.get(number) == tag
    assert sum(j.tag is not None for j in jobs) == sum(
        j.job_id.split(".")[0] == number for j in jobs
    )
    assert runner.calls[-1][:2] == ("qstat", "-j")
