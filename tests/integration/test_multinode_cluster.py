"""hpcdask clusters on the multi-node Slurm site (issue #13, parts 2 and 3).

Workers on other hosts reach a scheduler on the login node (the host, at
10.77.0.1 on the site's network) over TLS; multi-node jobs start workers on
every node of the job; a node that cannot reach the scheduler fails its job in
seconds with a message naming the address and the node. Every command goes to
the site through ``on_multinode`` (SLURM_CONF for the test only).
"""

from __future__ import annotations

import socket
import time
from collections import defaultdict
from pathlib import Path

import pytest
from distributed import Client

from hpcdask import JobFailedError, PBSCluster, SLURMCluster
from tests.integration.conftest import wait_for
from tests.integration.multinode_site import MultiNode

HOSTS = {"10.77.0.11": "mn1", "10.77.0.12": "mn2", "10.77.0.13": "mn3", "10.77.0.14": "mn4"}  # fmt: skip


def square(x: int) -> int:
    return x * x


def hosts_of_jobs(client: Client, cluster: SLURMCluster) -> dict[str, set[str]]:
    """Job name -> the hosts its connected workers run on."""
    hosts: dict[str, set[str]] = defaultdict(set)
    for info in client.scheduler_info()["workers"].values():
        record = cluster.table.job_of_worker(str(info["name"]))
        assert record is not None, f"worker {info['name']} maps to no job"
        hosts[record.name].add(str(info["host"]))
    return dict(hosts)


def test_two_node_jobs_put_workers_on_every_node(
    on_multinode: MultiNode, log_directory: Path
) -> None:
    site = on_multinode
    # 5 GB a node, more than half a node's 8 GiB: two jobs of two nodes take
    # 4 hosts (asking for all 8 CPUs instead would wait for every other test's
    # job on the shared site to leave)
    with SLURMCluster(
        cores=2, memory="5GB", processes=2, nodes=2, walltime="00:05:00"
    ) as cluster:
        script = cluster.job_script()
        assert "#SBATCH --nodes=2" in script and "\nsrun " in script
        # TLS by default; the scheduler's address on the site's network: the
        # route to the site's controller (mnctl) leaves from the bridge
        assert cluster.manager.scheduler_address.startswith(f"tls://{site.login_addr}:")
        started = time.monotonic()
        cluster.scale(jobs=1)
        with Client(cluster) as client:
            client.wait_for_workers(4, timeout=90)
            one_job = time.monotonic() - started
            (hosts,) = hosts_of_jobs(client, cluster).values()
            assert len(hosts) == 2  # one job, two hosts
            cluster.scale(jobs=2)
            # whole nodes: on the shared site another test's job (or a node
            # another test broke) can hold one for a while
            try:
                client.wait_for_workers(8, timeout=120)
            except TimeoutError as e:
                jobs = cluster.jobs()[["job_id", "state", "reason", "node"]]
                raise AssertionError(f"8 workers not there: {jobs}") from e
            by_job = hosts_of_jobs(client, cluster)
            assert [len(h) for h in by_job.values()] == [2, 2]
            every = set().union(*by_job.values())
            assert every == set(site.nodes.values())  # 4 distinct addresses
            # each worker is where the scheduler believes, named JOB-<node>-<process>
            seen = client.run(socket.gethostname)
            info = client.scheduler_info()["workers"]
            assert {HOSTS[info[a]["host"]] == h for a, h in seen.items()} == {True}
            names = sorted(str(w["name"]) for w in info.values())
            assert names == sorted(
                f"{job}-{node}-{process}"
                for job in ("dask-worker-0", "dask-worker-1")
                for node in (0, 1)
                for process in (0, 1)
            )
            futures = client.map(square, range(200))
            assert client.submit(sum, futures).result() == sum(
                x * x for x in range(200)
            )
            # every host computed some of it
            who = client.who_has(futures)
            used = {info[a]["host"] for owners in who.values() for a in owners}
            assert used == every
            # whole jobs: 2 jobs of 2 nodes of 2 cores
            jobs = cluster.jobs()
            assert len(jobs) == 2 and set(jobs["state"]) == {"running"}
            assert set(jobs["workers"]) == {4}
            usage = cluster.usage()
            assert (usage.cores_in_use, usage.nodes_in_use) == (8, 4)
            rates = {round(c.core_hours / (c.seconds / 3600), 6) for c in usage.jobs}
            assert rates == {4.0}  # core-hours per hour: 2 nodes x 2 cores
            ids = sorted(jobs["job_id"])
    assert site.queued_job_ids(log_directory) == []  # close() cancelled both
    print(f"one 2-node job: 4 workers in {one_job:.1f} s; jobs {ids}")


