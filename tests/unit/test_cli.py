"""The hpcdask command without a queue: parsing, output, argv, saved real output."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import dask.config
import pytest
import yaml

from hpcdask import cli
from hpcdask.config import default_config_path, render_config, resolve_job_options
from hpcdask.errors import BatchCommandError, CommandError
from hpcdask.models import JobState, QueuedJob
from hpcdask.options import DEFAULTS, OPTION_HELP
from hpcdask.runner import Completed, FakeRunner
from hpcdask.systems import queue_system
from hpcdask.systems.base import CommandBackend

FIXTURES = Path(__file__).parent.parent / "fixtures"
NOW = 1_800_000_000.0


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli.main(list(argv))
        except SystemExit as e:  # argparse's --help and usage errors
            code = int(e.code or 0)
    return code, out.getvalue(), err.getvalue()


def ok(stdout: str = "") -> Completed:
    return Completed(("x",), 0, stdout, "")


@pytest.fixture
def profiles() -> Iterator[None]:
    with dask.config.set(
        {
            "hpcdask.profiles": {
                "small": {
                    "description": "2 cores, 4 GB, 8 hours",
                    "system": "slurm",
                    "queue": "shared",
                    "cores": 2,
                    "memory": "4GB",
                    "walltime": "08:00:00",
                },
                "gpu": {
                    "system": "slurm",
                    "cores": 8,
                    "memory": "32GB",
                    "directives": ["--gres=gpu:1"],
                    "name": "gpu-worker",
                },
                "anywhere": {"cores": 1, "memory": "1GB"},
            }
        }
    ):
        yield


# -- help and errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    "command", ["profiles", "job-script", "jobs", "cancel", "config"]
)
def test_every_subcommand_has_help(command: str) -> None:
    code, out, _ = run_cli(command, "--help")
    assert code == 0
    assert out.startswith(f"usage: hpcdask {command}")


def test_help_lists_the_subcommands() -> None:
    code, out, _ = run_cli("--help")
    assert code == 0
    for command in ("profiles", "job-script", "jobs", "cancel", "config"):
        assert f"    {command}" in out


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["bogus"], 2, "hpcdask: error: argument COMMAND: invalid choice: 'bogus'"),
        ([], 2, "hpcdask: error: the following arguments are required: COMMAND"),
        (["cancel"], 2, "error: the following arguments are required: NAME"),
        (
            ["job-script", "--system", "slurm", "--cores", "1", "--memory", "1GB",
             "--queue", "debug;id"],
            1,
            "hpcdask job-script: error: invalid queue='debug;id'",
        ),
        (
            ["job-script", "--system", "slurm"],
            1,
            "hpcdask job-script: error: invalid cores=None: required",
        ),
        (["cancel", "a,b", "--system", "slurm"], 1, "invalid name='a,b'"),
        (["cancel", "x", "--system", "local"], 2, "invalid choice: 'local'"),
        (["job-script", "--profile", "nope"], 1, "invalid profile='nope'"),
    ],
)  # fmt: skip
def test_errors_are_one_line_and_non_zero(
    argv: list[str], code: int, message: str
) -> None:
    got, out, err = run_cli(*argv)
    assert got == code
    assert out == ""
    assert err.count("\n") == 1 and err.endswith("\n")
    assert message in err


def test_a_bad_profile_is_a_one_line_error() -> None:
    with dask.config.set({"hpcdask.profiles": {"p": {"system": "lsf"}}}):
        code, _, err = run_cli("profiles")
    assert code == 1
    assert err == (
        "hpcdask profiles: error: invalid hpcdask.profiles.p.system='lsf': "
        "unknown system; expected one of slurm, pbs, local\n"
    )


# -- profiles and job-script ---------------------------------------------------------


@pytest.mark.usefixtures("profiles")
def test_profiles_lists_each_profile() -> None:
    code, out, _ = run_cli("profiles")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "NAME", "SYSTEM", "QUEUE", "CORES", "MEMORY", "WALLTIME", "DESCRIPTION",
    ]  # fmt: skip
    assert lines[1].split() == ["anywhere", "(any)", "-", "1", "1GB", "-"]
    assert lines[2].split() == ["gpu", "slurm", "-", "8", "32", "GB", "00:30:00"]
    assert lines[3].split()[:7] == [
        "small", "slurm", "shared", "2", "4", "GB", "08:00:00",
    ]  # fmt: skip
    assert lines[3].endswith("2 cores, 4 GB, 8 hours")


def test_profiles_without_any() -> None:
    code, out, _ = run_cli("profiles")
    assert code == 0 and out.startswith("no profiles configured")


@pytest.mark.usefixtures("profiles")
def test_job_script_of_a_profile_with_overrides() -> None:
    code, out, _ = run_cli(
        "job-script", "--profile", "gpu", "--walltime", "02:00:00", "--queue", "gpu"
    )
    assert code == 0
    assert out.startswith("#!/usr/bin/env bash\n")
    for line in (
        "#SBATCH -J gpu-worker",
        "#SBATCH -p gpu",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH -t 02:00:00",
        "#SBATCH --gres=gpu:1",
    ):
        assert line in out.splitlines()
    assert cli.PLACEHOLDER_ADDRESS in out
    assert "--name gpu-worker-0" in out


def test_job_script_from_arguments_for_pbs() -> None:
    code, out, _ = run_cli(
        "job-script", "--system", "pbs", "--cores", "4", "--memory", "8GB",
        "--queue", "normal", "--directive=-l place=scatter",
        "--scheduler-address", "tls://10.1.2.3:8786",
    )  # fmt: skip
    assert code == 0
    lines = out.splitlines()
    assert "#PBS -q normal" in lines
    assert "#PBS -l select=1:ncpus=4:mem=7630mb" in lines
    assert "#PBS -l place=scatter" in lines
    assert "tls://10.1.2.3:8786" in out


# -- the queue: listing and cancelling with saved real output ------------------------


def named(fixture: str, name: str) -> str:
    """Saved squeue output with the job-name column the listing adds."""
    text = (FIXTURES / "slurm" / fixture).read_text()
    return "".join(f"{line}|{name}\n" for line in text.splitlines())


def backend(system: str, runner: FakeRunner) -> CommandBackend:
    return CommandBackend(queue_system(system), runner)


async def listing(
    system: str, stdout: str, user: str, names: list[str]
) -> list[QueuedJob]:
    """The user's live jobs named ``names`` found in saved listing output."""
    program = queue_system(system).list_argv(user, names)[0]
    return await backend(system, FakeRunner({program: [ok(stdout)]})).list_jobs(
        user, names
    )


