"""A busy queue: hpcdask's job shapes beside today's hpcdask and dask-jobqueue.

``bash benchmarks/busy.sh`` (sets up the busy-queue Slurm site of
``ci/busy-site-up.sh`` and dask-jobqueue, then runs ``python -m benchmarks.busy``).
Each (situation, tool) runs in its own process, one after the other, on the
busy-queue site (node ``busy1`` in partition ``busy``, ``busy2`` in ``idle``,
16 cores each, backfill every second). Before each run, "other users'" jobs
(plain ``sbatch --wrap 'sleep N'`` with known time limits, submitted first) make
the situation; then the user's cluster, with the same settings for every tool
(1-core, 1-GB workers, one per job, ``walltime="01:00:00"``,
``adapt(minimum_jobs=0, maximum_jobs=8)``), gets 3,000 tasks of 5 s at once,
whose results the client takes as they complete (``as_completed``; the cluster
then forgets them). ``--hold`` keeps the results in the workers' memory instead
(a task counts as done while its result is held): short jobs that end before
their replacements start lose what they hold.

Situations:

- ``busy``: busy1 has 8 of its 16 cores taken for 13 minutes, and a 16-core
  job waits for them: its reservation at +13 min bounds a backfill hole of 8
  cores; jobs of an hour start after it, at +17 min. 18-minute window.
- ``nothing_fits``: busy1 full (16 cores) for 5 minutes, then free. 10 minutes.
- ``two_partitions``: ``queue="busy,idle"``; busy1 full for 15 minutes, busy2
  idle. 10 minutes.

Tools: ``hpcdask`` (defaults: job shapes on), ``hpcdask-today`` (the same with
``hpcdask.adaptive.job-shapes: false``, hpcdask before this work) and
``dask-jobqueue`` (0.9.0, its defaults). Measured from the moment the tasks are
submitted: time to the first worker and to 8, tasks done in the first 10
minutes and in the window, core-seconds charged (Slurm's start and end of every
job, cancelled ones included), and batch commands run (logging wrappers on
PATH: sbatch, squeue, scancel, scontrol, sinfo).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BUSY_CONF = "/etc/slurm-busy/slurm.conf"
TOOLS = ("hpcdask", "hpcdask-today", "dask-jobqueue")
TASK_SECONDS = 5.0
TASKS = 3000
FIRST = 600.0  # "work done in the first 10 minutes"

#: situation -> (other users' jobs: (name, partition, cores, minutes), the
#: user's queue, window in seconds)
SITUATIONS: dict[str, tuple[list[tuple[str, str, int, int]], str, float]] = {
    "busy": (
        [("busy-other-fill", "busy", 8, 13), ("busy-other-big", "busy", 16, 4)],
        "busy",
        18 * 60.0,
    ),
    "nothing_fits": ([("busy-other-full", "busy", 16, 5)], "busy", 10 * 60.0),
    "two_partitions": (
        [("busy-other-full", "busy", 16, 15)],
        "busy,idle",
        10 * 60.0,
    ),
}


def slurm(*argv: str) -> str:
    """A command on the busy site, not counted (real binary, site's config)."""
    env = {**os.environ, "SLURM_CONF": BUSY_CONF}
    out = subprocess.run(
        [f"/usr/bin/{argv[0]}", *argv[1:]],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return out.stdout


def make_situation(name: str) -> list[str]:
    """Submit the other users' jobs, first; wait until the ones that fit run
    and the others are planned. Their ids. Jobs an earlier run left behind
    (this benchmark's names only) are cancelled first."""
    listed = [x.partition("|") for x in slurm("squeue", "-h", "-o", "%i|%j").split()]
    left = [i for i, _, n in listed if n.startswith(("busy-", "bench-busy"))]
    if left:
        slurm("scancel", *left)
        time.sleep(3)
    ids = []
    for job_name, partition, cores, minutes in SITUATIONS[name][0]:
        out = slurm(
            "sbatch", "--parsable", "-o", "/dev/null", "-J", job_name,
            "-p", partition, "-c", str(cores), "--mem=1G", "-t", str(minutes),
            "--wrap", f"sleep {minutes * 60 + 600}",
        )  # fmt: skip
        ids.append(out.strip().split(";")[0])
        time.sleep(2)  # in order: the first runs before the next is seen
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines = slurm("squeue", "--noheader", "-j", ",".join(ids), "-o", "%T|%S")
        states = [line.split("|") for line in lines.split()]
        if all(s == "RUNNING" or start != "N/A" for s, start in states):
            return ids
        time.sleep(0.5)
    raise RuntimeError(f"the situation {name} did not settle: {states}")


class Completions:
    """Takes each result as its task completes (then the cluster forgets it),
    noting when; with ``hold``, keeps them and counts the futures done."""

    def __init__(self, futures: list[Any], t0: float, hold: bool) -> None:
        from distributed import as_completed

        self.t0, self.hold = t0, hold
        self.futures = futures if hold else []
        self.times: list[float] = []
        self._stop = False
        self._ac = None if hold else as_completed(futures)
        self._thread = threading.Thread(target=self._run, daemon=True)
        if not hold:
            self._thread.start()

    def _run(self) -> None:
        assert self._ac is not None
        for future in self._ac:
            if self._stop:
                break
            if future.status == "finished":
                self.times.append(time.monotonic() - self.t0)
            future.release()

    def done(self) -> int:
        if self.hold:
            return sum(f.done() for f in self.futures)
        return len(self.times)

    def stop(self, client: Any) -> None:
        self._stop = True
        left = self.futures if self.hold else list(self._ac.futures)  # type: ignore[union-attr]
        client.cancel(left)


class Arrivals:
    """When the cluster's workers connected (samples every 0.5 s)."""

    def __init__(self, client: Any, t0: float) -> None:
        self.client, self.t0 = client, t0
        self.first: float | None = None
        self.eight: float | None = None
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                n = len(self.client.scheduler_info()["workers"])
            except Exception:
                continue
            now = time.monotonic() - self.t0
            self.most = max(self.most, n)
            if n >= 1 and self.first is None:
                self.first = now
            if n >= 8 and self.eight is None:
                self.eight = now

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _sleep(i: int) -> int:
    time.sleep(TASK_SECONDS)
    return i


def run_tool(situation: str, tool: str) -> dict[str, Any]:
    """One run: the situation, then the cluster and its work, in this process."""
    import dask.config
    from distributed import Client

    from benchmarks.harness import (
        ChargeSampler,
        count_calls,
        counted_commands,
        wait_queue_empty,
    )
    from benchmarks.scenarios import make_cluster

    os.environ["SLURM_CONF"] = BUSY_CONF
    _, queue, window = SITUATIONS[situation]
    window = float(os.environ.get("HPCDASK_BUSY_WINDOW", window))
    job_name = f"bench-busy-{tool}-{os.getpid()}"
    ids = make_situation(situation)
    config = {"distributed.scheduler.dashboard.address": ":0"}
    if tool == "hpcdask-today":
        config["hpcdask.adaptive.job-shapes"] = False
    kind = "dask-jobqueue" if tool == "dask-jobqueue" else "hpcdask"
    done_first = 0
    try:
        with (
            dask.config.set(config),
            counted_commands() as log,
            ChargeSampler(job_name) as charges,
        ):
            extra = {"queue": queue}
            if kind == "hpcdask" and "," in queue:
                extra["queue"] = queue.split(",")  # the list form, same meaning
            with (
                make_cluster(kind, job_name, walltime="01:00:00", **extra) as cluster,
                Client(cluster) as client,
            ):
                cluster.adapt(minimum_jobs=0, maximum_jobs=8)
                t0 = time.monotonic()
                hold = bool(os.environ.get("HPCDASK_BUSY_HOLD"))
                futures = client.map(_sleep, range(TASKS), pure=False)
                completions = Completions(futures, t0, hold)
                del futures
                arrivals = Arrivals(client, t0)
                time.sleep(max(0.0, t0 + min(FIRST, window) - time.monotonic()))
                done_first = completions.done()
                time.sleep(max(0.0, t0 + window - time.monotonic()))
                done = completions.done()
                arrivals.stop()
                jobs = _jobs_of(cluster) if kind == "hpcdask" else []
                completions.stop(client)
            wait_queue_empty(job_name, timeout=120)
            calls = count_calls(log)
    finally:
        slurm("scancel", *ids)
    charged = charges.charged_core_seconds()
    return {
        "window": window,
        "results_held": hold,
        "first_worker": arrivals.first,
        "eight_workers": arrivals.eight,
        "most_workers": arrivals.most,
        "tasks_first_10_min": done_first,
        "tasks_window": done,
        "charged_core_seconds": charged,
        "charged_per_task": charged / done if done else None,
        "jobs_started": charges.jobs_started(),
        "calls": dict(calls),
        "jobs": jobs,
    }


def _jobs_of(cluster: Any) -> list[dict[str, Any]]:
    """What hpcdask said about each job, and when it started (prediction vs
    reality)."""
    rows = []
    for r in cluster.view().jobs:
        s = r.status
        rows.append(
            {
                "job_id": r.job_id,
                "walltime": s.time_limit,
                "why": r.note,
                "queue": s.partition,
                "waited": None
                if s.start_time is None or s.submit_time is None
                else s.start_time - s.submit_time,
            }
        )
    return rows


def run_in_process(situation: str, tool: str) -> dict[str, Any]:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    env = {**os.environ, "PYTHONPATH": f"{HERE / '.deps'}:{HERE.parent}"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.busy", "--one", situation, tool, str(out)],
        env=env, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    log = HERE / "results" / f"busy-{situation}-{tool}.log"
    log.write_text(proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.splitlines()[-15:])
        return {"error": tail}
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    rows = [
        "| situation | figure | hpcdask | hpcdask today | dask-jobqueue | "
        "hpcdask / today | hpcdask / dask-jobqueue |",
        "|---|---|---|---|---|---|---|",
    ]
    figures = [
        ("first_worker", "time to first worker, s", "{:.0f}"),
        ("eight_workers", "time to 8 workers, s", "{:.0f}"),
        ("tasks_first_10_min", "tasks done in the first 10 min", "{:.0f}"),
        ("tasks_window", "tasks done in the window", "{:.0f}"),
        ("charged_core_seconds", "core-seconds charged", "{:.0f}"),
        ("charged_per_task", "core-seconds charged per task", "{:.2f}"),
        ("calls", "batch commands, all", "{}"),
    ]
    for situation, by_tool in results.items():
        split = " | ".join(
            "-" if "calls" not in by_tool.get(t, {}) else _split(by_tool[t]["calls"])
            for t in TOOLS
        )
        rows.append(f"| {situation} | sbatch/squeue/scancel/sinfo | {split} | | |")
        for key, label, fmt in figures:
            values = [by_tool.get(t, {}).get(key) for t in TOOLS]
            if key == "calls":
                values = [_calls(v) for v in values]
            shown = ["-" if v is None else fmt.format(v) for v in values]
            ratios = [_ratio(values[0], values[i]) for i in (1, 2)]
            cells = " | ".join([situation, label, *shown, *ratios])
            rows.append(f"| {cells} |")
    return "\n".join(rows)


def _split(calls: dict[str, int]) -> str:
    return "/".join(
        str(calls.get(c, 0)) for c in ("sbatch", "squeue", "scancel", "sinfo")
    )


def _calls(calls: dict[str, int] | None) -> int | None:
    if calls is None:
        return None
    return sum(
        calls.get(c, 0) for c in ("sbatch", "squeue", "scancel", "sinfo", "scontrol")
    )


def _ratio(a: object, b: object) -> str:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
        return f"{a / b:.2f}"
    return "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SITUATIONS))
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--one", nargs=3, metavar=("SITUATION", "TOOL", "OUT"))
    parser.add_argument(
        "--window", type=float, help="seconds each run lasts (a quick check)"
    )
    parser.add_argument(
        "--hold", action="store_true", help="keep results in the workers' memory"
    )
    parser.add_argument("--table", metavar="JSON", help="print the table of a run")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(Path(args.table).read_text())))
        return
    if args.hold:
        os.environ["HPCDASK_BUSY_HOLD"] = "1"
    if args.window:
        os.environ["HPCDASK_BUSY_WINDOW"] = str(args.window)
    if args.one:
        logging.basicConfig(format="%(asctime)s %(name)s %(message)s")
        logging.getLogger("hpcdask").setLevel(logging.INFO)
        situation, tool, out = args.one
        Path(out).write_text(json.dumps(run_tool(situation, tool)))
        return
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for situation in args.only.split(","):
        results[situation] = {}
        for tool in args.tools.split(","):
            print(f"{situation} / {tool} ... ({time.strftime('%H:%M:%S')})", flush=True)
            results[situation][tool] = run_in_process(situation, tool)
            (out_dir / f"busy-{stamp}.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"\nresults: {out_dir / f'busy-{stamp}.json'}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
