"""SGECluster's pieces without processes: options and directives, the job script,
and the backend's calls (one qstat per poll, qstat -j for new Eqw jobs, qdel,
one qacct for jobs that left) answered by a FakeRunner from real saved output."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import warnings
from pathlib import Path

import dask.config
import pytest

from hpcdask.config import resolve_job_options, sge_site
from hpcdask.cost import job_resources
from hpcdask.errors import BatchCommandError, InvalidOptionError
from hpcdask.jobs import JobTable
from hpcdask.models import JobState
from hpcdask.options import JobOptions
from hpcdask.runner import Completed, FakeRunner
from hpcdask.script import render_job_script
from hpcdask.systems import make_backend
from hpcdask.systems import sge_backend as backend_module
from hpcdask.systems.sge import SGE
from hpcdask.systems.sge_backend import ACCOUNTING_WAIT, SGEBackend

FIXTURES = Path(__file__).parent.parent / "fixtures" / "sge"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def sge_options(**kwargs: object) -> JobOptions:
    return resolve_job_options("sge", **{"cores": 2, "memory": "2GB", **kwargs})


# -- options and directives ------------------------------------------------------------


def test_directives_as_dask_jobqueue_writes_them() -> None:
    opts = sge_options(
        queue="all.q",
        project="hpcdask",
        resource_spec="h_vmem=2G",
        walltime="01:00:00",
        job_extra_directives=["-m n"],
        log_directory="/logs",
    )
    assert SGE().render_directives(opts) == [
        "#$ -N dask-worker",
        "#$ -q all.q",
        "#$ -P hpcdask",
        "#$ -l h_vmem=2G",
        "#$ -l h_rt=01:00:00",
        "#$ -S /bin/bash",
        "#$ -cwd",
        "#$ -o /logs/dask-worker-$JOB_ID.out",
        "#$ -e /logs/dask-worker-$JOB_ID.err",
        "#$ -m n",
    ]


def test_array_parallel_environment_and_account() -> None:
    opts = sge_options(
        cores=8, parallel_environment="smp", account="grant7", log_directory="/l"
    )
    lines = SGE().render_directives(opts, array_size=4)
    assert "#$ -t 1-4" in lines
    assert "#$ -pe smp 8" in lines
    assert "#$ -A grant7" in lines
    # task i of array N is N.i: its logs carry both
    assert "#$ -e /l/dask-worker-$JOB_ID.$TASK_ID.err" in lines
    assert SGE().log_paths(opts, "7.3")[1] == "/l/dask-worker-7.3.err"
    # skipped like any directive (a site whose queues honour #! needs no -S)
    skipped = sge_options(job_directives_skip=["-S /bin/bash"])
    assert "#$ -S /bin/bash" not in SGE().render_directives(skipped)


def test_array_script_counts_tasks_from_one() -> None:
    opts = sge_options()
    script = render_job_script(opts, SGE(), "tls://h:1", ["w-0", "w-1", "w-2"])
    assert "HPCDASK_NAMES=(w-0 w-1 w-2)" in script
    assert 'HPCDASK_ARRAY_INDEX="$(( ${SGE_TASK_ID:-1} - 1 ))"' in script
    assert '--name "${HPCDASK_NAMES[$HPCDASK_ARRAY_INDEX]}"' in script


def test_project_is_sges_own_option_and_still_account_elsewhere() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no FutureWarning for SGE
        opts = sge_options(project="hpcdask")
    assert (opts.project, opts.account) == ("hpcdask", None)
    with pytest.warns(FutureWarning, match="'project' is deprecated"):
        slurm = resolve_job_options("slurm", cores=1, memory="1GB", project="P1")
    assert (slurm.account, slurm.project) == ("P1", None)


def test_jobqueue_sge_config_section_works_unchanged() -> None:
    section = {
        "cores": 4,
        "memory": "8GB",
        "processes": 2,
        "queue": "all.q",
        "project": "hpcdask",
        "resource-spec": "h_vmem=4G",
        "walltime": "02:00:00",
        "job-extra-directives": ["-R y"],
        "log-directory": "/logs",
    }
    with dask.config.set({"jobqueue.sge": section, "jobqueue.slurm.project": "X"}):
        opts = resolve_job_options("sge")
        slurm = resolve_job_options("slurm", cores=1, memory="1GB")
    assert (opts.cores, opts.memory, opts.processes) == (4, 8_000_000_000, 2)
    assert (opts.queue, opts.project, opts.resource_spec) == (
        "all.q",
        "hpcdask",
        "h_vmem=4G",
    )
    assert (opts.walltime, opts.job_extra_directives) == (7200, ("-R y",))
    # Slurm has no project of its own: jobqueue.slurm.project is not read
    assert slurm.project is None and slurm.account is None


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"project": "a:b"}, "project"),
        ({"project": "x\nid"}, "project"),
        ({"job_name": "1job"}, "job_name"),
        ({"job_name": "a@b"}, "job_name"),
        ({"parallel_environment": "smp;id"}, "parallel_environment"),
        ({"parallel_environment": "p/e"}, "parallel_environment"),
        ({"resource_spec": "h_vmem=1G $(id)"}, "resource_spec"),
    ],
)
def test_bad_sge_values_are_refused(kwargs: dict[str, object], option: str) -> None:
    with pytest.raises(InvalidOptionError, match=f"invalid {option}="):
        sge_options(**kwargs)


def test_sge_only_options_are_refused_elsewhere() -> None:
    with pytest.raises(InvalidOptionError, match="only sge jobs have it"):
        resolve_job_options("pbs", cores=1, memory="1GB", parallel_environment="smp")


def test_cost_meter_counts_slots() -> None:
    assert job_resources(sge_options(cores=8), SGE()).cores == 1  # no -pe: 1 slot
    pe = sge_options(cores=8, parallel_environment="smp")
    assert job_resources(pe, SGE()).cores == 8
    extra = sge_options(cores=8, job_extra_directives=["-pe mpi 16"])
    assert job_resources(extra, SGE()).cores == 16  # the later -pe wins


def test_where_sge_lives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SGE_ROOT", raising=False)
    monkeypatch.delenv("SGE_CELL", raising=False)
    assert sge_site() == (None, "default")
    monkeypatch.setenv("SGE_ROOT", "/opt/sge")
    assert sge_site() == ("/opt/sge", "default")
    with dask.config.set(
        {"hpcdask.sge.sge-root": "/site/ge", "hpcdask.sge.sge-cell": "c"}
    ):
        assert sge_site() == ("/site/ge", "c")
    backend = make_backend(sge_options())
    assert isinstance(backend, SGEBackend)
    assert backend.runner.settings == "/opt/sge/default/common/settings.sh"  # type: ignore[attr-defined]


# -- the backend ---------------------------------------------------------------------


def ok(stdout: str, stderr: str = "", code: int = 0) -> Completed:
    return Completed((), code, stdout, stderr)


class Queue:
    """Answers SGE's commands from saved output and counts them."""

    def __init__(self, qstat_xml: str) -> None:
        self.qstat_xml = qstat_xml
        self.qacct = ok(fixture("qacct_owner_since.txt"))
        self.qdel = ok(fixture("qdel_eqw_tasks.txt"))
        self.runner = FakeRunner(
            {
                "qstat": self.qstat,
                "qdel": lambda argv: dataclasses.replace(self.qdel, argv=argv),
                "qacct": lambda argv: dataclasses.replace(self.qacct, argv=argv),
            }
        )

    def qstat(self, argv: tuple[str, ...]) -> Completed:
        if "-j" in argv:
            return Completed(argv, 0, fixture("qstat_j_eqw_many.txt"))
        return Completed(argv, 0, self.qstat_xml)

    def programs(self) -> list[str]:
        return [" ".join(a[:2]) for a in self.runner.calls]