async def test_slurm_listing_argv_and_parse() -> None:
    assert queue_system("slurm").list_argv("ana", ["dask-worker", "gpu-worker"]) == [
        "squeue",
        "--noheader",
        "--user=ana",
        "--format=%i|%T|%r|%N|%V|%S|%e|%l|%L|%j",
        "--name=dask-worker,gpu-worker",
    ]
    assert "--name" not in " ".join(queue_system("slurm").list_argv("ana", None))
    stdout = named("squeue_running.txt", "dask-worker") + named(
        "squeue_array_pending.txt", "gpu-worker"
    )
    jobs = await listing("slurm", stdout, "ana", ["dask-worker", "gpu-worker"])
    assert [(j.job_id, j.name, j.status.state) for j in jobs][:2] == [
        ("93", "dask-worker", JobState.RUNNING),
        ("97_0", "gpu-worker", JobState.PENDING),
    ]
    pending = [j for j in jobs if j.status.state is JobState.PENDING]
    # a pending array's collapsed line is one row per element
    assert [j.job_id for j in pending] == ["97_0", "97_1", "97_2", "97_3"]
    assert {j.status.reason for j in pending} == {"PartitionDown"}
    # only the names asked for
    assert await listing("slurm", stdout, "ana", ["gpu-worker"]) == pending


