"""What real queues print and do (issue #12), from saved real Slurm output
(tests/fixtures/slurm/queue/, ci/capture-queue-fixtures.sh) and, for PBS Pro and
Torque, output written from their documentation (labelled in the fixtures'
README). No processes run: a FakeRunner answers."""

from __future__ import annotations

from pathlib import Path

import dask.config
import pytest

from hpcdask.config import adaptive_settings, resolve_job_options
from hpcdask.errors import InvalidOptionError
from hpcdask.jobs import JobTable
from hpcdask.models import JobState
from hpcdask.runner import Completed, FakeRunner
from hpcdask.script import render_job_script
from hpcdask.systems.base import CommandBackend
from hpcdask.systems.pbs import PBS
from hpcdask.systems.slurm import STATES, Slurm, expand_array_ids, parse_squeue

QUEUE = Path(__file__).parent.parent / "fixtures" / "slurm" / "queue"
PBS_FIXTURES = Path(__file__).parent.parent / "fixtures" / "pbs"


def saved(name: str) -> str:
    return (QUEUE / name).read_text()


def ok(stdout: str = "", stderr: str = "") -> Completed:
    return Completed(("x",), 0, stdout, stderr)


# -- 4. arrays: holes, long lists, steps --------------------------------------------


def test_status_asks_one_line_per_array_element() -> None:
    argv = Slurm().status_argv(["370_0", "370_2", "371_4"])
    assert "--array" in argv and argv[-1] == "--jobs=370,371"
    stdout = saved("squeue_array_holes_array_epoch.txt")
    cancelled = {f"370_{i}" for i in (1, 3, 5, 10, 20, 33, 47)}
    assert not cancelled & set(parse_squeue(stdout))  # no record of their own
    jobs = Slurm().parse_status(stdout, [f"370_{i}" for i in range(100)])
    pending = {j for j, s in jobs.items() if s.state is JobState.PENDING}
    assert pending == {f"370_{i}" for i in range(100)} - cancelled
    # cancelled while pending, not gone: never a failed start by mistake
    assert {jobs[j].state for j in cancelled} == {JobState.CANCELLED}


def test_compressed_and_cut_array_lines_give_what_they_show() -> None:
    holes, step = saved("squeue_array_holes.txt").splitlines()
    shown = expand_array_ids(holes.split("|")[0])  # "370_[0,2,...,34-4" (cut)
    assert shown[:4] == ["370_0", "370_2", "370_4", "370_6"] and shown[-1] == "370_32"
    assert "370_1" not in shown and not any(s.startswith("370_34") for s in shown)
    assert expand_array_ids(step.split("|")[0]) == [f"371_{i}" for i in range(0, 41, 2)]


# -- 7. SLURM_TIME_FORMAT -----------------------------------------------------------


def test_hpcdask_asks_for_epoch_times_whatever_the_user_set() -> None:
    assert Slurm.command_env == {"SLURM_TIME_FORMAT": "%s"}
    (epoch,) = parse_squeue(saved("squeue_running_epoch.txt")).values()
    assert (epoch.submit_time, epoch.start_time, epoch.time_limit) == (
        1796034833.0,
        1796034833.0,
        600.0,
    )
    # what a user's "relative" format gives: times hpcdask cannot read, which
    # is why its own calls set the format
    (relative,) = parse_squeue(saved("squeue_running_relative.txt")).values()
    assert relative.start_time is None


# -- 6, 14: requeue, preemption, SPECIAL_EXIT --------------------------------------


def test_requeued_preempted_and_special_exit_states() -> None:
    (requeued,) = parse_squeue(saved("squeue_requeued_epoch.txt")).values()
    assert requeued.state is JobState.PENDING and requeued.start_time is None
    assert requeued.reason == "BeginTime"
    (held,) = parse_squeue(saved("squeue_special_exit_epoch.txt")).values()
    assert held.state is JobState.HELD
    assert held.reason == "job requeued in held state"
    jobs = parse_squeue(saved("squeue_preempted_epoch.txt"))
    assert jobs["378"].state is JobState.PREEMPTED  # PreemptMode=CANCEL
    assert jobs["377"].state is JobState.PENDING  # PreemptMode=REQUEUE
    assert STATES["BOOT_FAIL"] is JobState.NODE_FAIL


# -- 9, 10: many ids, arrays at the site's limit ------------------------------------


async def test_status_and_cancel_of_many_ids_go_in_chunks() -> None:
    runner = FakeRunner({"squeue": [ok("")], "scancel": [ok()]})
    backend = CommandBackend(Slurm(), runner)
    ids = [str(100_000 + i) for i in range(12_000)]
    statuses = await backend.status(ids)
    assert len(statuses) == 12_000
    calls = [c for c in runner.calls if c[0] == "squeue"]
    assert len(calls) == 6
    assert max(len(arg) for c in calls for arg in c) < 131_072  # MAX_ARG_STRLEN
    await backend.cancel(ids)
    assert [len(c) - 1 for c in runner.calls if c[0] == "scancel"] == [2000] * 6


