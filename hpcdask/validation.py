"""Checks and conversions for every value that reaches a job script or an argv.

A job script is a shell program, so a queue name like ``"debug\\nrm -rf ~"`` would be
a second command. Each helper here either returns a value that is safe where it is
going or raises :class:`~hpcdask.errors.InvalidOptionError` (a ``ValueError``)
naming the argument.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from collections.abc import Callable, Mapping
from typing import Any

from dask.utils import parse_bytes, parse_timedelta

from hpcdask.errors import InvalidOptionError

# Identifiers that go into directives and argv: queue, account, job name, interface.
_IDENTIFIER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.,:@+=/-]*")
# A plain environment-variable reference: $NAME or ${NAME}; nothing else starts with $.
_VAR_REF = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*|\{[A-Za-z_][A-Za-z0-9_]*\})")
_WALLTIME = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?")
_FORBIDDEN_ANYWHERE = ("\n", "\r", "\x00")


def check_identifier(option: str, value: object) -> str:
    """A queue, account, job name or interface: letters, digits and ``_.,:@+=/-``."""
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise InvalidOptionError(
            option,
            value,
            "use only letters, digits and _ . , : @ + = / - (no spaces, newlines "
            "or shell characters)",
        )
    return value


def check_queues(option: str, value: object) -> str:
    """A queue, or a list of them (``["regular", "shared"]``) written as Slurm
    reads a partition list: ``"regular,shared"``."""
    if isinstance(value, (list, tuple)) and value:
        return ",".join(check_identifier(option, v) for v in value)
    return check_identifier(option, value)


def check_line(option: str, value: object) -> str:
    """One line of text (a directive, a shebang): no newline, CR or NUL."""
    if not isinstance(value, str):
        raise InvalidOptionError(option, value, "expected a string")
    if any(c in value for c in _FORBIDDEN_ANYWHERE):
        raise InvalidOptionError(option, value, "must be a single line")
    return value


def check_lines(option: str, value: object) -> tuple[str, ...]:
    """A list of single lines (directives, prologue lines)."""
    if value is None:
        return ()
    if isinstance(value, str):
        raise InvalidOptionError(option, value, "expected a list of strings")
    if not isinstance(value, (list, tuple)):
        raise InvalidOptionError(option, value, "expected a list of strings")
    return tuple(check_line(option, v) for v in value)


def shell_word(option: str, value: object) -> str:
    """Render ``value`` as exactly one shell word.

    Plain environment variables (``$TMPDIR``, ``${SLURM_JOB_ID}``) are kept so the
    job's shell expands them, as dask-jobqueue users rely on; any other use of
    ``$``, and backticks, quotes or backslashes next to a variable, are refused.
    Values without ``$`` are single-quoted and can hold any character but newline.
    """
    if not isinstance(value, str):
        raise InvalidOptionError(option, value, "expected a string")
    if value == "" or any(c in value for c in _FORBIDDEN_ANYWHERE):
        raise InvalidOptionError(option, value, "must be a non-empty single line")
    if "$" not in value:
        return shlex.quote(value)
    rest = _VAR_REF.sub("", value)
    if "$" in rest:
        raise InvalidOptionError(
            option,
            value,
            "only plain environment variables ($NAME or ${NAME}) may use '$'; "
            "command substitution and other expansions are not allowed",
        )
    if any(c in rest for c in '`"\\'):
        raise InvalidOptionError(
            option, value, "backticks, quotes and backslashes are not allowed here"
        )
    return f'"{value}"'


#: words bash reads as syntax when they come first in a command, unquoted
_RESERVED_WORDS = frozenset((
    "!", "[[", "]]", "{", "}", "case", "coproc", "do", "done", "elif", "else",
    "esac", "fi", "for", "function", "if", "in", "select", "then", "time", "until",
    "while",
))  # fmt: skip


def command_word(option: str, value: object) -> str:
    """Render ``value`` as the one word that names the command to run.

    As :func:`shell_word`, but a bare word that bash would read as something
    other than a command name in that place (a reserved word such as ``time``,
    an assignment ``A=1``) is quoted too. A name starting with ``%`` is refused:
    bash takes it for a job to resume, quoted or not.
    """
    word = shell_word(option, value)
    if isinstance(value, str) and value.startswith("%"):
        raise InvalidOptionError(
            option, value, "a command cannot start with '%' (bash reads a job spec)"
        )
    if word == value and (word in _RESERVED_WORDS or "=" in word):
        # shlex.quote left it bare, so it holds no quote of its own
        return f"'{word}'"
    return word


def name_pattern(template: str) -> re.Pattern[str]:
    """A regex matching what ``template`` becomes after the shell expands its vars."""
    parts = _VAR_REF.split(template)
    return re.compile("(?:.*?)".join(re.escape(p) for p in parts))


def parse_memory(option: str, value: object) -> int:
    """A memory size ("16GB", "4 GiB", 2**30) in bytes; must be positive."""
    if isinstance(value, bool):
        raise InvalidOptionError(option, value, "expected a size such as '16GB'")
    if isinstance(value, (int, float)):
        size = int(value)
    elif isinstance(value, str):
        check_line(option, value)
        try:
            if not value.strip():  # parse_bytes("") is 1 byte
                raise ValueError("empty")
            size = int(parse_bytes(value))
        except (ValueError, TypeError, KeyError, IndexError, OverflowError) as e:
            raise InvalidOptionError(
                option, value, "expected a size such as '16GB' or '512MiB'"
            ) from e
    else:
        raise InvalidOptionError(option, value, "expected a size such as '16GB'")
    if size <= 0:
        raise InvalidOptionError(option, value, "must be positive")
    return size


def parse_walltime(option: str, value: object) -> int:
    """A walltime in seconds from ``[D-]HH:MM:SS``, ``MM:SS``, minutes, or "1h"."""
    if isinstance(value, bool):
        raise InvalidOptionError(option, value, "expected a walltime like '01:30:00'")
    if isinstance(value, int):
        seconds = value * 60  # plain numbers are minutes, as in sbatch -t
    elif isinstance(value, str):
        check_line(option, value)
        seconds = _parse_walltime_text(option, value)
    else:
        raise InvalidOptionError(option, value, "expected a walltime like '01:30:00'")
    if seconds <= 0:
        raise InvalidOptionError(option, value, "must be positive")
    return seconds


def _parse_walltime_text(option: str, text: str) -> int:
    match = _WALLTIME.fullmatch(text.strip())
    if match:
        days, a, b, c = match.groups()
        numbers = [int(x) for x in (a, b, c) if x is not None]
        if days is not None:
            # D-HH[:MM[:SS]]
            hours, minutes, seconds = [*numbers, 0, 0][:3]
            return ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
        if len(numbers) == 1:
            return numbers[0] * 60
        if len(numbers) == 2:
            return numbers[0] * 60 + numbers[1]
        return (numbers[0] * 60 + numbers[1]) * 60 + numbers[2]
    try:
        return math.ceil(float(parse_timedelta(text)))
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as e:
        raise InvalidOptionError(
            option, text, "expected a walltime like '01:30:00', '30' or '2h'"
        ) from e


def check_positive_int(option: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidOptionError(option, value, "expected a positive integer")
    return value


def check_count(option: str, value: object) -> int:
    """A whole number >= 0 (``0``: none)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidOptionError(option, value, "expected a whole number >= 0")
    return value