async def test_pbs_listing_keeps_the_users_live_jobs_with_that_name() -> None:
    stdout = "\n".join(
        (FIXTURES / "pbs" / f).read_text()
        for f in (
            "qstat_f_torque_array.txt",  # 3 running, root, hx-pbs-dir
            "qstat_f_torque_finished.txt",  # ended: not in the queue any more
            "qstat_f_pbspro.txt",  # alice's
        )
    )
    assert queue_system("pbs").list_argv("root", ["hx-pbs-dir"]) == ["qstat", "-f"]
    jobs = await listing("pbs", stdout, "root", ["hx-pbs-dir"])
    assert [(j.job_id, j.status.state) for j in jobs] == [
        ("107", JobState.RUNNING),
        ("108", JobState.RUNNING),
        ("105", JobState.RUNNING),
    ]
    alice = await listing("pbs", stdout, "alice", ["dask-worker"])
    assert [j.job_id for j in alice] == ["4821.pbs01", "4822.pbs01"]
    assert await listing("pbs", stdout, "alice", ["other"]) == []


async def test_slurm_cancel_is_one_scancel_by_name_and_user() -> None:
    runner = FakeRunner(
        {"squeue": [ok(named("squeue_array_running.txt", "run7"))], "scancel": [ok()]}
    )
    jobs = await backend("slurm", runner).cancel_by_name("ana", "run7")
    assert [j.job_id for j in jobs] == ["98_2", "98_3", "98_1", "98_0"]
    assert [c for c in runner.calls if c[0] == "scancel"] == [
        ("scancel", "--user=ana", "--name=run7")
    ]
    assert runner.calls[0][0] == "squeue" and len(runner.calls) == 2


async def test_pbs_cancel_is_one_qdel_of_the_ids_found() -> None:
    runner = FakeRunner(
        {
            "qstat": [ok((FIXTURES / "pbs" / "qstat_f_torque_array.txt").read_text())],
            "qdel": [ok()],
        }
    )
    await backend("pbs", runner).cancel_by_name("root", "hx-pbs-dir")
    assert runner.calls[1:] == [("qdel", "107", "108", "105")]


async def test_nothing_to_cancel_or_dry_run_runs_no_cancel() -> None:
    runner = FakeRunner({"squeue": [ok("")]})
    assert await backend("slurm", runner).cancel_by_name("ana", "x") == []
    runner = FakeRunner({"squeue": [ok(named("squeue_array_running.txt", "x"))]})
    jobs = await backend("slurm", runner).cancel_by_name("ana", "x", dry_run=True)
    assert len(jobs) == 4
    assert [c[0] for c in runner.calls] == ["squeue"]


async def test_a_failing_queue_command_is_an_error() -> None:
    runner = FakeRunner(
        {
            "squeue": [
                Completed(
                    ("squeue",),
                    1,
                    "",
                    "slurm_load_jobs error: Unable to contact slurm controller",
                )
            ]
        }
    )
    with pytest.raises(BatchCommandError, match="squeue failed: slurm_load_jobs error"):
        await backend("slurm", runner).list_jobs("ana", ["x"])


async def test_render_jobs() -> None:
    stdout = named("squeue_running.txt", "w") + named("squeue_pending.txt", "w")
    jobs = await listing("slurm", stdout, "ana", ["w"])
    start = jobs[0].status.start_time
    assert start is not None
    lines = cli.render_jobs(jobs, now=start + 60).splitlines()
    assert lines[0].split() == [
        "JOBID", "NAME", "STATE", "REASON", "NODE", "AGE", "WALLTIME", "LEFT",
    ]  # fmt: skip
    assert lines[1].split() == ["93", "w", "running", "-", "vm", "00:01:01", "00:09:00"]
    assert lines[-1].split()[2:4] == ["pending", "PartitionDown"]
    assert lines[-1].split()[-1] == "00:10:00"  # a pending job has all of it left


