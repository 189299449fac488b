"""Node failures on the multi-node site while a computation runs (issue #13, part 5).

A node of a running 2-node job is killed (its slurmd and every process of its
jobs) or cut off from the network for 20 s (``ci/multinode-node.sh``). Slurm
requeues the job (its default) or, with ``--no-requeue``, ends it NODE_FAIL.
Each test checks that the computation's result is right, that capacity comes
back on other nodes, that no failed start is counted, and records the time to
notice and to recover for the fault table (``python -m benchmarks.faults``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from distributed import Client

from hpcdask import SLURMCluster
from hpcdask.runner import SubprocessRunner
from tests.integration.conftest import wait_for
from tests.integration.fault_report import record_fault
from tests.integration.multinode_site import MultiNode

USABLE = ("idle", "mixed", "allocated")
#: how long the network stays down in the network fault
CUT_SECONDS = 20.0


def slow_square(x: int) -> int:
    time.sleep(0.3)
    return x * x


@pytest.fixture
def broken_nodes(multinode: MultiNode) -> Iterator[list[str]]:
    """Nodes a test breaks; each is brought back and waited for after it."""
    broken: list[str] = []
    yield broken
    for node in broken:
        multinode.node("netup", node)
        multinode.node("start", node)
    for node in broken:
        wait_for(
            lambda node=node: multinode.node_states()[node] in USABLE,  # type: ignore[misc]
            60,
            f"{node} back",
        )


@dataclass
class Timeline:
    """What was seen after the fault, in seconds from it."""

    workers_lost: float | None = None  # the scheduler had fewer than 2 workers
    noticed: float | None = None  # cluster.jobs() showed the job not running
    recovered: float | None = None  # 2 workers again, none on the broken node
    computed: float | None = None  # the result was in
    shown: set[tuple[str, str]] = field(default_factory=set)  # (state, reason)


def watch(
    cluster: SLURMCluster,
    client: Client,
    job_id: str,
    broken_host: str,
    heal: tuple[float, object] | None,
    total: object,
) -> Timeline:
    """Watch the cluster from the fault until the result is in and capacity is
    back; ``heal`` = (seconds, callable) undoes the fault on the way."""
    seen = Timeline()
    started = time.monotonic()
    # recovery is due within 45 s of the fault (or of its end); a kill or a
    # cut of 20 s takes 10-30 s here
    give_up = 45 + (heal[0] if heal is not None else 0.0)
    # once a cut node is back on the network, Slurm may run the requeued job
    # (or a replacement) on it again: capacity anywhere is then recovery
    healed = False
    while seen.computed is None or seen.recovered is None:
        now = time.monotonic() - started
        if now > give_up:
            hosts = [w["host"] for w in client.scheduler_info()["workers"].values()]
            raise AssertionError(
                f"no result or no recovery {give_up:.0f} s after the fault: "
                f"{seen}; workers on {hosts}"
            )
        if heal is not None and now >= heal[0]:
            heal[1]()  # type: ignore[operator]
            heal = None
            healed = True
        hosts = [w["host"] for w in client.scheduler_info()["workers"].values()]
        if seen.workers_lost is None and len(hosts) < 2:
            seen.workers_lost = now
        jobs = cluster.jobs()
        row = jobs[jobs["job_id"] == job_id].iloc[0]
        seen.shown.add((str(row["state"]), str(row["reason"])))
        if seen.noticed is None and row["state"] != "running":
            seen.noticed = now
        healthy = len(hosts) == 2 and (healed or broken_host not in hosts)
        if seen.recovered is None and seen.workers_lost is not None and healthy:
            seen.recovered = now
        if seen.computed is None and total.done():  # type: ignore[attr-defined]
            seen.computed = now
        time.sleep(0.1)
    return seen


def break_a_node(
    site: MultiNode, fault: str, requeue: bool, broken: list[str]
) -> tuple[Timeline, SLURMCluster]:
    """A 2-node job computes; one of its nodes suffers ``fault`` (kill or cut)."""
    # not the GPU node (other tests use it); --no-requeue: NODE_FAIL, replaced
    extra = ["--exclude=mn4"] + ([] if requeue else ["--no-requeue"])
    with (
        SLURMCluster(
            cores=1, memory="1GB", processes=1, nodes=2, job_extra_directives=extra
        ) as cluster,
        Client(cluster) as client,
    ):
        cluster.scale(jobs=1)
        client.wait_for_workers(2, timeout=60)
        futures = client.map(slow_square, range(60))  # ~9 s on two workers
        total = client.submit(sum, futures)
        wait_for(lambda: sum(f.done() for f in futures) >= 10, 60, "some results")
        (job_id,) = cluster.jobs()["job_id"]
        # the job's second node (the first runs the batch script)
        (host,) = [
            w["host"]
            for w in client.scheduler_info()["workers"].values()
            if str(w["name"]).endswith("-1")
        ]
        node = {addr: name for name, addr in site.nodes.items()}[host]
        broken.append(node)
        heal = None
        if fault == "kill":
            site.node("kill", node)
        else:
            site.node("netdown", node)
            heal = (CUT_SECONDS, lambda: site.node("netup", node))
        seen = watch(cluster, client, job_id, host, heal, total)
        assert total.result() == sum(x * x for x in range(60))
        assert cluster.failures == []  # a node failure is not a failed start
        jobs = cluster.jobs().set_index("job_id")
        if requeue:
            # Slurm restarted the same job elsewhere
            assert int(site.job_field(job_id, "Restarts")) >= 1
            assert seen.shown - {("running", "")}, "the requeue was never shown"
        else:
            assert jobs.loc[job_id, "state"] == "node_fail"
            assert jobs.loc[job_id, "reason"] == "NodeDown"
            assert len(jobs) == 2 and jobs["state"].iloc[-1] == "running"
            runner = cluster.backend.runner  # type: ignore[attr-defined]
            assert isinstance(runner, SubprocessRunner)
            assert sum(1 for argv in runner.calls if argv[0] == "sbatch") == 2
    return seen, cluster


def record(fault: str, requeue: bool, seen: Timeline) -> None:
    how = "Slurm requeues" if requeue else "--no-requeue: NODE_FAIL"
    title = (
        "node killed (slurmd and its jobs)"
        if fault == "kill"
        else (f"node cut off the network {CUT_SECONDS:.0f} s")
    )
    shown = ", ".join(sorted(f"{s} ({r})" if r else s for s, r in seen.shown))
    number = "11" if fault == "kill" else "12"
    record_fault(
        f"{number}. {title} ({how})",
        "2-node job mid-computation: sum of 60 tasks right; capacity back on "
        "other nodes; no failed start",
        f"pass: workers lost after {seen.workers_lost:.1f} s, the queue's "
        f"verdict shown after {seen.noticed:.1f} s ({shown}); result right "
        f"{seen.computed:.1f} s after the fault",
        seen.recovered,
        workers_lost_seconds=round(seen.workers_lost or 0, 1),
        noticed_seconds=round(seen.noticed or 0, 1),
        computation_seconds=round(seen.computed or 0, 1),
    )


@pytest.mark.parametrize("requeue", [True, False], ids=["requeue", "no-requeue"])
def test_node_killed_mid_computation(
    on_multinode: MultiNode, broken_nodes: list[str], requeue: bool
) -> None:
    seen, _ = break_a_node(on_multinode, "kill", requeue, broken_nodes)
    record("kill", requeue, seen)


@pytest.mark.parametrize("requeue", [True, False], ids=["requeue", "no-requeue"])
def test_node_cut_off_for_20_s_mid_computation(
    on_multinode: MultiNode, broken_nodes: list[str], requeue: bool
) -> None:
    """The result is right either way. With --no-requeue the job ends
    NODE_FAIL, its cut-off workers are removed and a replacement runs. When
    Slurm requeues it, the cut-off node's workers would stay connected after the
    network returns (their processes live on) and hold their names; hpcdask
    removes them at the requeue (``Fleet.job_requeued``), so the restarted
    job's workers take their names and capacity comes back."""
    seen, _ = break_a_node(on_multinode, "netdown", requeue, broken_nodes)
    record("netdown", requeue, seen)
