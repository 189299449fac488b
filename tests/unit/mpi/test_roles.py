"""The launcher's pure parts: roles, the rank watch, exit codes.

None of these tests start a process or MPI; the launcher itself runs under a
real ``mpirun`` in ``tests/integration/test_mpi.py``.
"""

from __future__ import annotations

import pytest

from hpcdask.mpi import RankWatch, Roles, WorldTooSmallError
from hpcdask.mpi.roles import exit_code_of, rank_of

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
