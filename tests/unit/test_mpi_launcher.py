"""The MPI launcher's pure parts: roles, the rank watch, exit codes, options, CLI.

None of these tests start a process or MPI; the launcher itself runs under a
real ``mpirun`` in ``tests/integration/test_mpi.py``.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from distributed import Nanny, Worker

from hpcdask.mpi import (
    ClusterOptions,
    RankWatch,
    Roles,
    WorldTooSmallError,
    call_as_script,
    check_options,
    exit_code_of,
    rank_of,
)
from hpcdask.mpi_cli import cluster_options, parse_args, resolve_target

# -- roles ------------------------------------------------------------------------


def test_roles_with_a_client() -> None:
    roles = Roles(5)
    assert [roles.role(r) for r in range(5)] == [
        "scheduler",
        "client",
        "worker",
        "worker",
        "worker",
    ]
    assert list(roles.workers) == [2, 3, 4]
    assert roles.client == 1


def test_roles_without_a_client_make_every_other_rank_a_worker() -> None:
    roles = Roles(2, with_client=False)
    assert roles.client is None
    assert list(roles.workers) == [1]
    assert roles.role(1) == "worker"


@pytest.mark.parametrize("size", [1, 2])
def test_fewer_than_three_ranks_is_a_clear_error(size: int) -> None:
    with pytest.raises(WorldTooSmallError) as info:
        Roles(size)
    message = str(info.value)
    assert "at least 3 MPI ranks" in message
    assert f"this run has {size}" in message
    assert "mpirun -np 3" in message
    assert isinstance(info.value, ValueError)


def test_serve_mode_needs_two_ranks() -> None:
    with pytest.raises(WorldTooSmallError, match="at least 2 MPI ranks"):
        Roles(1, with_client=False)


# -- the rank watch -------------------------------------------------------------------


def test_a_worker_that_stays_away_is_overdue_after_the_timeout() -> None:
    watch = RankWatch(timeout=10)
    watch.joined(2)
    watch.joined(3)
    watch.left(3, now=100.0)
    assert watch.overdue(now=109.9) == []
    assert watch.overdue(now=110.0) == [3]


def test_a_worker_that_comes_back_is_not_overdue() -> None:
    watch = RankWatch(timeout=10)
    watch.joined(2)
    watch.left(2, now=100.0)
    watch.joined(2)  # a nanny restarted it
    assert watch.overdue(now=500.0) == []


def test_a_rank_that_never_joined_is_not_watched() -> None:
    watch = RankWatch(timeout=1)
    watch.left(4, now=0.0)
    assert watch.overdue(now=100.0) == []


@pytest.mark.parametrize(
    ("name", "rank"),
    [(2, 2), ("3", 3), ("tcp://x", None), (True, None), (None, None)],
)
def test_rank_of_worker_names(name: object, rank: int | None) -> None:
    assert rank_of(name) == rank


# -- exit codes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [(None, 0), (0, 0), (3, 3), (256 + 7, 7), (True, 1), ("message", 1)],
)
def test_exit_code_of_system_exit(code: object, expected: int) -> None:
    assert exit_code_of(SystemExit(code)) == expected


def test_call_as_script_return_values() -> None:
    assert call_as_script(lambda: None) == 0
    assert call_as_script(lambda: 4) == 4
    assert call_as_script(lambda x: x, 5) == 5


def test_call_as_script_system_exit_with_a_message_prints_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def stop() -> None:
        sys.exit("bad input")

    assert call_as_script(stop) == 1
    assert capsys.readouterr().err == "bad input\n"


def test_call_as_script_prints_only_the_scripts_frames(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def inner() -> None:
        raise ValueError("boom")

    def script() -> None:
        inner()

    assert call_as_script(script) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):\n")
    assert err.count("Traceback") == 1
    assert "in script" in err and "in inner" in err
    assert "hpcdask/mpi.py" not in err
    assert err.rstrip().endswith("ValueError: boom")


# -- options ----------------------------------------------------------------------------


def test_defaults_match_dask_mpi() -> None:
    options = ClusterOptions()
    assert options.nthreads == 1
    assert options.memory_limit == "auto"
    assert options.nanny is False
    assert options.dashboard is True
    assert options.dashboard_address == ":8787"
    assert options.worker_class == "distributed.Worker"


def test_worker_spec_plain_worker() -> None:
    options = ClusterOptions(
        nthreads=2,
        memory_limit="1GB",
        interface="lo",
        worker_options={"resources": {"GPU": 1}},
    )
    cls, kwargs = options.worker_spec(3)
    assert cls is Worker
    assert kwargs["name"] == 3
    assert kwargs["nthreads"] == 2
    assert kwargs["memory_limit"] == "1GB"
    assert kwargs["interface"] == "lo"
    assert kwargs["resources"] == {"GPU": 1}
    assert "worker_class" not in kwargs


def test_worker_spec_nanny_runs_the_worker_class() -> None:
    cls, kwargs = ClusterOptions(nanny=True).worker_spec(2)
    assert cls is Nanny
    assert kwargs["worker_class"] is Worker


def test_worker_spec_a_nanny_class_is_used_as_is() -> None:
    cls, kwargs = ClusterOptions(
        nanny=True, worker_class="distributed.Nanny"
    ).worker_spec(2)
    assert cls is Nanny
    assert "worker_class" not in kwargs


def test_scheduler_kwargs() -> None:
    kwargs = ClusterOptions(
        dashboard=False, scheduler_file="/tmp/s.json", scheduler_port=8786
    ).scheduler_kwargs()
    assert kwargs["dashboard"] is False
    assert kwargs["scheduler_file"] == "/tmp/s.json"
    assert kwargs["port"] == 8786


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("nthreads", 0),
        ("nthreads", True),
        ("failure_timeout", 0),
        ("shutdown_timeout", -1),
        ("log_level", "loud"),
    ],
)
def test_check_options_rejects(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        check_options(ClusterOptions(**{field: value}))  # type: ignore[arg-type]


# -- the command line --------------------------------------------------------------------


def test_run_keeps_the_scripts_own_arguments() -> None:
    args = parse_args(
        ["run", "--nthreads", "2", "--no-dashboard", "analysis.py", "--nthreads", "9"]
    )
    assert args.target == ["analysis.py", "--nthreads", "9"]
    options = cluster_options(args)
    assert options["nthreads"] == 2
    assert options["dashboard"] is False


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
    assert options["memory_limit"] == "4GB"
    assert options["worker_options"] == {"lifetime": "1h"}
    assert options["log_level"] is None


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
