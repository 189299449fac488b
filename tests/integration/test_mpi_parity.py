"""dask-mpi's documented behaviour, under hpcdask with a real ``mpirun``.

Each script is written for dask-mpi (``from dask_mpi import ...``) and runs with
only that import changed (:func:`dask_mpi_script`). What could fail is asserted:
exit codes, results, which rank does what, the communicator after the cluster,
and that stderr holds no traceback or error.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from tests.integration import test_mpi
from tests.integration.conftest import wait_for
from tests.integration.test_mpi import (
    HPCDASK_MPI,
    mpirun,
    noise,
    start,
    unexpected_lines,
    wait_for_json,
    write,
)

# MPI jobs started in the background, killed if a test leaves one running
background = test_mpi.background


def dask_mpi_script(path: Path, text: str) -> Path:
    """A script written for dask-mpi, with its import changed to hpcdask's."""
    assert text.count("from dask_mpi import") == 1
    return write(path, text.replace("from dask_mpi import", "from hpcdask.mpi import"))


def rank_lines(stdout: str) -> dict[int, dict[str, object]]:
    """The ``RANK {json}`` records each rank printed, by rank (mpirun may
    interleave the ranks' lines)."""
    found = {}
    for text in re.findall(r"RANK (\{[^{}]*\})", stdout):
        record = json.loads(text)
        found[record["rank"]] = record
    return found


# -- initialize(exit=False) and send_close_signal() --------------------------------

NO_EXIT = """
    from mpi4py import MPI
    from distributed import Client
    from dask_mpi import initialize, send_close_signal
    import json

    world = MPI.COMM_WORLD
    is_client = initialize(exit=False, dashboard_address=":0")
    result = None
    if is_client:
        with Client() as client:
            result = client.submit(lambda x: x + 1, 10).result()
        send_close_signal()
    # every rank is back, and the communicator works
    total = world.allreduce(world.rank)
    print("RANK " + json.dumps(
        {"rank": world.rank, "client": is_client, "sum": total, "result": result}
    ), flush=True)
"""


