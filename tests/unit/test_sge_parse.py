"""Grid Engine parsing, fed with real saved output of Son of Grid Engine 8.1.9
(tests/fixtures/sge/, see tests/fixtures/README.md) and one labelled hand-written
sample of Univa/Altair differences (tests/fixtures/uge-handwritten/)."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest

from hpcdask.models import JobState
from hpcdask.systems.sge import SGE
from hpcdask.systems.sge_output import (
    STATES,
    expand_tasks,
    parse_error_reasons,
    parse_qacct,
    parse_qdel_unknown,
    parse_qstat_xml,
    parse_terse_job_id,
    state_of,
)

FIXTURES = Path(__file__).parent.parent / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / "sge" / name).read_text()


def local(text: str) -> float:
    return time.mktime(datetime.fromisoformat(text).timetuple())


# -- qstat -xml -----------------------------------------------------------------


def test_qstat_xml_every_state_at_once() -> None:
    tasks = parse_qstat_xml(fixture("qstat_xml_mixed.txt"))
    assert set(tasks) == {"17", "18", "19", "20", "21.1", "21.2", "21.3"}
    running = tasks["17"]
    assert (running.name, running.owner, running.letters) == (
        "hx-m-running",
        "root",
        "r",
    )
    assert running.status.state is JobState.RUNNING
    assert running.status.node == "vm"  # from all.q@vm
    assert running.status.start_time == local("2026-11-30T10:18:07")
    assert tasks["18"].status.state is JobState.PENDING
    assert tasks["18"].status.start_time is None
    assert tasks["18"].status.submit_time == local("2026-11-30T10:18:07")
    assert tasks["19"].status.state is JobState.HELD
    assert tasks["19"].status.reason == "hqw: on hold"
    # in error: held until the backend deletes it and reports a failed start
    assert tasks["20"].in_error and tasks["20"].status.state is JobState.HELD
    assert tasks["20"].status.reason == "Eqw: error"
    # the running task of array 21 and its pending rest, a comma list
    assert tasks["21.1"].status.state is JobState.RUNNING
    assert [tasks[f"21.{i}"].letters for i in (2, 3)] == ["qw", "qw"]
    # root is the only user here: -u '*' shows the same
    assert parse_qstat_xml(fixture("qstat_xml_all_users.txt")) == tasks


def test_qstat_xml_single_states() -> None:
    def only(name: str) -> tuple[str, JobState]:
        ((job_id, task),) = parse_qstat_xml(fixture(name)).items()
        return job_id, task.status.state

    assert only("qstat_xml_pending.txt") == ("7", JobState.PENDING)
    assert only("qstat_xml_running.txt") == ("8", JobState.RUNNING)
    assert only("qstat_xml_held.txt") == ("12", JobState.HELD)
    assert only("qstat_xml_eqw.txt") == ("13", JobState.HELD)
    assert only("qstat_xml_suspended.txt") == ("15", JobState.SUSPENDED)
    assert only("qstat_xml_deleting_dr.txt") == ("16", JobState.COMPLETING)
    assert only("qstat_xml_r_transferring.txt") == ("33", JobState.RUNNING)
    assert parse_qstat_xml(fixture("qstat_xml_empty.txt")) == {}


def test_qstat_xml_arrays() -> None:
    pending = parse_qstat_xml(fixture("qstat_xml_array_pending.txt"))
    assert sorted(pending) == ["9.1", "9.2", "9.3", "9.4"]
    step = parse_qstat_xml(fixture("qstat_xml_array_step_pending.txt"))
    assert sorted(step, key=lambda i: int(i.split(".")[1])) == [
        "10.2", "10.4", "10.6", "10.8", "10.10"
    ]  # fmt: skip
    partly = parse_qstat_xml(fixture("qstat_xml_array_partly_running.txt"))
    states = {job_id: task.status.state for job_id, task in partly.items()}
    assert states == {
        "11.1": JobState.RUNNING,
        "11.2": JobState.RUNNING,
        "11.3": JobState.PENDING,
        "11.4": JobState.PENDING,
    }


def test_qstat_xml_r_gives_the_walltime() -> None:
    tasks = parse_qstat_xml(fixture("qstat_xml_r_mixed.txt"))
    assert tasks["27"].status.time_limit == 600  # -l h_rt=600, -pe smp 2
    # -l h_rt=0:10:0 is shown in seconds too; every task of the array has it
    assert {tasks[f"28.{i}"].status.time_limit for i in (1, 2, 3)} == {600}
    assert tasks["29"].status.time_limit == 60
    assert tasks["30"].status.time_limit is None  # no h_rt asked
    # both tasks of an array in error are one line, "1,2"
    assert tasks["32.1"].in_error and tasks["32.2"].in_error
    assert parse_qstat_xml(fixture("qstat_xml_r_user.txt")) == tasks


def test_finished_jobs_listed_as_zombies_are_completed() -> None:
    tasks = parse_qstat_xml(fixture("qstat_xml_finished_zombies.txt"))
    assert tasks
    assert {t.status.state for t in tasks.values()} == {JobState.COMPLETED}


def test_univa_handwritten_sample_with_job_class_and_milliseconds() -> None:
    text = (FIXTURES / "uge-handwritten" / "qstat_xml_jclass_ms.txt").read_text()
    assert "HAND-WRITTEN SAMPLE" in text
    tasks = parse_qstat_xml(text)
    assert sorted(tasks) == ["179556.2", "179556.3", "179556.4"]
    assert tasks["179556.2"].status.start_time == local("2016-11-01T16:40:15")
    assert tasks["179556.3"].status.submit_time == local("2016-11-01T16:40:01")
    assert tasks["179556.2"].status.node == "node017.example.org"


def test_qstat_xml_that_is_not_xml_is_an_error() -> None:
    with pytest.raises(ValueError, match="no XML"):
        parse_qstat_xml("error: commlib error: got select error (Connection refused)")


# -- the state table ------------------------------------------------------------------


def test_every_documented_state_is_in_the_table() -> None:
    # sge_status(5) of 8.1.9, every letter combination it lists
    documented = [
        "qw",
        "Rq",
        "hqw",
        "hRwq",
        "r",
        "hr",
        "t",
        "Rr",
        "Rt",
        "s",
        "ts",
        "S",
        "tS",
        "T",
        "tT",
        "Rs",
        "Rts",
        "RS",
        "RtS",
        "RT",
        "RtT",
        "Eqw",
        "Ehqw",
        "EhRqw",
        "dr",
        "dt",
        "dRr",
        "dRt",
        "ds",
        "dS",
        "dT",
        "dRs",
        "dRS",
        "dRT",
        "z",
    ]
    assert sorted(STATES) == sorted(documented)
    assert {state_of(s) for s in ("dr", "dt", "dRs")} == {JobState.COMPLETING}
    assert {state_of(s) for s in ("Eqw", "Ehqw", "EhRqw")} == {JobState.HELD}
    assert {state_of(s) for s in ("s", "S", "T", "RtT")} == {JobState.SUSPENDED}


def test_unlisted_combinations_are_read_letter_by_letter() -> None:
    assert state_of("hRqw") is JobState.HELD
    assert state_of("dhr") is JobState.COMPLETING
    assert state_of("EdRr") is JobState.COMPLETING
    assert state_of("") is JobState.UNKNOWN
    assert state_of("x") is JobState.UNKNOWN


@pytest.mark.parametrize(
    ("spec", "tasks"),
    [
        ("1", [1]),
        ("1-4:1", [1, 2, 3, 4]),
        ("2-10:2", [2, 4, 6, 8, 10]),
        ("3,4", [3, 4]),
        ("1-3:1,7", [1, 2, 3, 7]),
        ("", []),
        ("x", []),
    ],
)
def test_expand_tasks(spec: str, tasks: list[int]) -> None:
    assert expand_tasks(spec) == tasks


# -- qstat -j: why a job is in error ----------------------------------------------------


def test_error_reasons() -> None:
    assert parse_error_reasons(fixture("qstat_j_eqw.txt")) == {
        "13": {
            1: 'can\'t open output file "/nonexistent/dir/out": '
            "No such file or directory"
        }
    }
    assert parse_error_reasons(fixture("qstat_j_eqw_exit100.txt")) == {
        "14": {1: "exit_status of job start = 100"}
    }
    many = parse_error_reasons(fixture("qstat_j_eqw_many.txt"))
    assert set(many) == {"31", "32"}
    assert many["32"][2].startswith('can\'t open output file "/nonexistent/2"')
    # a job with no error has no reason
    assert parse_error_reasons(fixture("qstat_j_running.txt")) == {}
    assert parse_error_reasons(fixture("qstat_j_unknown.txt")) == {}


# -- qacct: how a job that left the queue ended --------------------------------------


def test_qacct_single_records() -> None:
    def one(name: str) -> tuple[str, JobState, str, str]:
        ((job_id, status),) = parse_qacct(fixture(name)).items()
        return job_id, status.state, status.reason, status.exit_code

    assert one("qacct_completed.txt") == ("2", JobState.COMPLETED, "", "0")
    assert one("qacct_failed.txt") == ("6", JobState.FAILED, "exit code 3", "3")
    assert one("qacct_h_rt.txt") == (
        "23",
        JobState.TIMEOUT,
        "qmaster enforced h_rt, h_cpu, or h_vmem limit",
        "137",
    )
    assert one("qacct_deleted.txt") == (
        "22",
        JobState.FAILED,
        "failed 100: assumedly after job, killed by signal 9",
        "137",
    )
    status = parse_qacct(fixture("qacct_h_rt.txt"))["23"]
    assert status.start_time == local("2026-11-30T10:18:09")
    assert status.end_time == local("2026-11-30T10:18:13")
    assert status.submit_time == local("2026-11-30T10:18:09")
    assert status.node == "vm"


def test_qacct_array_and_many_jobs_in_one_call() -> None:
    array = parse_qacct(fixture("qacct_array.txt"))
    assert sorted(array) == ["3.1", "3.2", "3.3", "3.4"]
    assert {s.state for s in array.values()} == {JobState.COMPLETED}
    # qacct -o root -E -b TIME -j: every job of root that ended since TIME
    since = parse_qacct(fixture("qacct_owner_since.txt"))
    states = {job_id: status.state for job_id, status in since.items()}
    assert states == {
        "27": JobState.FAILED,  # deleted while running (-pe smp 2)
        "28.1": JobState.FAILED,  # its running array task, deleted
        "33": JobState.FAILED,  # deleted after it was transferred
        "36": JobState.COMPLETED,
        "37": JobState.FAILED,  # exit 3
        "38.1": JobState.COMPLETED,
        "38.2": JobState.COMPLETED,
        "39": JobState.TIMEOUT,  # h_rt=0:0:2
    }


def test_qacct_without_records() -> None:
    # nothing ended since: a summary table, no record
    assert parse_qacct(fixture("qacct_owner_since_none.txt")) == {}
    # no accounting file (accounting off, or no job ever ended): exit 1
    assert "no jobs running since startup" in fixture("qacct_no_file.txt")
    assert parse_qacct(fixture("qacct_no_file.txt")) == {}
    assert parse_qacct(fixture("qacct_unknown.txt")) == {}
    assert parse_qacct(fixture("qacct_deleted_pending.txt")) == {}


# -- qsub and qdel -------------------------------------------------------------------------


def test_qsub_terse() -> None:
    assert parse_terse_job_id(fixture("qsub_terse.txt")) == "2"
    assert parse_terse_job_id(fixture("qsub_terse_array.txt")) == "3"
    assert SGE().array_job_ids("3", 4) == ["3.1", "3.2", "3.3", "3.4"]
    for bad in ("", fixture("qsub_plain.txt"), fixture("qsub_bad_queue.stderr")):
        with pytest.raises(ValueError, match="no job id"):
            parse_terse_job_id(bad)


def test_qdel_says_which_ids_do_not_exist() -> None:
    assert parse_qdel_unknown(fixture("qdel_unknown.txt")) == {"999999"}
    assert parse_qdel_unknown(fixture("qdel_finished.txt")) == {"2"}
    assert parse_qdel_unknown(fixture("qdel_unknown_and_live.txt")) == {"999999"}
    for deleted in ("qdel_many.txt", "qdel_eqw_tasks.txt", "qdel_user_name.txt"):
        assert parse_qdel_unknown(fixture(deleted)) == set()
