"""The adaptive loop: take a snapshot, call :func:`hpcdask.policy.decide`, apply.

Only the loop lives here. What to do is the policy's; what the cluster looks like
and how a decision is carried out is behind the small :class:`Scalable` protocol
(for a cluster: :class:`hpcdask.probe.ClusterScaling`). Ticks never overlap: the
next one starts ``interval`` after the last one ended.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from hpcdask.models import ClusterSnapshot, PolicyParams, ScaleDecision
from hpcdask.policy import PolicyState, decide

__all__ = ["AdaptiveJobs", "Scalable"]

logger = logging.getLogger(__name__)


class Scalable(Protocol):
    """What the adaptive loop needs of what it scales."""

    def snapshot(self, now: float) -> ClusterSnapshot:
        """What the policy needs to know, at time ``now``."""
        ...

    async def apply(self, decision: ScaleDecision) -> None:
        """Carry ``decision`` out."""
        ...

    def limits(self, params: PolicyParams) -> PolicyParams:
        """``params`` as they hold for this tick (a pool's share of the
        cluster's maximum; unchanged for a cluster of one pool)."""
        ...

    def stop(self) -> None:
        """Scaling stops (in the event loop's thread): drop what runs for it."""
        ...


class AdaptiveJobs:
    """Queue-aware adaptive scaling, one decision every ``interval`` seconds.

    Created by ``cluster.adapt(...)``; ``minimum``/``maximum`` are in workers,
    as for distributed's ``Adaptive``.
    """

    def __init__(
        self, target: Scalable, params: PolicyParams, interval: float, label: str = ""
    ) -> None:
        self.target = target
        #: the pool this loop scales, in its log lines ("": the only one)
        self.label = label
        self.params = params
        self.interval = interval
        self.state = PolicyState(failures_forgiven_until=time.time())
        self.last_decision = ScaleDecision()
        #: why the latest jobs asked for the walltime they did
        self.shape_reason = ""
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def minimum(self) -> int:
        return self.params.minimum_workers

    @property
    def maximum(self) -> int:
        return self.params.maximum_workers

    def start(self) -> None:
        """Start deciding (in the event loop's thread), unless stopped already."""
        if self._task is None and not self._stopped:
            self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        """Stop deciding; safe from any thread."""
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.get_loop().call_soon_threadsafe(task.cancel)

    async def _run(self) -> None:
        try:
            while True:
                try:
                    await self.tick()
                except asyncio.CancelledError:
                    raise
                except Exception:  # one bad tick must not end adaptivity
                    logger.exception("adaptive tick failed")
                await asyncio.sleep(self.interval)
        finally:
            self.target.stop()

    async def tick(self) -> ScaleDecision:
        """One round: snapshot, decide, apply."""
        now = time.time()
        snapshot = self.target.snapshot(now)
        params = self.target.limits(self.params)
        decision, self.state = decide(snapshot, self.state, now, params)
        self.ticks += 1
        if decision.reason and decision.reason != self.last_decision.reason:
            where = f" ({self.label})" if self.label else ""
            logger.info("adaptive%s: %s", where, decision.reason)
        self.last_decision = decision
        if decision.shapes:
            self.shape_reason = "; ".join(shape.note for shape in decision.shapes)
        if not decision.is_noop:
            await self.target.apply(decision)
        return decision
