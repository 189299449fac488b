"""Shared test settings: fast polling, no fixed dashboard port."""

from __future__ import annotations

from collections.abc import Iterator

import dask.config
import pytest


@pytest.fixture(autouse=True)
def _fast_test_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    logs = tmp_path_factory.mktemp("logs")
    settings = {
        "hpcdask.poll-interval": "0.5s",
        "distributed.scheduler.dashboard.address": ":0",
    }
    for system in ("slurm", "pbs", "local"):
        settings[f"hpcdask.{system}.log-directory"] = str(logs)
        settings[f"hpcdask.{system}.scheduler-options"] = {"dashboard_address": ":0"}
    with dask.config.set(settings):
        yield
