"""The multi-node Slurm test site itself (ci/multinode-up.sh, issue #13).

Four nodes with their own hostnames and addresses, a gpu partition whose jobs see
CUDA_VISIBLE_DEVICES, jobs that reach a service on the host's bridge address, jobs
that submit jobs, and a node that dies and comes back. Every command goes to the
site through ``multinode.env``; the one-node Slurm of the other tests is untouched.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import MultiNode, wait_for

USABLE = ("idle", "mixed", "allocated")


def sbatch(multinode: MultiNode, cwd: Path, *args: str) -> str:
    """Submit from ``cwd`` (so ``multinode_jobs`` sees the job); the job id."""
    return multinode.run("sbatch", "--parsable", *args, cwd=cwd).stdout.strip()


def wait_ended(multinode: MultiNode, job_id: str, timeout: float = 60) -> str:
    """Wait until the job has ended; its final state."""
    ended = (
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
    )

    def state() -> str:
        return multinode.job_field(job_id, "JobState")

    wait_for(lambda: state() in ended, timeout, f"job {job_id} to end")
    return state()


def test_four_nodes_with_their_own_names_and_addresses(multinode: MultiNode) -> None:
    assert sorted(multinode.nodes) == ["mn1", "mn2", "mn3", "mn4"]
    addresses = sorted(multinode.nodes.values())
    assert addresses == ["10.77.0.11", "10.77.0.12", "10.77.0.13", "10.77.0.14"]
    states = multinode.node_states()
    assert sorted(states) == sorted(multinode.nodes)
    assert all(state in USABLE for state in states.values()), states
    # each node advertises the configured CPUs and memory (config_overrides)
    out = multinode.run(
        "sinfo", "-h", "-N", "-p", multinode.partition, "-o", "%N %c %m"
    )
    assert {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()} == {
        node: ["8", "8192"] for node in multinode.nodes
    }
    assert multinode.gpus == {"mn4": 2}
    assert multinode.login_addr == "10.77.0.1"
    assert socket.gethostbyname(multinode.login_host) == multinode.login_addr
    for node, addr in multinode.nodes.items():
        assert socket.gethostbyname(node) == addr
    # the site is reached through multinode.env only: this process keeps talking
    # to the one-node Slurm
    assert os.environ.get("SLURM_CONF") != multinode.env["SLURM_CONF"]


def test_srun_across_four_nodes_sees_four_hosts(
    multinode: MultiNode, multinode_jobs: Callable[[], list[str]], log_directory: Path
) -> None:
    out = multinode.run(
        "srun", "-N4", "--ntasks-per-node=1", "-t", "1",
        "sh", "-c", 'echo "$SLURMD_NODENAME $(hostname) $(hostname -I)"',
        cwd=log_directory,
    )  # fmt: skip
    rows = [line.split() for line in out.stdout.splitlines()]
    assert len(rows) == 4, out.stdout
    # Slurm's node name, the process's hostname and its only address agree
    assert {(name, host, addr) for name, host, addr in rows} == {
        (node, node, addr) for node, addr in multinode.nodes.items()
    }


def test_sbatch_across_four_nodes(
    multinode: MultiNode, multinode_jobs: Callable[[], list[str]], log_directory: Path
) -> None:
    job = sbatch(
        multinode, log_directory, "-N4", "--ntasks-per-node=1", "-t", "1",
        "-o", "four-%j.out", "--wrap", "srun sh -c 'echo $(hostname) $(hostname -I)'",
    )  # fmt: skip
    assert wait_ended(multinode, job) == "COMPLETED"
    lines = (log_directory / f"four-{job}.out").read_text().splitlines()
    assert sorted(tuple(line.split()) for line in lines) == sorted(
        multinode.nodes.items()
    )
    assert multinode.job_field(job, "NodeList") == "mn[1-4]"


def test_two_concurrent_two_node_jobs_cover_four_hosts(
    multinode: MultiNode, multinode_jobs: Callable[[], list[str]], log_directory: Path
) -> None:
    # each job writes its hosts, then waits for the other's: both finish only if
    # they ran at the same time, on four distinct hosts (--exclusive)
    jobs = {}
    for me, other in (("a", "b"), ("b", "a")):
        script = (
            f"srun hostname > hosts-{me}.tmp && mv hosts-{me}.tmp hosts-{me}; "
            f"for i in $(seq 300); do [ -f hosts-{other} ] && exit 0; sleep 0.1; done; exit 3"
        )
        jobs[me] = sbatch(
            multinode, log_directory, "-N2", "--exclusive", "-t", "2", "--wrap", script
        )
    assert {me: wait_ended(multinode, job) for me, job in jobs.items()} == {
        "a": "COMPLETED",
        "b": "COMPLETED",
    }
    hosts_a = (log_directory / "hosts-a").read_text().split()
    hosts_b = (log_directory / "hosts-b").read_text().split()
    assert len(hosts_a) == len(hosts_b) == 2
    assert sorted(hosts_a + hosts_b) == sorted(multinode.nodes)


def test_gpu_jobs_see_cuda_visible_devices(
    multinode: MultiNode, multinode_jobs: Callable[[], list[str]], log_directory: Path
) -> None:
    show = ["sh", "-c", 'echo "[${CUDA_VISIBLE_DEVICES-unset}] $(hostname)"']
    gpu = ["srun", "-p", multinode.gpu_partition, "-t", "1"]
    one = multinode.run(*gpu, "--gres=gpu:1", *show, cwd=log_directory).stdout
    assert one.split() == ["[0]", "mn4"]
    two = multinode.run(*gpu, "--gpus=2", *show, cwd=log_directory).stdout
    assert two.split() == ["[0,1]", "mn4"]
    none = multinode.run(*gpu, *show, cwd=log_directory).stdout
    assert none.split() == ["[unset]", "mn4"]
    too_many = multinode.run(*gpu, "--gres=gpu:3", "true", check=False)
    assert too_many.returncode != 0
    assert "Requested node configuration is not available" in too_many.stderr


def test_two_concurrent_one_gpu_jobs_see_different_devices(
    multinode: MultiNode, multinode_jobs: Callable[[], list[str]], log_directory: Path
) -> None:
    jobs = {}
    for me, other in (("a", "b"), ("b", "a")):
        script = (
            f"echo $CUDA_VISIBLE_DEVICES > gpu-{me}.tmp && mv gpu-{me}.tmp gpu-{me}; "
            f"for i in $(seq 300); do [ -f gpu-{other} ] && exit 0; sleep 0.1; done; exit 3"
        )
        jobs[me] = sbatch(
            multinode, log_directory, "-p", multinode.gpu_partition, "--gres=gpu:1",
            "-t", "1", "--wrap", script,
        )  # fmt: skip
    assert [wait_ended(multinode, job) for job in jobs.values()] == ["COMPLETED"] * 2
    seen = {(log_directory / f"gpu-{me}").read_text().strip() for me in jobs}
    assert seen == {"0", "1"}


def test_jobs_reach_a_server_on_the_bridge_address(
    multinode: MultiNode, multinode_jobs: Callable[[], list[str]], log_directory: Path
) -> None:
    # how Dask workers on the nodes reach a scheduler on the login node
    server = socket.create_server((multinode.login_addr, 0))
    server.settimeout(60)
    port = server.getsockname()[1]
    # a server on the host's loopback is not reachable: 127.0.0.1 on a node is
    # the node's own loopback
    loopback = socket.create_server(("127.0.0.1", 0))
    loopback_port = loopback.getsockname()[1]
    seen: list[tuple[str, str]] = []

    def accept() -> None:
        for _ in multinode.nodes:
            conn, (peer, _) = server.accept()
            with conn:
                seen.append((peer, conn.recv(100).decode()))

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    client = (
        "import socket, sys\n"
        f"with socket.create_connection(({multinode.login_host!r}, {port}), 10) as c:\n"
        "    c.sendall(socket.gethostname().encode())\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {loopback_port}), 5)\n"
        "    print('loopback reached')\n"
        "except ConnectionRefusedError:\n"
        "    print('loopback refused')\n"
    )
    try:
        out = multinode.run(
            "srun", "-N4", "--ntasks-per-node=1", "-t", "1",
            sys.executable, "-c", client, cwd=log_directory,
        )  # fmt: skip
        thread.join(30)
    finally:
        server.close()
        loopback.close()
    assert out.stdout.splitlines() == ["loopback refused"] * 4
    # the server saw each node connect from its own address
    assert sorted(seen) == sorted(
        (addr, node) for node, addr in multinode.nodes.items()
    )


def test_sbatch_from_inside_a_job(
    multinode: MultiNode, multinode_jobs: Callable[[], list[str]], log_directory: Path
) -> None:
    inner = (
        "sbatch --parsable -o inner-%j.out"
        " --wrap 'echo $(hostname) $(hostname -I) $SLURM_SUBMIT_HOST'"
    )
    outer = sbatch(
        multinode, log_directory, "-t", "1", "-o", "outer.out", "--wrap", inner
    )
    assert wait_ended(multinode, outer) == "COMPLETED"
    inner_id = (log_directory / "outer.out").read_text().strip()
    assert inner_id.isdigit(), inner_id
    assert wait_ended(multinode, inner_id) == "COMPLETED"
    node, addr, submit_host = (
        (log_directory / f"inner-{inner_id}.out").read_text().split()
    )
    assert multinode.nodes[node] == addr
    # submitted on the outer job's node, to the same cluster, from its directory
    # (AllocNode says "localhost" for every job here: one munged signs for all)
    assert submit_host == multinode.job_field(outer, "BatchHost")
    assert multinode.job_field(inner_id, "WorkDir") == str(log_directory)


def _wait_state(
    multinode: MultiNode, node: str, want: Callable[[str], bool], timeout: float
) -> float:
    """Seconds until ``want(state)`` holds for the node; fails after ``timeout``."""
    start = time.monotonic()
    wait_for(
        lambda: want(multinode.node_states()[node]), timeout, f"{node} state change"
    )
    return time.monotonic() - start


@pytest.fixture
def fault_node(multinode: MultiNode) -> Iterator[str]:
    """A node to break (not the GPU node); brought back whatever the test did."""
    node = "mn3"
    yield node
    multinode.node("netup", node)
    multinode.node("start", node)
    _wait_state(multinode, node, lambda s: s in USABLE, 30)


def test_killed_node_shows_down_then_returns(
    multinode: MultiNode,
    multinode_jobs: Callable[[], list[str]],
    log_directory: Path,
    fault_node: str,
) -> None:
    node = fault_node
    job = sbatch(
        multinode, log_directory, "-w", node, "--no-requeue", "-t", "5",
        "--wrap", "sleep 300",
    )  # fmt: skip
    wait_for(lambda: multinode.job_field(job, "JobState") == "RUNNING", 30, "job start")
    out = multinode.node("kill", node)
    assert f"{node} killed" in out
    assert multinode.node("pids", node).split() == []
    to_down = _wait_state(multinode, node, lambda s: s.startswith("down"), 30)
    assert wait_ended(multinode, job, 10) == "NODE_FAIL"
    multinode.node("start", node)
    to_idle = _wait_state(multinode, node, lambda s: s == "idle", 15)
    print(
        f"{node}: killed -> down in {to_down:.1f} s, restarted -> idle in {to_idle:.1f} s"
    )
    # the node runs jobs again
    out = multinode.run("srun", "-w", node, "-t", "1", "hostname", cwd=log_directory)
    assert out.stdout.strip() == node


def test_cut_off_node_shows_down_then_returns(
    multinode: MultiNode, fault_node: str
) -> None:
    node = fault_node
    multinode.node("netdown", node)
    to_down = _wait_state(multinode, node, lambda s: s.startswith("down"), 30)
    multinode.node("netup", node)
    # slurmctld pings a DOWN node less often: back ~6-16 s after the network
    to_idle = _wait_state(multinode, node, lambda s: s == "idle", 30)
    print(
        f"{node}: cut off -> down in {to_down:.1f} s, reconnected -> idle in {to_idle:.1f} s"
    )