def backend(queue: Queue) -> SGEBackend:
    return SGEBackend(SGE(), queue.runner, user="root")


def test_a_poll_is_one_qstat() -> None:
    queue = Queue(fixture("qstat_xml_r_mixed.txt"))
    statuses = asyncio.run(backend(queue).status(["27", "28.1", "28.2", "29", "30"]))
    assert queue.programs() == ["qstat -xml"]
    assert queue.runner.calls[0] == ("qstat", "-xml", "-r")
    assert {i: s.state for i, s in statuses.items()} == {
        "27": JobState.RUNNING,
        "28.1": JobState.RUNNING,
        "28.2": JobState.PENDING,
        "29": JobState.PENDING,
        "30": JobState.HELD,
    }
    assert statuses["27"].time_limit == 600


def test_jobs_in_error_fail_with_the_queues_reason_and_are_deleted() -> None:
    queue = Queue(fixture("qstat_xml_r_mixed.txt"))
    sge = backend(queue)
    statuses = asyncio.run(sge.status(["27", "31", "32.1", "32.2"]))
    # one qstat -j for all of them, one qdel
    assert queue.runner.calls[1] == ("qstat", "-j", "31,32")
    assert queue.runner.calls[2] == ("qdel", "31", "32.1", "32.2")
    assert statuses["31"].state is JobState.FAILED
    assert statuses["31"].reason == (
        'Eqw: can\'t open output file "/nonexistent/dir/out": No such file or directory'
    )
    assert '"/nonexistent/2"' in statuses["32.2"].reason  # each task its own
    assert statuses["31"].end_time is not None
    # once gone, they stay failed with their reason: no qstat -j, no qacct
    queue.qstat_xml = fixture("qstat_xml_empty.txt")
    again = asyncio.run(sge.status(["31", "32.1"]))
    assert again["31"] == statuses["31"]
    assert queue.programs()[3:] == ["qstat -xml"]


