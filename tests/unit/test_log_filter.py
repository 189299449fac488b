"""The scheduler's heartbeat warning is dropped only for workers the cluster
retired itself (pure logging, no processes)."""

from __future__ import annotations

import asyncio
import logging
import sys

from hpcdask.noise import SchedulerNoise


def record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(
        "distributed.scheduler", logging.WARNING, __file__, 1, message, args, None
    )


def test_only_retired_workers_heartbeats_are_dropped() -> None:
    heartbeat = "Received heartbeat from unregistered worker %r."
    retired = SchedulerNoise()
    assert retired.filter(record(heartbeat, "tls://10.0.0.1:4000"))  # none retired
    retired.add(["tls://10.0.0.1:4000"])
    assert not retired.filter(record(heartbeat, "tls://10.0.0.1:4000"))
    assert retired.filter(record(heartbeat, "tls://10.0.0.1:40001"))  # another one
    assert retired.filter(record("Worker %s is closing", "tls://10.0.0.1:4000"))


def test_retired_addresses_are_forgotten() -> None:
    retired = SchedulerNoise(keep_for=0.0)
    retired.add(["tls://10.0.0.1:4000"])
    retired.add(["tls://10.0.0.2:4000"])  # adding expires the first
    assert retired.filter(
        record("Received heartbeat from unregistered worker %r.", "tls://10.0.0.1:4000")
    )


def test_cancelled_streams_are_dropped_only_while_closing() -> None:
    noise = SchedulerNoise()
    try:
        raise asyncio.CancelledError
    except asyncio.CancelledError:
        cancelled = record("")
        cancelled.exc_info = sys.exc_info()
    try:
        raise OSError("disk full")
    except OSError:
        other = record("")
        other.exc_info = sys.exc_info()
    assert noise.filter(cancelled)  # a running cluster shows it
    noise.closing = True
    assert not noise.filter(cancelled)
    assert noise.filter(other)  # any other error still shows
