"""Rendered shell words and job scripts, run through a real bash."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hpcdask.config import resolve_job_options
from hpcdask.script import render_job_script
from hpcdask.systems.pbs import PBS
from hpcdask.systems.slurm import Slurm
from hpcdask.validation import shell_word


@pytest.mark.parametrize(
    "value",
    [
        "$TMPDIR",
        "${TMPDIR}/dask",
        "/scratch/$USER",
        "plain",
        "with space",
        "a;b",
        "x'y",
        "`id`",
        "$(id)x".replace("$", ""),
    ],
)
def test_shell_word_is_one_word_and_runs_nothing(value: str, tmp_path: object) -> None:
    word = shell_word("local_directory", value)
    # bash prints each word on its own line: exactly one line, no command ran
    out = subprocess.run(
        ["bash", "-c", f"printf '%s\\n' {word}"],
        capture_output=True,
        text=True,
        env={"TMPDIR": "/tmp/t", "USER": "alice", "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout
    assert out.count("\n") == 1
    expected = value.replace("${TMPDIR}", "/tmp/t").replace("$TMPDIR", "/tmp/t")
    expected = expected.replace("$USER", "alice")
    assert out.rstrip("\n") == expected


@pytest.mark.parametrize("system", [Slurm(), PBS()])
def test_rendered_worker_command_runs_exactly_one_command(
    system: Slurm | PBS, tmp_path: Path
) -> None:
    echo_args = tmp_path / "echo-args"
    echo_args.write_text("#!/bin/sh\nprintf '%s\\n' \"$@\"\n")
    echo_args.chmod(0o755)
    opts = resolve_job_options(
        system.name,
        cores=2,
        memory="2GB",
        name="run-$SLURM_JOB_ID",
        python=str(echo_args),
        local_directory="${TMPDIR}/dask",
        worker_extra_args=["--lifetime", "55m", "x;y", "`id`", '"two words"'],
        job_script_prologue=["export A=1"],
    )
    script = render_job_script(
        opts, system, "tcp://10.0.0.1:8786", ["run-$SLURM_JOB_ID-0"]
    )
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    worker_line = script.rstrip("\n").splitlines()[-1]
    out = subprocess.run(
        ["bash", "-c", worker_line],
        capture_output=True,
        text=True,
        check=True,
        env={"SLURM_JOB_ID": "42", "TMPDIR": "/scratch", "PATH": "/usr/bin:/bin"},
    ).stdout.splitlines()
    assert out[:4] == [
        "-m",
        "distributed.cli.dask_worker",
        "tcp://10.0.0.1:8786",
        "--name",
    ]
    assert out[4] == "run-42-0"
    assert out[out.index("--local-directory") + 1] == "/scratch/dask"
    assert out[-5:] == ["--lifetime", "55m", "x;y", "`id`", "two words"]


def test_array_element_picks_its_worker_name(tmp_path: Path) -> None:
    echo_args = tmp_path / "echo-args"
    echo_args.write_text("#!/bin/sh\nprintf '%s\\n' \"$@\"\n")
    echo_args.chmod(0o755)
    opts = resolve_job_options(
        "slurm",
        cores=1,
        memory="1GB",
        python=str(echo_args),
        log_directory=str(tmp_path),
    )
    names = ["w-7", "w-8", "run-$SLURM_JOB_ID-9"]
    script = render_job_script(opts, Slurm(), "tcp://10.0.0.1:8786", names)
    assert "#SBATCH --array=0-2" in script
    for index, expected in [("0", "w-7"), ("1", "w-8"), ("2", "run-42-9")]:
        out = subprocess.run(
            ["bash", "-s"],
            input=script,
            capture_output=True,
            text=True,
            check=True,
            env={
                "SLURM_ARRAY_TASK_ID": index,
                "SLURM_JOB_ID": "42",
                "PATH": "/usr/bin:/bin",
            },
        ).stdout.splitlines()
        assert out[out.index("--name") + 1] == expected
