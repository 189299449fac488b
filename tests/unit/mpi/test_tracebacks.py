"""A callable run as a script: exit codes, messages, and only the script's frames."""

from __future__ import annotations

import sys

import pytest

from hpcdask.mpi.tracebacks import call_as_script


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
    assert "hpcdask/mpi/" not in err
    assert err.rstrip().endswith("ValueError: boom")