@pytest.mark.usefixtures("profiles")
def test_jobs_lists_the_default_and_profile_job_names() -> None:
    args = cli.build_parser().parse_args(["jobs"])
    assert cli.job_names(args, "slurm") == ["dask-worker", "gpu-worker"]
    with dask.config.set({"hpcdask.slurm.name": "run-$SLURM_JOB_ID"}):
        # config's name without '$', as any cluster names its jobs
        assert cli.job_names(args, "slurm")[0] == "run-SLURM_JOB_ID"
    args = cli.build_parser().parse_args(["jobs", "--name", "a", "--name", "a"])
    assert cli.job_names(args, "slurm") == ["a"]


def test_detect_system(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(CommandError, match="no batch system found"):
        cli.detect_system(None)
    assert cli.detect_system("pbs") == "pbs"
    with pytest.raises(CommandError, match="has no queue"):
        cli.detect_system("local", queue_only=True)


# -- config ---------------------------------------------------------------------------


def test_every_option_has_help_in_the_config_file() -> None:
    assert set(OPTION_HELP) == set(DEFAULTS)
    text = render_config()
    for option in DEFAULTS:
        assert f"#     {option.replace('_', '-')}: " in text


def uncomment(text: str, keep: object = None) -> str:
    """The config file with the leading '# ' removed from every line after the
    header (or only from lines for which ``keep(line)`` is true)."""
    lines = text.splitlines()
    body = lines[lines.index("# hpcdask:") :]
    return "\n".join(
        line[2:] if keep is None or keep(line) else line  # type: ignore[operator]
        for line in body
    )


def test_config_file_as_written_hides_no_site_setting(tmp_path: Path) -> None:
    site, user = tmp_path / "etc", tmp_path / "home"
    site.mkdir()
    user.mkdir()
    (site / "site.yaml").write_text(
        "hpcdask:\n  slurm:\n    queue: site-queue\n  profiles:\n    p: {cores: 1}\n"
    )
    (user / "hpcdask.yaml").write_text(render_config())
    assert yaml.safe_load(render_config()) is None
    merged = dask.config.collect([str(site), str(user)], env={})
    assert merged == {
        "hpcdask": {"slurm": {"queue": "site-queue"}, "profiles": {"p": {"cores": 1}}}
    }


def test_config_file_uncommented_is_every_default() -> None:
    loaded = yaml.safe_load(uncomment(render_config()))
    assert loaded["hpcdask"]["poll-interval"] == "5s"
    assert loaded["hpcdask"]["security"] is True
    for system in ("slurm", "pbs", "local"):
        section = loaded["hpcdask"][system]
        assert {k.replace("-", "_"): v for k, v in section.items()} == DEFAULTS
    assert loaded["hpcdask"]["profiles"]["gpu-small"]["directives"] == ["--gres=gpu:1"]
    with dask.config.set({"hpcdask.profiles": loaded["hpcdask"]["profiles"]}):
        assert run_cli("profiles")[0] == 0  # the example profiles are valid


def test_config_file_one_uncommented_option_is_set() -> None:
    wanted = ("# hpcdask:", "#   slurm:", "#     queue: ")
    text = uncomment(render_config(), lambda line: line.startswith(wanted))
    loaded = yaml.safe_load(text)
    assert loaded == {"hpcdask": {"slurm": {"queue": None}}}
    text = text.replace("queue: null", "queue: regular")
    with dask.config.set(yaml.safe_load(text)):
        opts = resolve_job_options("slurm", cores=1, memory="1GB")
    assert opts.queue == "regular"


def test_config_writes_the_file_and_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "dask" / "hpcdask.yaml"
    code, out, _ = run_cli("config", "--output", str(path))
    assert code == 0 and out == f"wrote {path}\n"
    assert path.read_text() == render_config()
    path.write_text("mine")
    code, _, err = run_cli("config", "--output", str(path))
    assert code == 1 and "exists; use --force" in err
    assert path.read_text() == "mine"
    assert run_cli("config", "--output", str(path), "--force")[0] == 0
    assert path.read_text() == render_config()


def test_config_default_path_follows_dask_config_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DASK_CONFIG", str(tmp_path))
    assert default_config_path() == str(tmp_path / "hpcdask.yaml")
    code, out, _ = run_cli("config")
    assert code == 0 and out == f"wrote {tmp_path / 'hpcdask.yaml'}\n"
