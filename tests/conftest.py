"""Shared test settings: fast polling, no fixed dashboard port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dask.config
import pytest


@pytest.fixture
def log_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This test's job log directory; jobs are submitted from it."""
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(autouse=True)
def _fast_test_config(log_directory: Path) -> Iterator[None]:
    logs = log_directory
    settings = {
        "hpcdask.poll-interval": "0.5s",
        "distributed.scheduler.dashboard.address": ":0",
    }
    for system in ("slurm", "pbs", "sge", "local"):
        settings[f"hpcdask.{system}.log-directory"] = str(logs)
        settings[f"hpcdask.{system}.scheduler-options"] = {
            "dashboard_address": "127.0.0.1:0"
        }
    with dask.config.set(settings):
        yield
