"""Checks and conversions for every value that reaches a job script or an argv.

A job script is a shell program, so a queue name like ``"debug\\nrm -rf ~"`` would be
a second command. Each helper here either returns a value that is safe where it is
going or raises :class:`~hpcdask.errors.InvalidOptionError` (a ``ValueError``)
naming the argument.
"""

from __future__ import annotations

import math
import re
import shlex

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