def test_unreachable_scheduler_fails_fast_naming_address_and_node(
    on_multinode: MultiNode,
) -> None:
    # the classic mistake: an address that is loopback, here given on purpose
    # (a login node whose hostname resolves to 127.0.1.1 does it by accident)
    with SLURMCluster(
        cores=1,
        memory="1GB",
        nodes=2,
        scheduler_options={"host": "127.0.0.1", "dashboard_address": ":0"},
    ) as cluster:
        address = cluster.manager.scheduler_address
        assert address.startswith("tls://127.0.0.1:")
        started = time.monotonic()
        cluster.scale(jobs=1)
        with Client(cluster) as client, pytest.raises(JobFailedError) as failed:
            client.wait_for_workers(1, timeout=90)
        seconds = time.monotonic() - started
        error = failed.value
        tail = "\n".join(error.log_tail)
        # one line per node, naming the node, the address and what to change
        lines = [line for line in error.log_tail if line.startswith("hpcdask:")]
        assert len(lines) == 2, tail
        for line in lines:
            assert f"cannot reach the scheduler at {address} (" in line
            assert "Connection refused" in line and "interface=" in line
        assert {line.split()[2] for line in lines} <= set(on_multinode.nodes)
        assert len({line.split()[2] for line in lines}) == 2
        assert cluster.jobs()["state"][0] == "failed"
        assert len(cluster.failures) == 1
        # far below the 60-s death timeout a worker would otherwise wait
        assert seconds < 30
    print(f"unreachable scheduler: JobFailedError after {seconds:.1f} s")


def test_worker_interface_differs_from_the_schedulers(on_multinode: MultiNode) -> None:
    site = on_multinode
    # the login node's interface to the nodes is the bridge "hpcmn0"; the nodes
    # have only "eth0": interface="hpcmn0" alone fails on the nodes...
    with SLURMCluster(cores=1, memory="1GB", interface="hpcmn0") as cluster:
        cluster.scale(jobs=1)
        with Client(cluster) as client, pytest.raises(JobFailedError) as failed:
            client.wait_for_workers(1, timeout=60)
        # the job's check says so before any worker starts
        (line,) = [x for x in failed.value.log_tail if x.startswith("hpcdask:")]
        assert "has no network interface hpcmn0 (it has lo, eth0)" in line
        assert "worker_interface=" in line
    # ...and the scheduler's own interface in scheduler_options fixes it
    with SLURMCluster(
        cores=1,
        memory="1GB",
        processes=1,
        nodes=2,
        interface="eth0",
        scheduler_options={"interface": "hpcmn0", "dashboard_address": ":0"},
    ) as cluster:
        assert cluster.scheduler_address.startswith(f"tls://{site.login_addr}:")
        assert "--interface eth0" in cluster.job_script()
        cluster.scale(jobs=1)
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=60)
            hosts = {w["host"] for w in client.scheduler_info()["workers"].values()}
            assert len(hosts) == 2 and hosts <= set(site.nodes.values())
            assert client.submit(square, 7).result() == 49


def test_pbs_two_node_job_through_slurms_torque_commands(
    on_multinode: MultiNode,
) -> None:
    """What can be checked here of PBS: Slurm's qsub gives the select=2 job two
    nodes. Its workers cannot start: the site has no pbsdsh (PBS's launcher),
    and the job says so at once instead of hanging."""
    with PBSCluster(cores=1, memory="1GB", nodes=2) as cluster:
        assert "#PBS -l select=2:ncpus=1:mem=954mb" in cluster.job_script()
        cluster.scale(jobs=1)
        with Client(cluster) as client, pytest.raises(JobFailedError) as failed:
            client.wait_for_workers(1, timeout=60)
        (job_id,) = cluster.jobs()["job_id"]
        assert on_multinode.job_field(job_id, "NumNodes") == "2"
        assert "pbsdsh: command not found" in "\n".join(failed.value.log_tail)


def sleep_and_return(x: int) -> int:
    time.sleep(2)
    return x


def test_adapt_asks_for_whole_multi_node_jobs(
    on_multinode: MultiNode, log_directory: Path
) -> None:
    site = on_multinode
    with (
        SLURMCluster(cores=1, memory="1GB", processes=1, nodes=2) as cluster,
        Client(cluster) as client,
    ):
        cluster.adapt(minimum_jobs=0, maximum_jobs=3, idle_timeout=2)
        # 4 untimed tasks ask for 4 workers: 2 jobs of 2 nodes, not 4 jobs
        futures = client.map(sleep_and_return, range(4))
        assert sorted(client.gather(futures)) == [0, 1, 2, 3]
        runner = cluster.backend.runner  # type: ignore[attr-defined]
        submitted = [argv for argv in runner.calls if argv[0] == "sbatch"]
        assert len(submitted) == 1  # one job array
        assert len(cluster.jobs()) == 2
        hosts = {job: len(h) for job, h in hosts_of_jobs(client, cluster).items()}
        assert set(hosts.values()) <= {2}  # connected jobs: workers on 2 hosts
        del futures
        wait_for(
            lambda: site.queued_job_ids(log_directory) == [],
            30,
            "idle jobs to be given back",
        )
        assert not client.scheduler_info()["workers"]
