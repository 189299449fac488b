"""Every value that reaches a script or an argv is checked (pure, no processes)."""

from __future__ import annotations

import pytest

from hpcdask.errors import InvalidOptionError
from hpcdask.format import format_hms
from hpcdask.validation import (
    check_identifier,
    name_pattern,
    parse_memory,
    parse_walltime,
    shell_word,
)

HOSTILE = [
    "debug\nrm -rf ~",
    "debug;touch /tmp/x",
    "$(touch /tmp/x)",
    "`touch /tmp/x`",
    "a b",
    "debug\r",
    "",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_identifiers_refuse_shell_syntax(value: str) -> None:
    with pytest.raises(InvalidOptionError, match="queue"):
        check_identifier("queue", value)


@pytest.mark.parametrize(
    "value", ["debug", "gpu-a100", "P12345", "normal.q", "acct@site"]
)
def test_identifiers_accept_real_names(value: str) -> None:
    assert check_identifier("queue", value) == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("16GB", 16 * 10**9),
        ("4 GiB", 4 * 2**30),
        ("512MiB", 512 * 2**20),
        (2**30, 2**30),
    ],
)
def test_parse_memory(text: object, expected: int) -> None:
    assert parse_memory("memory", text) == expected


@pytest.mark.parametrize(
    "text", ["lots", "16GB\n", "16GB; rm -rf /", "-1GB", 0, True, None]
)
def test_parse_memory_refuses(text: object) -> None:
    with pytest.raises(InvalidOptionError, match="memory"):
        parse_memory("memory", text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("00:30:00", 1800),
        ("1:00:00", 3600),
        ("48:00:00", 48 * 3600),
        ("2-00:00:00", 48 * 3600),
        ("2-06", 54 * 3600),
        ("45:30", 45 * 60 + 30),
        ("30", 1800),
        (30, 1800),
        ("2h", 7200),
    ],
)
def test_parse_walltime(text: object, seconds: int) -> None:
    assert parse_walltime("walltime", text) == seconds


@pytest.mark.parametrize(
    "text", ["soon", "01:00:00\nhostname", "$(date)", "00:00:00", -5]
)
def test_parse_walltime_refuses(text: object) -> None:
    with pytest.raises(InvalidOptionError, match="walltime"):
        parse_walltime("walltime", text)


def test_walltimes_round_trip_through_format_hms() -> None:
    for seconds in (60, 1800, 3600, 86400 + 61, 7 * 86400):
        assert parse_walltime("walltime", format_hms(seconds)) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "$(touch /tmp/x)",
        "$HOME`id`",
        "${TMPDIR:-$(id)}",
        '$HOME"; id; "',
        "$HOME\\",
        "a\nb",
        "",
    ],
)
def test_shell_word_refuses_expansions(value: str) -> None:
    with pytest.raises(InvalidOptionError, match="worker_extra_args"):
        shell_word("worker_extra_args", value)


def test_name_pattern_matches_expanded_names() -> None:
    pattern = name_pattern("run-$SLURM_ARRAY_JOB_ID-3")
    assert pattern.fullmatch("run-1234-3")
    assert not pattern.fullmatch("run-1234-4")
    assert not pattern.fullmatch("other-1234-3")
