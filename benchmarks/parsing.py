"""How long hpcdask takes to read a big queue, on the event loop that also runs
the scheduler: parsing a 10,000-job ``squeue`` and ``qstat -f`` output, and one
whole poll cycle of a job table with 10,000 live jobs (commands answered from
memory, so only hpcdask's own work is timed). Target: each under 50 ms.

    .venv/bin/python -m benchmarks.parsing [--jobs 10000] [--repeats 20]

The outputs are made from real saved lines (tests/fixtures/), repeated with new
ids: the same shapes Slurm and Slurm's Torque wrapper print.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hpcdask.config import resolve_job_options
from hpcdask.jobs import JobTable
from hpcdask.runner import Completed, FakeRunner
from hpcdask.systems.base import CommandBackend
from hpcdask.systems.pbs import PBS
from hpcdask.systems.slurm import Slurm

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def squeue_output(jobs: int, ids: set[str] | None = None) -> str:
    """``jobs`` running jobs as squeue prints them (epoch times, --array), each
    submitted and started a second after the one before; only ``ids`` if given."""
    saved = (FIXTURES / "slurm/queue/squeue_running_epoch.txt").read_text()
    _, state, reason, node, submit, start, _end, limit, left = saved.splitlines()[
        0
    ].split("|")
    lines = []
    for i in range(jobs):
        job_id = str(500_000 + i)
        if ids is None or job_id in ids:
            t0, t1 = int(submit) + i, int(start) + i
            times = f"{t0}|{t1}|{t1 + 600}"
            lines.append(f"{job_id}|{state}|{reason}|{node}|{times}|{limit}|{left}\n")
    return "".join(lines)


def qstat_output(jobs: int, ids: set[str] | None = None) -> str:
    """``jobs`` running jobs as Slurm's ``qstat -f`` wrapper prints them, with
    times a second apart; only ``ids`` if given."""
    text = (FIXTURES / "pbs/qstat_f_torque_running.txt").read_text()
    first = text.split("\n\n")[0]
    job_id = first.splitlines()[0].split(":", 1)[1].strip()
    qtime = re.search(r"qtime = (.*)", first)
    assert qtime is not None
    base = time.mktime(time.strptime(qtime.group(1), "%a %b %d %H:%M:%S %Y"))
    blocks = []
    for i in range(jobs):
        new_id = str(500_000 + i)
        if ids is not None and new_id not in ids:
            continue
        stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(base + i))
        block = first.replace(f"Job Id:\t{job_id}", f"Job Id:\t{new_id}")
        blocks.append(re.sub(r"(qtime|mtime|ctime) = .*", rf"\1 = {stamp}", block))
    return "\n\n".join(blocks) + "\n"


def timed(work: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return times


async def poll_cycle_times(jobs: int, repeats: int, system: str) -> list[float]:
    """Submit ``jobs`` (one array, or one by one), then time whole polls."""
    ids = iter(range(500_000, 500_000 + jobs))

    answers: dict[tuple[str, ...], Completed] = {}  # made once, not timed

    def squeue(argv: tuple[str, ...]) -> Completed:  # the chunk's jobs only
        if argv not in answers:
            wanted = set(argv[-1].removeprefix("--jobs=").split(","))
            answers[argv] = Completed(argv, 0, squeue_output(jobs, wanted))
        return answers[argv]

    def qstat(argv: tuple[str, ...]) -> Completed:
        if argv not in answers:
            answers[argv] = Completed(argv, 0, qstat_output(jobs, set(argv[2:])))
        return answers[argv]

    runner = FakeRunner(
        {
            "sbatch": lambda argv: Completed(argv, 0, "500000\n"),
            "squeue": squeue,
            "qsub": lambda argv: Completed(argv, 0, f"{next(ids)}\n"),
            "qstat": qstat,
        }
    )
    with tempfile.TemporaryDirectory() as logs:
        opts = resolve_job_options(system, cores=1, memory="1GB", log_directory=logs)
        adapter = Slurm() if system == "slurm" else PBS()
        table = JobTable(CommandBackend(adapter, runner), opts)
        names = [f"w-{i}" for i in range(jobs)]
        if system == "slurm":
            records = await table.submit(names, "")
            for i, record in enumerate(records):  # ids as squeue prints them
                record.job_id = str(500_000 + i)
        else:
            for name in names:
                await table.submit([name], "")
        await table.poll()  # the first poll: the answers are made, not timed
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            await table.poll()
            times.append((time.perf_counter() - started) * 1000)
        return times


def report(what: str, times: list[float]) -> None:
    print(f"{what:<42} median {statistics.median(times):7.1f} ms   "
          f"max {max(times):7.1f} ms   (target < 50 ms)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    jobs, repeats = args.jobs, args.repeats
    squeue, qstat = squeue_output(jobs), qstat_output(jobs)
    ids = [str(500_000 + i) for i in range(jobs)]
    print(f"{jobs} jobs, {repeats} repeats each")
    report("parse squeue", timed(lambda: Slurm().parse_status(squeue, ids), repeats))
    report("parse qstat -f", timed(lambda: PBS().parse_status(qstat, ids), repeats))
    for system in ("slurm", "pbs"):
        report(
            f"one poll cycle, {system} (status + table)",
            asyncio.run(poll_cycle_times(jobs, repeats, system)),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