_RESOURCE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_resources(option: str, value: object) -> dict[str, float]:
    """Worker resources as distributed names them (``{"GPU": 1}``, or the
    worker's own ``"GPU=1,MEMORY=10e9"``): names of letters, digits and ``_``,
    amounts > 0."""
    if isinstance(value, str):
        pairs = [item.partition("=") for item in value.split(",") if item.strip()]
        if any(not sep for _, sep, _ in pairs):
            raise InvalidOptionError(option, value, "expected NAME=AMOUNT,...")
        value = {name.strip(): amount.strip() for name, _, amount in pairs}
    if not isinstance(value, Mapping) or not value:
        raise InvalidOptionError(option, value, "expected a mapping like {GPU: 1}")
    checked: dict[str, float] = {}
    for name, amount in value.items():
        if not isinstance(name, str) or not _RESOURCE_NAME.fullmatch(name):
            raise InvalidOptionError(option, value, f"bad resource name {name!r}")
        try:
            number = float(amount)
        except (TypeError, ValueError):
            number = -1.0
        if isinstance(amount, bool) or not number > 0 or math.isinf(number):
            why = f"{name}: expected an amount > 0, got {amount!r}"
            raise InvalidOptionError(option, value, why)
        checked[name] = number
    return checked


def check_seconds(option: str, value: object) -> float:
    """A duration in seconds: a number or a string like "60s" / "5min"."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidOptionError(option, value, "expected a duration")
    try:
        seconds = float(parse_timedelta(value, default="seconds"))
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise InvalidOptionError(option, value, "expected a duration") from e
    if not math.isfinite(seconds):
        raise InvalidOptionError(option, value, "must be finite")
    if seconds <= 0:
        raise InvalidOptionError(option, value, "must be positive")
    return seconds


#: a check of one option: (name, raw value) -> the value to keep
Check = Callable[[str, Any], Any]

#: how a nanny may start its worker processes
START_METHODS = ("fork", "spawn", "forkserver")
#: the scheduler protocols distributed knows
PROTOCOLS = ("tcp://", "tls://", "ucx://", "ws://", "wss://", "inproc://")


def check_path(option: str, value: object) -> str:
    """A directory this process writes and jobs read: ``~`` expanded here, then
    only characters that mean the same to every shell and batch system."""
    if not isinstance(value, str):
        raise InvalidOptionError(option, value, "expected a path")
    path = os.path.expanduser(value)
    if not re.fullmatch(r"[A-Za-z0-9_./+@-]+", path):
        raise InvalidOptionError(
            option, path, "use a path of letters, digits and _ . / + @ - only"
        )
    return path


def check_shebang(option: str, value: object) -> str:
    shebang = check_line(option, value)
    if not shebang.startswith("#!"):
        raise InvalidOptionError(option, shebang, "must start with '#!'")
    return shebang


def check_protocol(option: str, value: object) -> str | None:
    if value is None:
        return None
    if not (
        isinstance(value, str) and value in PROTOCOLS + tuple(p[:-3] for p in PROTOCOLS)
    ):
        raise InvalidOptionError(option, value, f"expected one of {PROTOCOLS}")
    return value if value.endswith("://") else value + "://"


def check_mapping(option: str, value: object) -> dict[str, object]:
    if not isinstance(value, Mapping):
        raise InvalidOptionError(option, value, "expected a dict")
    return dict(value)


def check_start_method(option: str, value: object) -> str:
    if value not in START_METHODS:
        raise InvalidOptionError(option, value, f"expected one of {START_METHODS}")
    return str(value)


def optional(check: Check) -> Check:
    """``check``, except that ``None`` (not set) passes as ``None``."""

    def checked(option: str, value: object) -> object:
        return None if value is None else check(option, value)

    return checked