def test_a_job_in_error_that_qdel_cannot_delete_stays_held() -> None:
    queue = Queue(fixture("qstat_xml_r_mixed.txt"))
    queue.qdel = ok("", "error: commlib error: got select error", 1)
    sge = backend(queue)
    status = asyncio.run(sge.status(["31"]))["31"]
    assert status.state is JobState.HELD
    assert status.reason.startswith("Eqw: can't open output file")
    # the next poll deletes it, without asking for the reason again
    queue.qdel = ok("root has deleted job 31\n")
    assert asyncio.run(sge.status(["31"]))["31"].state is JobState.FAILED
    assert [p for p in queue.programs() if p == "qstat -j"] == ["qstat -j"]


def test_jobs_that_left_are_looked_up_in_one_qacct() -> None:
    queue = Queue(fixture("qstat_xml_empty.txt"))
    sge = backend(queue)
    statuses = asyncio.run(sge.status(["36", "37", "38.1", "39", "27"]))
    assert queue.programs() == ["qstat -xml", "qacct -o"]
    assert queue.runner.calls[1][:5] == ("qacct", "-o", "root", "-E", "-b")
    assert {i: s.state for i, s in statuses.items()} == {
        "36": JobState.COMPLETED,
        "37": JobState.FAILED,
        "38.1": JobState.COMPLETED,
        "39": JobState.TIMEOUT,
        "27": JobState.FAILED,
    }
    assert statuses["37"].exit_code == "3"


def test_jobs_hpcdask_deleted_are_cancelled_without_qacct() -> None:
    queue = Queue(fixture("qstat_xml_empty.txt"))
    sge = backend(queue)
    asyncio.run(sge.cancel(["40", "41.1"]))
    statuses = asyncio.run(sge.status(["40", "41.1"]))
    assert {s.state for s in statuses.values()} == {JobState.CANCELLED}
    assert queue.programs() == ["qdel 40", "qstat -xml"]


def test_a_missing_record_waits_then_the_job_is_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue = Queue(fixture("qstat_xml_empty.txt"))
    queue.qacct = ok(fixture("qacct_owner_since_none.txt"))
    sge = backend(queue)
    now = [1000.0]
    monkeypatch.setattr(backend_module.time, "time", lambda: now[0])
    status = asyncio.run(sge.status(["50"]))["50"]
    assert status.state is JobState.COMPLETING  # the record may lag the end
    now[0] += ACCOUNTING_WAIT + 1
    assert asyncio.run(sge.status(["50"]))["50"].state is JobState.GONE
    assert sge.accounting  # the file exists: accounting stays on


