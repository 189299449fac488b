"""Asking the queue when new jobs would start, gently.

:class:`StartProbe` keeps the latest :class:`~hpcdask.forecast.QueueForecast`
of the cluster's partitions for the adaptive policy's snapshots. It reads one
(two commands on Slurm: ``sinfo`` and ``squeue``, see
:mod:`hpcdask.systems.slurm_starts`) only while the cluster wants jobs or has
some, at most once per ``interval``, in a task of its own: a tick never waits
for the queue, it takes the forecast at hand (cached between reads) and is told
whether one is on its way. All candidate walltimes are placed in one forecast,
so a scale-up costs the controller no more calls however many shapes are
weighed. A read that fails or times out leaves no forecast: the policy then
submits as it would without one.

Each adaptive loop (one per worker pool) has a probe of its own, for its own
partitions, cores, memory and walltime (:func:`start_probe`), and adds its
forecast to its snapshots (:func:`with_forecast`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import replace

from hpcdask.config import AdaptiveSettings
from hpcdask.forecast import QueueForecast
from hpcdask.models import ClusterSnapshot, PolicyParams
from hpcdask.policy import wants_forecast
from hpcdask.systems.base import Backend

__all__ = ["StartProbe", "start_probe", "with_forecast"]

logger = logging.getLogger(__name__)


class StartProbe:
    """The queue's plan for a cluster's jobs, read in the background.

    Parameters
    ----------
    backend
        the cluster's backend; one without a ``forecast`` method (or whose
        system has none) never gives a forecast.
    partitions
        where the cluster's jobs may start (empty: the default partition).
    interval
        the shortest time between two reads (seconds).
    timeout
        a read taking longer is abandoned (seconds).
    """

    def __init__(
        self,
        backend: Backend,
        partitions: Sequence[str],
        interval: float = 30.0,
        timeout: float = 20.0,
    ) -> None:
        self.backend = backend
        self.partitions = tuple(partitions)
        self.interval = interval
        self.timeout = timeout
        #: the latest forecast (None: none read yet, or the last read failed)
        self.forecast: QueueForecast | None = None
        #: why the last read failed ("" when it did not)
        self.error = ""
        #: reads started so far
        self.reads = 0
        self._task: asyncio.Task[None] | None = None
        self._started = -math.inf
        self._supported = callable(getattr(backend, "forecast", None))

    def read(self, now: float, wanted: bool) -> tuple[QueueForecast | None, bool]:
        """The forecast at hand, and whether one is due (being read, with
        none younger than ``interval`` at hand). When ``wanted`` and the last
        read started ``interval`` ago or more, a new read starts."""
        if not self._supported:
            return None, False
        if wanted and self._task is None and now - self._started >= self.interval:
            self._started = now
            self.reads += 1
            self._task = asyncio.ensure_future(self._read())
            self._task.add_done_callback(self._done)
        fresh = (
            self.forecast is not None and now - self.forecast.taken_at < self.interval
        )
        return self.forecast, self._task is not None and not fresh

    def _done(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = None

    async def _read(self) -> None:
        forecast = getattr(self.backend, "forecast")  # noqa: B009 - optional
        try:
            result = await asyncio.wait_for(
                forecast(self.partitions, time.time()), self.timeout
            )
        except asyncio.CancelledError:
            raise
        except Exception as e:
            error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            if error != self.error:
                logger.warning(
                    "could not read when jobs would start (%s); new jobs ask "
                    "for the full walltime",
                    error,
                )
            self.error = error
            self.forecast = None
            if result_is_unsupported(e):
                self._supported = False
            return
        self.error = ""
        if result is None:
            self._supported = False
        self.forecast = result

    def stop(self) -> None:
        """Abandon a read under way."""
        if self._task is not None:
            self._task.cancel()
            self._task = None


def result_is_unsupported(error: Exception) -> bool:
    """A system that has no forecast says so once; it is not asked again."""
    return isinstance(error, NotImplementedError)


def start_probe(backend: Backend, settings: AdaptiveSettings) -> StartProbe | None:
    """The probe of one adaptive loop whose ``settings`` choose job shapes
    (their partitions: the pool's queue), else ``None``."""
    shapes = settings.params.shapes
    if shapes is None:
        return None
    return StartProbe(backend, shapes.partitions, settings.probe_interval)


def with_forecast(
    snapshot: ClusterSnapshot,
    now: float,
    params: PolicyParams,
    starts: StartProbe | None,
) -> ClusterSnapshot:
    """``snapshot`` with the forecast at hand, a read started when a scale-up
    may come (:func:`hpcdask.policy.wants_forecast`)."""
    if starts is None:
        return snapshot
    wanted = wants_forecast(snapshot, now, params, starts.interval)
    forecast, due = starts.read(now, wanted)
    return replace(snapshot, forecast=forecast, forecast_due=due)