async def test_the_site_max_array_size_is_read_once() -> None:
    runner = FakeRunner({"scontrol": [ok(saved("scontrol_show_config.txt"))]})
    backend = CommandBackend(Slurm(), runner)
    assert await backend.max_array_size() == 1001
    assert await backend.max_array_size() == 1001
    assert runner.calls == [("scontrol", "show", "config")]
    assert "Invalid job array specification" in saved("sbatch_array_too_large.stderr")


# -- 1. PBS: finished jobs (hand-written PBS Pro and Torque output) ------------------


FINISHED_PBSPRO = (PBS_FIXTURES / "qstat_f_pbspro_finished.stderr").read_text()
FINISHED_TORQUE = (PBS_FIXTURES / "qstat_f_torque_unknown.stderr").read_text()


def test_pbs_recognises_finished_and_unknown_jobs() -> None:
    pbs = PBS()
    # PBS Pro with job history (exit 35), one id finished among live ones
    assert pbs.gone_job_ids(35, FINISHED_PBSPRO, ["102.pbs", "103.pbs"]) == {"102.pbs"}
    assert pbs.history_argv(["102.pbs", "103.pbs"], FINISHED_PBSPRO) == [
        "qstat", "-x", "-f", "102.pbs",
    ]  # fmt: skip
    # Torque: "Unknown Job Id Error 102.srv" names the id, not the word "Error"
    assert pbs.gone_job_ids(153, FINISHED_TORQUE, ["102", "104"]) == {"102"}
    assert pbs.history_argv(["102"], FINISHED_TORQUE) is None


async def test_a_pbs_job_that_finished_by_itself_ends_and_cancel_is_quiet(
    tmp_path: Path,
) -> None:
    history = (PBS_FIXTURES / "qstat_xf_pbspro_finished.txt").read_text()
    runner = FakeRunner(
        {
            "qsub": [ok("102.pbs\n")],
            "qstat": lambda argv: (
                ok(history)
                if "-x" in argv
                else Completed(argv, 35, "", FINISHED_PBSPRO)
            ),
            "qdel": [Completed(("qdel",), 35, "", FINISHED_PBSPRO)],
        }
    )
    opts = resolve_job_options(
        "pbs", cores=1, memory="1GB", log_directory=str(tmp_path)
    )
    table = JobTable(CommandBackend(PBS(), runner), opts)
    (record,) = await table.submit(["w-0"], "")
    await table.cancel([record])  # qdel fails: the job had finished; no error
    assert record.state is JobState.COMPLETED and record.status.exit_code == "0"
    assert table.controller_error == ""


def test_pbs_status_parsing_matches_ids_by_number() -> None:
    text = (PBS_FIXTURES / "qstat_f_pbspro.txt").read_text()
    statuses = PBS().parse_status(text, ["4821", "4822.pbs01", "9999"])
    assert set(statuses) == {"4821", "4822.pbs01"}


# -- 11. adapt() bounds --------------------------------------------------------------


def test_adapt_bounds_in_workers_round_to_whole_jobs() -> None:
    opts = resolve_job_options("slurm", cores=4, memory="4GB", processes=4)
    assert adaptive_settings(opts, maximum=2).params.maximum_jobs == 1
    params = adaptive_settings(opts, minimum=1, maximum=2).params
    assert (params.minimum_jobs, params.maximum_jobs) == (1, 1)
    assert adaptive_settings(opts, maximum_cores=10).params.maximum_jobs == 2
    with pytest.raises(
        InvalidOptionError, match="minimum 5 workers, maximum 6 workers"
    ):
        adaptive_settings(opts, minimum=5, maximum=6)
    with dask.config.set({"hpcdask.adaptive.startup-allowance": "30s"}):
        margin = opts.walltime - opts.worker_lifetime
        assert adaptive_settings(opts).params.replace_ahead == margin + 30
    with (
        dask.config.set({"hpcdask.adaptive.startup-allowance": "soon"}),
        pytest.raises(InvalidOptionError, match="startup-allowance"),
    ):
        adaptive_settings(opts)


# -- 12. names that use the prologue's variables -------------------------------------


def test_array_names_are_expanded_after_the_prologue() -> None:
    opts = resolve_job_options(
        "slurm",
        cores=1,
        memory="1GB",
        name="test-$MY_VAR",
        job_script_prologue=["MY_VAR=value"],
    )
    lines = render_job_script(
        opts, Slurm(), "tls://h:1", ["test-$MY_VAR-0", "test-$MY_VAR-1"]
    ).splitlines()
    assert lines.index("MY_VAR=value") < next(
        i for i, line in enumerate(lines) if line.startswith("HPCDASK_NAMES=")
    )
