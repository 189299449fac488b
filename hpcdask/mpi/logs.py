"""The launcher's logger, and how loud dask is on every rank."""

from __future__ import annotations

import contextlib
import logging
import os
import sys

__all__ = ["flush_logs", "logger", "set_log_level"]

#: every module of the launcher logs here, so its records read "hpcdask.mpi"
logger = logging.getLogger("hpcdask.mpi")


def set_log_level(level: str | None) -> None:
    """Give the launcher's records dask's format; set the ``distributed`` level.

    ``None`` keeps dask's logging configuration.
    """
    if not logger.handlers and not logging.getLogger().handlers:
        # the launcher's own messages look like dask's
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s")
        )
        logger.addHandler(handler)
        logger.propagate = False
    if level is None:
        return
    logging.getLogger("distributed").setLevel(level.upper())
    # a nanny's worker process configures logging from dask config at import
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", level.lower())


def flush_logs() -> None:
    """Write out what is logged before the process is ended from outside."""
    for handler in logging.getLogger().handlers + logger.handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
