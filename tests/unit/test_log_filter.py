"""The scheduler's heartbeat warning is dropped only for workers the cluster
retired itself (pure logging, no processes)."""

from __future__ import annotations

import logging

from hpcdask.cluster import RetiredWorkerHeartbeats


def record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(
        "distributed.scheduler", logging.WARNING, __file__, 1, message, args, None
    )


def test_only_retired_workers_heartbeats_are_dropped() -> None:
    heartbeat = "Received heartbeat from unregistered worker %r."
    retired = RetiredWorkerHeartbeats()
    assert retired.filter(record(heartbeat, "tls://10.0.0.1:4000"))  # none retired
    retired.add(["tls://10.0.0.1:4000"])
    assert not retired.filter(record(heartbeat, "tls://10.0.0.1:4000"))
    assert retired.filter(record(heartbeat, "tls://10.0.0.1:40001"))  # another one
    assert retired.filter(record("Worker %s is closing", "tls://10.0.0.1:4000"))


def test_retired_addresses_are_forgotten() -> None:
    retired = RetiredWorkerHeartbeats(keep_for=0.0)
    retired.add(["tls://10.0.0.1:4000"])
    retired.add(["tls://10.0.0.2:4000"])  # adding expires the first
    assert retired.filter(
        record("Received heartbeat from unregistered worker %r.", "tls://10.0.0.1:4000")
    )
