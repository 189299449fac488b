"""The launcher's pure parts: roles, the rank watch, exit codes.

None of these tests start a process or MPI; the launcher itself runs under a
real ``mpirun`` in ``tests/integration/test_mpi.py``.
"""

from __future__ import annotations

import pytest

from hpcdask.mpi import RankWatch, Roles, WorldTooSmallError
from hpcdask.mpi.roles import exit_code_of, rank_of, worker_name

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
    assert roles.workers == (2, 3, 4)
    assert roles.client == 1


def test_roles_without_a_client_make_every_other_rank_a_worker() -> None:
    roles = Roles(2, client=None)
    assert roles.client is None
    assert roles.workers == (1,)
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
        Roles(1, client=None)


def test_under_srun_the_error_speaks_of_tasks() -> None:
    with pytest.raises(WorldTooSmallError, match=r"at least 3 Slurm tasks.*srun -n 3"):
        Roles(2, launcher="srun")


# dask-mpi's own table of rank choices for execute(), as (size, client rank,
# scheduler rank, exclusive workers) -> the worker ranks, or None: too few ranks
@pytest.mark.parametrize(
    ("size", "client", "scheduler", "exclusive", "workers"),
    [
        (4, 1, 0, True, (2, 3)),
        (1, 1, 0, True, None),
        (4, 2, 3, True, (0, 1)),
        (5, 1, 3, True, (0, 2, 4)),
        (3, 2, 2, True, (0, 1)),
        (2, 0, 0, False, (0, 1)),
        (1, 0, 0, False, (0,)),
        (1, 0, 0, True, None),
    ],
)
def test_any_choice_of_ranks(
    size: int,
    client: int,
    scheduler: int,
    exclusive: bool,
    workers: tuple[int, ...] | None,
) -> None:
    if workers is None:
        with pytest.raises(WorldTooSmallError):
            Roles(size, scheduler=scheduler, client=client, exclusive_workers=exclusive)
        return
    roles = Roles(size, scheduler=scheduler, client=client, exclusive_workers=exclusive)
    assert roles.workers == workers
    assert "scheduler" in roles.duties(scheduler)
    assert "client" in roles.duties(client)


def test_inclusive_workers_share_the_scheduler_and_client_ranks() -> None:
    roles = Roles(3, scheduler=0, client=1, exclusive_workers=False)
    assert roles.role(0) == "scheduler+worker"
    assert roles.role(1) == "client+worker"
    assert roles.role(2) == "worker"


def test_without_a_scheduler_rank_every_rank_but_the_client_works() -> None:
    roles = Roles(3, scheduler=None, client=0)
    assert roles.workers == (1, 2)
    assert roles.needed == 2


@pytest.mark.parametrize("rank", [-1, True, 1.5])
def test_a_bad_rank_is_refused_by_name(rank: object) -> None:
    with pytest.raises(ValueError, match="scheduler rank"):
        Roles(4, scheduler=rank)  # type: ignore[arg-type]


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


@pytest.mark.parametrize("prefix", [None, "dask_mpi", "a-b"])
def test_worker_names_give_their_rank_back(prefix: str | None) -> None:
    assert rank_of(worker_name(7, prefix), prefix) == 7
    assert rank_of("other-7", prefix) is None


# -- exit codes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [(None, 0), (0, 0), (3, 3), (256 + 7, 7), (True, 1), ("message", 1)],
)
def test_exit_code_of_system_exit(code: object, expected: int) -> None:
    assert exit_code_of(SystemExit(code)) == expected