def test_no_accounting_file_turns_qacct_off(monkeypatch: pytest.MonkeyPatch) -> None:
    queue = Queue(fixture("qstat_xml_empty.txt"))
    queue.qacct = ok(fixture("qacct_no_file.txt"), fixture("qacct_no_file.stderr"), 1)
    sge = backend(queue)
    now = [1000.0]
    monkeypatch.setattr(backend_module.time, "time", lambda: now[0])
    asyncio.run(sge.status(["50"]))
    now[0] += ACCOUNTING_WAIT + 1
    assert asyncio.run(sge.status(["50"]))["50"].state is JobState.GONE
    assert not sge.accounting
    asyncio.run(sge.status(["51"]))
    assert queue.programs().count("qacct -o") == 2  # not asked for job 51
    # no qacct at all: off at once
    queue = Queue(fixture("qstat_xml_empty.txt"))
    queue.qacct = ok("", "qacct: command not found", 127)
    sge = backend(queue)
    asyncio.run(sge.status(["52"]))
    assert not sge.accounting


def test_qdel_of_ids_that_ended_is_no_error() -> None:
    queue = Queue(fixture("qstat_xml_empty.txt"))
    queue.qdel = ok(fixture("qdel_unknown_and_live.txt"), code=1)
    asyncio.run(backend(queue).cancel(["999999", "24"]))
    queue.qdel = ok("", "error: commlib error: access denied", 1)
    with pytest.raises(BatchCommandError, match="access denied"):
        asyncio.run(backend(queue).cancel(["24"]))


def test_qmaster_not_answering_is_an_unknown_state_not_an_end() -> None:
    queue = Queue("")
    queue.runner.responses["qstat"] = [
        ok("", "error: commlib error: got select error (Connection refused)", 1)
    ]
    with pytest.raises(BatchCommandError, match="Connection refused"):
        asyncio.run(backend(queue).status(["1"]))


def test_the_job_table_reports_an_eqw_job_as_a_failed_start(tmp_path: Path) -> None:
    queue = Queue(fixture("qstat_xml_eqw.txt"))
    queue.runner.responses["qsub"] = [ok("13\n")]
    queue.runner.responses["qstat"] = lambda argv: Completed(
        argv, 0, fixture("qstat_j_eqw.txt") if "-j" in argv else queue.qstat_xml
    )
    queue.qdel = ok("root has deleted job 13\n")
    opts = sge_options(log_directory=str(tmp_path))
    table = JobTable(backend(queue), opts)

    async def submit_and_poll() -> None:
        await table.submit(["dask-worker-0"], "#!/bin/bash\n")
        await table.poll()

    asyncio.run(submit_and_poll())
    (failure,) = table.failures
    assert failure.job_id == "13"
    assert failure.state == "failed"
    assert "can't open output file" in str(failure)
    assert ("qdel", "13") in queue.runner.calls


def test_qacct_looks_back_from_when_a_job_was_last_known_live(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    queue = Queue(fixture("qstat_xml_empty.txt"))
    queue.runner.responses["qsub"] = [ok("77.1-2:1\n")]
    sge = backend(queue)
    now = [time.mktime((2026, 11, 30, 12, 0, 0, 0, 0, -1))]
    monkeypatch.setattr(backend_module.time, "time", lambda: now[0])
    assert asyncio.run(sge.submit("#!/bin/bash\n", str(tmp_path))) == "77"
    now[0] += 600  # never seen in qstat: ended between polls, long ago
    asyncio.run(sge.status(["77.1", "77.2"]))
    (qacct,) = [argv for argv in queue.runner.calls if argv[0] == "qacct"]
    assert qacct[-2:] == ("202611301158.00", "-j")  # submitted, less 120 s


def test_a_job_in_error_deleted_by_someone_else_still_failed() -> None:
    queue = Queue(fixture("qstat_xml_r_mixed.txt"))
    queue.qdel = ok("", "error: commlib error: got select error", 1)
    sge = backend(queue)
    assert asyncio.run(sge.status(["31"]))["31"].state is JobState.HELD
    queue.qstat_xml = fixture("qstat_xml_empty.txt")  # an operator deleted it
    status = asyncio.run(sge.status(["31"]))["31"]
    assert status.state is JobState.FAILED
    assert status.reason.startswith("Eqw: can't open output file")
