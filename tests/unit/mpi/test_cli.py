"""The ``hpcdask-mpi`` command line, parsed without starting anything."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from hpcdask.mpi.cli import cluster_options, parse_args, resolve_target


def test_run_keeps_the_scripts_own_arguments() -> None:
    args = parse_args(
        ["run", "--nthreads", "2", "--no-dashboard", "analysis.py", "--nthreads", "9"]
    )
    assert args.target == ["analysis.py", "--nthreads", "9"]
    options = cluster_options(args)
    assert options.nthreads == 2
    assert options.dashboard is False


def test_run_module_and_options() -> None:
    args = parse_args(
        [
            "run",
            "--memory-limit",
            "4GB",
            "--worker-options",
            '{"lifetime": "1h"}',
            "--log-level",
            "dask",
            "-m",
            "pkg.mod",
            "a",
        ]
    )
    assert args.module == "pkg.mod"
    assert args.target == ["a"]
    options = cluster_options(args)
    assert options.memory_limit == "4GB"
    assert options.worker_options == {"lifetime": "1h"}
    assert options.log_level is None


@pytest.mark.parametrize(
    "argv",
    [
        ["run"],
        ["serve"],
        ["run", "--worker-options", "[1]", "a.py"],
        ["run", "--failure-timeout", "0", "a.py"],
    ],
)
def test_bad_command_lines_exit_with_usage(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2


def test_resolve_a_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "job.py"
    script.write_text("import sys\nRESULT = sys.argv[1:]\n")
    function, argv = resolve_target(None, [str(script), "x"])
    assert argv == [str(script), "x"]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert function() is None
    assert sys.path[0] == str(tmp_path)


def test_resolve_a_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mpi_target_mod.py").write_text(
        textwrap.dedent(
            """
            class App:
                @staticmethod
                def main():
                    return 7
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    function, argv = resolve_target(None, ["mpi_target_mod:App.main", "y"])
    assert argv == ["mpi_target_mod:App.main", "y"]
    assert function() == 7


def test_a_missing_script_is_exit_code_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    function, _ = resolve_target(None, [str(tmp_path / "missing.py")])
    assert function() == 2
    assert "can't open file" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["hpcdask-mpi", "hpcdask mpi"])
def test_without_mpi4py_the_command_says_how_to_get_it(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hpcdask import cli
    from hpcdask.mpi import cli as mpi_cli

    monkeypatch.setattr(mpi_cli, "mpi4py_installed", lambda: False)
    argv = ["run", "analysis.py"]
    code = mpi_cli.main(argv) if command == "hpcdask-mpi" else cli.main(["mpi", *argv])
    assert code == 2
    err = capsys.readouterr().err
    assert "mpi4py is not installed" in err
    assert "pip install 'hpcdask[mpi]'" in err


def test_hpcdask_srun_outside_srun_says_how_to_start_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hpcdask.mpi import cli as mpi_cli

    for name in ("SLURM_PROCID", "SLURM_JOB_ID", "SLURM_STEP_ID"):
        monkeypatch.delenv(name, raising=False)
    assert mpi_cli.srun_main(["run", "analysis.py"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hpcdask-srun: error: hpcdask-srun runs as the tasks of srun")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"SLURM_STEP_ID": "0", "SLURM_PROCID": "0"}, True),
        ({"SLURM_STEP_ID": "0", "SLURM_PROCID": "1"}, False),  # rank 0 says it
        ({"SLURM_STEP_ID": "0", "SLURM_PROCID": "0", "PMIX_RANK": "0"}, False),
        ({"SLURM_PROCID": "0", "OMPI_COMM_WORLD_SIZE": "4"}, False),  # mpirun
        ({}, False),
    ],
)
def test_srun_without_mpi_is_noticed(environ: dict[str, str], expected: bool) -> None:
    from hpcdask.mpi.cli import srun_without_mpi

    assert srun_without_mpi(environ) is expected
