"""hpcdask's MPI launcher beside dask-mpi, in one run.

    python benchmarks/mpi/bench_mpi.py                  # np 4 and 8, 3 repeats
    python benchmarks/mpi/bench_mpi.py --np 4 --repeats 1

For each ``mpirun -np N`` and launcher it runs ``workload.py`` (a small dask array
computation) and measures, from just before ``mpirun`` starts:

- time to the script's first result (the ``RESULT`` line it prints),
- time until ``mpirun`` exits,
- stderr lines that belong to a traceback or an ERROR/CRITICAL log record, and
  all stderr lines.

Launchers: ``dask-mpi`` (``dask_mpi.initialize()``), ``hpcdask``
(``hpcdask.mpi.initialize()``) and ``hpcdask-mpi run`` (the command). Runs
alternate between launchers so a busy machine slows all of them alike; the
table shows medians. dask-mpi is a benchmark-only dependency: it is installed
with ``pip install --no-deps --target`` into ``benchmarks/results/.deps/``
(its own requirements, dask, distributed and mpi4py, are hpcdask's already) and
put on ``PYTHONPATH`` for its runs only. Raw runs and medians are written to
``benchmarks/results/mpi-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RESULTS = REPO / "benchmarks" / "results"
WORKLOAD = HERE / "workload.py"
DASK_MPI_VERSION = "2026.3.0"

LAUNCHERS: dict[str, list[str]] = {
    "dask-mpi": [sys.executable, str(WORKLOAD), "dask-mpi"],
    "hpcdask": [sys.executable, str(WORKLOAD), "hpcdask"],
    "hpcdask-mpi run": [
        sys.executable,
        "-m",
        "hpcdask.mpi",
        "run",
        str(WORKLOAD),
        "cli",
    ],
}


@dataclass
class Run:
    launcher: str
    ranks: int
    returncode: int
    to_result: float | None
    to_exit: float
    error_lines: int
    stderr_lines: int


def install_dask_mpi(version: str) -> Path:
    """dask-mpi in its own directory, outside hpcdask's environment."""
    target = RESULTS / ".deps" / f"dask-mpi-{version}"
    if not (target / "dask_mpi").is_dir():
        print(f"installing dask-mpi=={version} into {target}", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                str(target),
                f"dask-mpi=={version}",
            ],
            check=True,
        )
    return target


def error_lines(stderr: str) -> int:
    """Lines of tracebacks (with their chained parts) and of ERROR/CRITICAL logs."""
    count = 0
    in_traceback = False
    for line in stderr.splitlines():
        if line.startswith("Traceback (most recent call last):"):
            in_traceback = True
            count += 1
        elif in_traceback:
            count += 1
            chained = line.startswith(("The above exception", "During handling"))
            if not (line.startswith(" ") or not line.strip() or chained):
                in_traceback = False  # the exception line ends the block
        elif " - ERROR - " in line or " - CRITICAL - " in line:
            count += 1
    return count


def environment(launcher: str, dask_mpi: Path) -> dict[str, str]:
    env = dict(os.environ)
    if os.geteuid() == 0:
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    paths = [str(REPO)]
    if launcher == "dask-mpi":
        paths.insert(0, str(dask_mpi))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def run_once(launcher: str, ranks: int, dask_mpi: Path, timeout: float) -> Run:
    argv = ["mpirun", "--oversubscribe", "-np", str(ranks), *LAUNCHERS[launcher]]
    started = time.time()
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=environment(launcher, dask_mpi),
            cwd=RESULTS,
        )
        returncode, stdout, stderr = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as e:
        returncode = -1
        stdout = (
            (e.stdout or b"").decode()
            if isinstance(e.stdout, bytes)
            else e.stdout or ""
        )
        stderr = (
            (e.stderr or b"").decode()
            if isinstance(e.stderr, bytes)
            else e.stderr or ""
        )
    ended = time.time()
    to_result = None
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            to_result = float(line.split()[1]) - started
    return Run(
        launcher=launcher,
        ranks=ranks,
        returncode=returncode,
        to_result=to_result,
        to_exit=ended - started,
        error_lines=error_lines(stderr),
        stderr_lines=len(stderr.splitlines()),
    )


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize(runs: list[Run]) -> list[dict[str, Any]]:
    rows = []
    for ranks in sorted({r.ranks for r in runs}):
        for launcher in LAUNCHERS:
            mine = [r for r in runs if r.ranks == ranks and r.launcher == launcher]
            if not mine:
                continue
            rows.append(
                {
                    "np": ranks,
                    "launcher": launcher,
                    "runs": len(mine),
                    "exit_codes": sorted({r.returncode for r in mine}),
                    "to_result_s": median([r.to_result for r in mine]),
                    "to_exit_s": median([r.to_exit for r in mine]),
                    "error_lines": median([float(r.error_lines) for r in mine]),
                    "error_lines_max": max(r.error_lines for r in mine),
                    "stderr_lines": median([float(r.stderr_lines) for r in mine]),
                }
            )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    header = (
        "| np | launcher | runs | exit codes | to first result (s) | to exit (s) "
        "| traceback/ERROR lines (median, max) | all stderr lines |"
    )
    lines = [header, "|" + "---|" * 8]
    for row in rows:
        result = row["to_result_s"]
        lines.append(
            f"| {row['np']} | {row['launcher']} | {row['runs']} "
            f"| {','.join(map(str, row['exit_codes']))} "
            f"| {'-' if result is None else f'{result:.2f}'} "
            f"| {row['to_exit_s']:.2f} "
            f"| {row['error_lines']:g}, {row['error_lines_max']} "
            f"| {row['stderr_lines']:g} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--np", type=int, nargs="+", default=[4, 8], dest="ranks")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=180)
    parser.add_argument(
        "--launchers", nargs="+", choices=list(LAUNCHERS), default=list(LAUNCHERS)
    )
    parser.add_argument("--dask-mpi-version", default=DASK_MPI_VERSION)
    args = parser.parse_args(argv)

    RESULTS.mkdir(parents=True, exist_ok=True)
    dask_mpi = install_dask_mpi(args.dask_mpi_version)
    # warm caches (bytecode, page cache) so the first timed run is not special
    for launcher in args.launchers:
        run_once(launcher, min(args.ranks), dask_mpi, args.timeout)

    runs: list[Run] = []
    for ranks in args.ranks:
        for repeat in range(args.repeats):
            for launcher in args.launchers:
                run = run_once(launcher, ranks, dask_mpi, args.timeout)
                runs.append(run)
                print(
                    f"np={ranks} {launcher:16s} #{repeat + 1}: exit {run.returncode}, "
                    f"result {run.to_result}, exit after {run.to_exit:.2f}s, "
                    f"{run.error_lines} traceback/ERROR lines",
                    flush=True,
                )

    rows = summarize(runs)
    table = format_table(rows)
    print()
    print(table)
    command = " ".join(
        ["python", "benchmarks/mpi/bench_mpi.py", *(argv or sys.argv[1:])]
    )
    report = {
        "command": command,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "mpirun": subprocess.run(
                ["mpirun", "--version"], capture_output=True, text=True
            ).stdout.splitlines()[:1],
        },
        "dask_mpi_version": args.dask_mpi_version,
        "summary": rows,
        "runs": [asdict(r) for r in runs],
        "table": table,
    }
    out = RESULTS / f"mpi-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
