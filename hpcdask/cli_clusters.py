"""``hpcdask list``: the user's running scheduler-job clusters.

Reads the registry (:mod:`hpcdask.registry`) and asks the queue, once per batch
system, whether each cluster's scheduler job still lives; entries of jobs that
ended are removed on the way (:mod:`hpcdask.lookup`).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from hpcdask.config import scheduler_job_config
from hpcdask.format import format_duration
from hpcdask.jobmode import registry_root
from hpcdask.listing import text_table
from hpcdask.lookup import live_clusters
from hpcdask.view import dashboard_link_for

__all__ = ["add_list_command", "cmd_list"]


def cmd_list(args: argparse.Namespace) -> int:
    root = registry_root(scheduler_job_config()[2])
    entries = asyncio.run(live_clusters(root))
    if not entries:
        print(f"no running hpcdask clusters (registry: {root})")
        return 0
    now = time.time()
    rows = [("NAME", "SYSTEM", "SCHEDULER JOB", "STATE", "AGE", "DASHBOARD")]
    for entry in entries:
        host, _, port = entry.dashboard.rpartition(":")
        rows.append(
            (
                entry.name,
                entry.system or "-",
                entry.job_id or "-",
                "running" if entry.running else "starting",
                format_duration(now - entry.created) if entry.created else "-",
                dashboard_link_for(host, int(port)) if port else "-",
            )
        )
    print(text_table(rows))
    print(
        "\nreconnect with SLURMCluster.from_name(NAME) (or PBSCluster), or "
        'Client("hpcdask://NAME")'
    )
    return 0


def add_list_command(commands: Any) -> None:
    """Add ``hpcdask list`` to the command's subparsers."""
    p = commands.add_parser(
        "list",
        help="list your running clusters whose scheduler runs in a batch job",
        description="List your clusters made with scheduler_in='job' that still "
        "run (or wait in the queue), with their scheduler job and dashboard; "
        "entries whose scheduler job ended are removed.",
    )
    p.set_defaults(run=cmd_list)
