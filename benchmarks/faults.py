"""Run the fault suite on the local Slurm and print its table.

``python -m benchmarks.faults`` runs the fault tests (``tests/integration/
test_faults.py``, the walltime rollover of ``test_adaptive.py``, and the node
failures of ``test_multinode_faults.py`` on the multi-node site) with pytest,
each recording its figures, then prints one Markdown row per fault: what was
checked, the result, and the time to recover. ``--no-run`` prints the table of
the last run (``tests/artifacts/faults.json``, also written by ``bash
ci/test.sh``). The Slurm controller fault stops ``slurmctld`` for 30 s: anyone
else using this Slurm sees it down meanwhile; the node faults kill or cut off
one node of the multi-node site (``ci/multinode-node.sh``) and bring it back.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "tests" / "artifacts" / "faults.json"
TESTS = [
    "tests/integration/test_faults.py",
    "tests/integration/test_adaptive.py::"
    "test_walltime_rollover_keeps_results_and_capacity",
    "tests/integration/test_queue_surprises.py::"
    "test_a_requeued_job_is_pending_again_and_not_replaced",
    "tests/integration/test_queue_surprises.py::"
    "test_preemption_is_a_site_fault_not_a_failed_start",
    "tests/integration/test_queue_surprises.py::"
    "test_close_with_a_failing_scancel_is_bounded_and_says_what_to_run",
    "tests/integration/test_queue_surprises.py::"
    "test_a_submission_cut_short_by_close_is_cancelled",
    "tests/integration/test_multinode_faults.py",
]
COLUMNS = ("fault", "what was checked", "result", "time to recover")
#: what "time to recover" measures, per fault number
RECOVERY = {
    "1": "kill to 2 workers again",
    "2": "controller back to job states known",
    "3": "time with fewer than 2 workers",
    "4": "close()",
    "5": "kill to running jobs gone",
    "6": "close()",
    "7": "requeue to a worker again",
    "8": "preemption to all results",
    "9": "close()",
    "10": "close()",
    "11": "kill to 2 workers on other nodes",
    "12": "cut to 2 workers on other nodes",
}


def run_suite(report: Path) -> int:
    report.unlink(missing_ok=True)
    env = {**os.environ, "HPCDASK_FAULT_REPORT": str(report)}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *TESTS, "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
    )
    print(f"fault suite: pytest exit {proc.returncode} in "
          f"{time.monotonic() - started:.0f} s\n")  # fmt: skip
    return proc.returncode


def render_table(rows: dict[str, Any]) -> str:
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for key in sorted(rows, key=lambda k: (int(k.split(".", 1)[0]), k)):
        row = rows[key]
        seconds = row["recover_seconds"]
        number = key.split(".", 1)[0]
        recover = "n/a" if seconds is None else f"{seconds:.1f} s"
        if number in RECOVERY:
            recover += f" ({RECOVERY[number]})"
        cells = (row["fault"], row["checked"], row["result"], recover)
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-run", action="store_true",
                        help="print the last run's table, run nothing")  # fmt: skip
    parser.add_argument("--report", type=Path, default=REPORT,
                        help=f"where the figures go (default {REPORT})")  # fmt: skip
    args = parser.parse_args(argv)
    code = 0 if args.no_run else run_suite(args.report)
    try:
        rows = json.loads(args.report.read_text())
    except (OSError, ValueError):
        print(f"no figures in {args.report}", file=sys.stderr)
        return code or 1
    print(render_table(rows))
    missing = sorted(set(RECOVERY) - {k.split(".", 1)[0] for k in rows})
    if missing:
        print(f"\nno row for fault(s) {', '.join(missing)}: their tests failed "
              "or did not run", file=sys.stderr)  # fmt: skip
        return code or 1
    return code


if __name__ == "__main__":
    sys.exit(main())