def test_initialize_without_exit_returns_on_every_rank_with_the_comm_intact(
    tmp_path: Path,
) -> None:
    script = dask_mpi_script(tmp_path / "no_exit.py", NO_EXIT)
    done = mpirun(4, sys.executable, str(script), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ranks = rank_lines(done.stdout)
    assert sorted(ranks) == [0, 1, 2, 3], done.stdout
    assert all(r["sum"] == 0 + 1 + 2 + 3 for r in ranks.values())
    assert [r for r in ranks if ranks[r]["client"]] == [1]
    assert ranks[1]["result"] == 11
    assert unexpected_lines(done.stderr) == [], done.stderr


SPLIT = """
    from mpi4py import MPI
    from distributed import Client
    from dask_mpi import initialize, send_close_signal

    world = MPI.COMM_WORLD
    # rank 3 stays out: the cluster runs on a communicator of ranks 0-2
    comm = world.Split(1 if world.rank == 3 else 0)
    if world.rank != 3:
        if initialize(comm=comm, exit=False, dashboard_address=":0"):
            with Client() as client:
                print("result", client.submit(lambda x: x + 1, 20).result(), flush=True)
            send_close_signal()
    world.Barrier()
    value = world.bcast(100 if world.rank == 0 else 200)
    print(f"rank {world.rank} got {value}", flush=True)
"""


def test_initialize_on_a_split_communicator_leaves_the_world_usable(
    tmp_path: Path,
) -> None:
    script = dask_mpi_script(tmp_path / "split.py", SPLIT)
    done = mpirun(4, sys.executable, str(script), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "result 21" in done.stdout
    assert sorted(re.findall(r"rank (\d) got (\d+)", done.stdout)) == [
        (str(r), "100") for r in range(4)
    ]
    assert unexpected_lines(done.stderr) == [], done.stderr


# -- execute() with any choice of ranks ---------------------------------------------

EXECUTE = """
    import json, os, sys, time
    from mpi4py import MPI
    from distributed import Client
    from dask_mpi import execute

    def client_function(size, client_rank, scheduler_rank, exclusive):
        with Client() as client:
            taken = {client_rank, scheduler_rank} if exclusive else set()
            expected = {r for r in range(size) if r not in taken}
            deadline = time.monotonic() + 60
            while len(client.scheduler_info()["workers"]) < len(expected):
                assert time.monotonic() < deadline, "workers missing"
                time.sleep(0.1)
            names = {w["name"] for w in client.scheduler_info()["workers"].values()}
            # each worker runs a task, on the rank its name says
            ranks = {
                name: client.submit(
                    lambda: MPI.COMM_WORLD.rank, workers=[name], pure=False
                ).result()
                for name in names
            }
            on_scheduler = client.run_on_scheduler(lambda: MPI.COMM_WORLD.rank)
        print("CLIENT " + json.dumps({
            "rank": MPI.COMM_WORLD.rank, "scheduler": on_scheduler,
            "names": sorted(names), "ranks": sorted(ranks.items()),
        }), flush=True)

    if __name__ == "__main__":
        size, client_rank, scheduler_rank = map(int, sys.argv[1:4])
        exclusive = sys.argv[4] == "True"
        code = execute(
            client_function,
            client_args=(size, client_rank, scheduler_rank, exclusive),
            client_rank=client_rank,
            scheduler_rank=scheduler_rank,
            exclusive_workers=exclusive,
            dashboard_address=":0",
        )
        world = MPI.COMM_WORLD
        print("RANK " + json.dumps(
            {"rank": world.rank, "code": code, "sum": world.allreduce(1)}
        ), flush=True)
"""


@pytest.mark.parametrize(
    ("size", "client_rank", "scheduler_rank", "exclusive"),
    [
        (4, 1, 0, True),  # dask-mpi's defaults
        (4, 2, 3, True),
        (5, 1, 3, True),
        (3, 2, 2, True),  # the client beside the scheduler
        (2, 0, 0, False),  # workers beside both
        (1, 0, 0, False),  # all of it on one rank
    ],
)
def test_execute_with_any_choice_of_ranks(
    tmp_path: Path, size: int, client_rank: int, scheduler_rank: int, exclusive: bool
) -> None:
    script = dask_mpi_script(tmp_path / "execute.py", EXECUTE)
    argv = [str(v) for v in (size, client_rank, scheduler_rank, exclusive)]
    done = mpirun(size, sys.executable, str(script), *argv, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    client = json.loads(re.findall(r"CLIENT (\{[^{}]*\})", done.stdout)[0])
    taken = {client_rank, scheduler_rank} if exclusive else set()
    workers = sorted(r for r in range(size) if r not in taken)
    assert client["rank"] == client_rank
    assert client["scheduler"] == scheduler_rank
    assert client["names"] == workers
    assert client["ranks"] == [[r, r] for r in workers]
    # every rank returned 0 from execute() and then used the communicator
    ranks = rank_lines(done.stdout)
    assert sorted(ranks) == list(range(size))
    assert all(r["code"] == 0 and r["sum"] == size for r in ranks.values())
    assert unexpected_lines(done.stderr) == [], done.stderr


@pytest.mark.parametrize(
    ("size", "client_rank", "scheduler_rank", "exclusive", "needed"),
    [(1, 1, 0, True, 3), (1, 0, 0, True, 2)],
)
def test_execute_with_too_few_ranks_says_how_many(
    tmp_path: Path,
    size: int,
    client_rank: int,
    scheduler_rank: int,
    exclusive: bool,
    needed: int,
) -> None:
    """At least one worker of its own: one rank more than dask-mpi asks for
    with the client on rank 1, where dask-mpi would start no worker."""
    script = dask_mpi_script(tmp_path / "execute.py", EXECUTE)
    argv = [str(v) for v in (size, client_rank, scheduler_rank, exclusive)]
    done = mpirun(size, sys.executable, str(script), *argv, cwd=tmp_path, timeout=60)
    assert done.returncode != 0
    assert "WorldTooSmallError" in done.stderr
    assert f"needs at least {needed} MPI ranks" in done.stderr
    assert f"mpirun -np {needed}" in done.stderr
    assert "RANK" not in done.stdout


FAILING_CLIENT = """
    import sys
    from distributed import Client
    from dask_mpi import execute

    def client_function():
        with Client() as client:
            client.submit(sum, [1, 2]).result()
        raise RuntimeError("the analysis failed")

    if __name__ == "__main__":
        code = execute(client_function, dashboard_address=":0")
        print(f"returned {code}", flush=True)
        sys.exit(code)
"""


def test_execute_returns_a_failing_functions_code_on_every_rank(
    tmp_path: Path,
) -> None:
    script = dask_mpi_script(tmp_path / "failing.py", FAILING_CLIENT)
    done = mpirun(4, sys.executable, str(script), cwd=tmp_path)
    assert done.returncode == 1
    assert re.findall(r"returned (\d+)", done.stdout) == ["1"] * 4
    assert noise(done.stderr) == ["Traceback (most recent call last):"], done.stderr
    assert unexpected_lines(done.stderr)[-1] == "RuntimeError: the analysis failed"


# -- worker_class by import path ------------------------------------------------------

GPU_WORKER = """
    import asyncio
    from distributed import Worker

    class GPUWorker:
        '''Shaped like dask-cuda's CUDAWorker: not a Worker subclass, awaiting
        it gives None, close() takes no reason, a resource per device.'''

        def __init__(self, scheduler=None, name=None, nthreads=1,
                     memory_limit="auto", local_directory=None, interface=None,
                     enable_tcp_over_ucx=True, **kwargs):
            assert enable_tcp_over_ucx is False, "worker_options did not arrive"
            self.worker = Worker(scheduler, name=name, nthreads=nthreads,
                                 memory_limit=memory_limit, interface=interface,
                                 local_directory=local_directory,
                                 resources={"GPU": 1})

        def __await__(self):
            return self._start().__await__()

        async def _start(self):
            await self.worker

        async def finished(self):
            await self.worker.finished()

        async def close(self, timeout=2):
            await self.worker.close(timeout=timeout)
"""

USES_GPUS = """
    import os
    from dask_mpi import initialize

    if __name__ == "__main__":
        # as dask-mpi users start dask-cuda's workers; the client stays open
        initialize(
            worker_class="gpu_workers.GPUWorker",
            worker_options={"enable_tcp_over_ucx": False},
            dashboard_address=":0",
        )
        from dask.distributed import Client

        client = Client()
        client.wait_for_workers(2)
        info = client.scheduler_info()["workers"].values()
        print("resources", sorted(w["resources"]["GPU"] for w in info))
        print("on a GPU", client.submit(os.getpid, resources={"GPU": 1}).result() > 0)
"""


@pytest.mark.parametrize("how", ["initialize", "hpcdask-mpi run"])
def test_a_worker_class_by_import_path(tmp_path: Path, how: str) -> None:
    write(tmp_path / "gpu_workers.py", GPU_WORKER)
    script = dask_mpi_script(tmp_path / "gpus.py", USES_GPUS)
    command = [sys.executable] if how == "initialize" else [*HPCDASK_MPI, "run"]
    if how != "initialize":
        # the script's initialize() does nothing there: the command says it
        command += ["--worker-class", "gpu_workers.GPUWorker", "--dashboard-address"]
        command += [":0", "--worker-options", '{"enable_tcp_over_ucx": false}']
    done = mpirun(
        4, *command, str(script), cwd=tmp_path, env={"PYTHONPATH": f"{tmp_path}:."}
    )
    assert done.returncode == 0, done.stderr
    assert "resources [1, 1]" in done.stdout
    assert "on a GPU True" in done.stdout
    assert unexpected_lines(done.stderr) == [], done.stderr


# -- the dask-mpi command's options under hpcdask-mpi serve ----------------------------


def test_serve_takes_the_dask_mpi_commands_options(
    tmp_path: Path, background: list[subprocess.Popen[bytes]]
) -> None:
    scheduler_file = tmp_path / "scheduler.json"
    process = start(
        background,
        3,
        *HPCDASK_MPI,
        "serve",
        "--scheduler-file",
        str(scheduler_file),
        "--scheduler-port",
        "0",
        "--scheduler-rank",
        "1",
        "--inclusive-workers",
        "--name",
        "dask_mpi",
        "--interface",
        "lo",
        "--protocol",
        "tcp",
        "--nthreads",
        "2",
        "--memory-limit",
        "1e9",
        "--local-directory",
        str(tmp_path / "scratch"),
        "--nanny",
        "--worker-class",
        "distributed.Worker",
        "--worker-options",
        '{"resources": {"A": 1}}',
        "--no-dashboard",
        "--dashboard-address",
        ":0",
        cwd=tmp_path,
    )
    wait_for_json(scheduler_file, process, timeout=60)
    with Client(scheduler_file=str(scheduler_file), timeout=30) as client:
        client.wait_for_workers(3, timeout=60)
        info = client.scheduler_info()["workers"]
        assert sorted(w["name"] for w in info.values()) == [
            "dask_mpi-0",
            "dask_mpi-1",
            "dask_mpi-2",
        ]
        assert all(a.startswith("tcp://127.0.0.1:") for a in info)
        assert all(w["nthreads"] == 2 for w in info.values())
        assert all(w["memory_limit"] == 10**9 for w in info.values())
        assert all(w["resources"] == {"A": 1} for w in info.values())
        # --nanny: each worker runs in a process of its own under its rank
        assert all(w.get("nanny") for w in info.values())
        assert (
            client.run_on_scheduler(
                lambda: __import__("mpi4py.MPI").MPI.COMM_WORLD.rank
            )
            == 1
        )
        assert client.submit(sum, [1, 2, 3]).result() == 6
        client.shutdown()
    assert process.wait(timeout=60) == 0
    stderr = (tmp_path / "stderr").read_text()
    assert unexpected_lines(stderr) == [], stderr


JOIN = """
    import sys
    from mpi4py import MPI
    from distributed import Client
    from dask_mpi import execute

    def client_function():
        with Client() as client:
            client.wait_for_workers(2, timeout=60)
            names = sorted(w["name"] for w in client.scheduler_info()["workers"].values())
            print("names", names, "sum", client.submit(sum, [2, 3]).result(), flush=True)

    if __name__ == "__main__":
        code = execute(
            client_function, client_rank=0, scheduler=False,
            scheduler_address=sys.argv[1], worker_name="joined",
        )
        print(f"rank {MPI.COMM_WORLD.rank} returned {code}", flush=True)
"""


def test_execute_without_a_scheduler_adds_workers_to_one_elsewhere(
    tmp_path: Path,
) -> None:
    script = dask_mpi_script(tmp_path / "join.py", JOIN)
    with (
        LocalCluster(
            n_workers=0, processes=False, protocol="tcp", dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        done = mpirun(
            3, sys.executable, str(script), cluster.scheduler_address, cwd=tmp_path
        )
        # this run's workers are gone again, the scheduler runs on
        assert client.scheduler_info()["workers"] == {}
        assert client.status == "running"
    assert done.returncode == 0, done.stderr
    assert "names ['joined-1', 'joined-2'] sum 5" in done.stdout
    assert sorted(re.findall(r"rank (\d) returned (\d+)", done.stdout)) == [
        ("0", "0"),
        ("1", "0"),
        ("2", "0"),
    ]
    assert unexpected_lines(done.stderr) == [], done.stderr


def test_serve_without_a_scheduler_joins_one_elsewhere(
    tmp_path: Path, background: list[subprocess.Popen[bytes]]
) -> None:
    with (
        LocalCluster(
            n_workers=0, processes=False, protocol="tcp", dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        process = start(
            background,
            2,
            *HPCDASK_MPI,
            "serve",
            "--no-scheduler",
            cluster.scheduler_address,
            "--name",
            "joined",
            cwd=tmp_path,
        )
        client.wait_for_workers(2, timeout=60)
        names = sorted(w["name"] for w in client.scheduler_info()["workers"].values())
        assert names == ["joined-0", "joined-1"]
        future = client.submit(sum, [4, 5])
        assert future.result() == 9
        del future  # no data left to move away from the workers
        wait_for(
            lambda: (
                not client.run_on_scheduler(
                    lambda dask_scheduler: len(dask_scheduler.tasks)
                )
            ),
            what="the scheduler to forget the task",
        )
        # the scheduler closes them: their ranks end, it stays up
        client.retire_workers(names=names)
        started = time.monotonic()
        assert process.wait(timeout=60) == 0
        assert time.monotonic() - started < 30
        assert client.status == "running"
    stderr = (tmp_path / "stderr").read_text()
    assert unexpected_lines(stderr) == [], stderr
