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
from hpcdask.config import resolve_job_options
from hpcdask.configfile import default_config_path, render_config
from hpcdask.errors import CommandError
from hpcdask.options import DEFAULTS, OPTION_HELP, SYSTEM_OPTIONS
from hpcdask.runner import Completed

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
        (["cancel", "--cluster", "x;y", "--system", "slurm"], 1,
         "invalid --cluster='x;y'"),
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
        (
            ["job-script", "--system", "slurm", "--cores", "1", "--memory", "1GB",
             "--nodes", "0"],
            1,
            "hpcdask job-script: error: invalid nodes=0",
        ),
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
        "unknown system; expected one of slurm, pbs, sge, local\n"
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


def test_job_script_of_a_multi_node_job() -> None:
    code, out, _ = run_cli(
        "job-script", "--system", "slurm", "--cores", "8", "--memory", "16GB",
        "--nodes", "2",
    )  # fmt: skip
    assert code == 0
    lines = out.splitlines()
    assert "#SBATCH --nodes=2" in lines and "#SBATCH --ntasks-per-node=1" in lines
    assert sum(line.startswith("srun ") for line in lines) == 2  # check, workers


# -- the queue: listing and cancelling with saved real output ------------------------


def test_detect_system(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("SGE_ROOT", raising=False)
    with pytest.raises(CommandError, match="no batch system found"):
        cli.detect_system(None)
    assert cli.detect_system("pbs") == "pbs"
    # Grid Engine: SGE_ROOT set (its qsub may not be on PATH yet)
    monkeypatch.setenv("SGE_ROOT", "/opt/sge")
    assert cli.detect_system(None) == "sge"
    assert cli.detect_system("sge", queue_only=True) == "sge"
    # Slurm first when both are there
    (tmp_path / "sbatch").write_text("#!/bin/sh\n")
    (tmp_path / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert cli.detect_system(None) == "slurm"
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
    for system in ("slurm", "pbs", "sge", "local"):
        section = loaded["hpcdask"][system]
        # each system lists its own options: SGE's project and parallel
        # environment there only, and where its commands are
        wanted = {
            option: default
            for option, default in DEFAULTS.items()
            if system in SYSTEM_OPTIONS.get(option, (system,))
        }
        if system == "sge":
            wanted["sge_root"] = None
        assert {k.replace("-", "_"): v for k, v in section.items()} == wanted
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
