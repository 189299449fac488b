"""Run a callable as Python runs a script: its exit code, and only its frames
in a traceback."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from types import TracebackType

from hpcdask.mpi.roles import exit_code_of

__all__ = ["call_as_script", "print_user_traceback"]

_HERE = os.path.dirname(os.path.abspath(__file__))


def call_as_script(function: Callable[..., object], *args: object) -> int:
    """Call ``function`` as Python runs a script: the exit code it would have.

    ``None`` or an int returned is the code (0 for ``None``); ``SystemExit``
    gives its code, printing a message it carries; another exception prints its
    traceback, without the launcher's frames on top, and gives 1.
    """
    try:
        result = function(*args)
    except SystemExit as e:
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
        return exit_code_of(e)
    except BaseException as e:  # the script's own failure: report it like Python
        print_user_traceback(e)
        return 1
    if isinstance(result, int) and not isinstance(result, bool):
        return result & 0xFF
    return 0


def is_launcher_frame(filename: str) -> bool:
    """Whether a frame of ``filename`` is the launcher's (or runpy's), not the
    user's."""
    import runpy

    if filename == "<frozen runpy>":
        return True
    path = os.path.abspath(filename)
    return os.path.dirname(path) == _HERE or path == os.path.abspath(runpy.__file__)


def print_user_traceback(exc: BaseException) -> None:
    """Print ``exc`` as Python would, without the launcher's frames on top."""
    tb: TracebackType | None = exc.__traceback__
    while tb is not None and is_launcher_frame(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    sys.stderr.flush()
    traceback.print_exception(type(exc), exc, tb, file=sys.stderr)
    sys.stderr.flush()
