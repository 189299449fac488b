"""When a job of a given shape could start: the queue's plan as data, and
placing jobs in it.

A batch scheduler with backfill starts a job now when it fits the free cores
and memory of a node until the next *reservation* (the planned start of a
higher-priority job) on that node. A :class:`QueueForecast` is what a system's
adapter reads from the queue in one go: the nodes (cores, memory, partitions,
whether they take jobs), the partitions' limits, and the *bookings*: running
jobs until their expected end and pending jobs the scheduler has planned, from
their planned start on their planned nodes. :class:`Planner` places jobs of one
shape (cores, memory) in that plan: the earliest start of a job of a given
walltime, how long a job starting at a given time could run, and booking a job
so the next one sees it.

Plain data and pure functions (no clock: ``now`` is an argument), so the
adaptive policy can use a forecast as part of its snapshot. What this model
leaves out (advanced reservations, pending jobs the scheduler has not planned,
jobs ending before their limit) is in ``docs/adaptive.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "Booking",
    "JobShape",
    "NodeInfo",
    "PartitionLimits",
    "Placement",
    "Planner",
    "QueueForecast",
    "ShapeParams",
]


@dataclass(frozen=True)
class PartitionLimits:
    """A partition's limits that decide whether a job may start in it."""

    name: str
    up: bool = True
    #: the longest walltime a job may ask for here (seconds)
    max_time: float = math.inf
    #: the most cores the partition's jobs may hold on one node together
    max_cpus_per_node: int | None = None
    #: the partition a job without ``-p`` goes to
    default: bool = False


@dataclass(frozen=True)
class NodeInfo:
    """A node's size (``memory`` in bytes) and whether it takes jobs."""

    name: str
    cpus: int
    memory: int
    usable: bool = True


@dataclass(frozen=True)
class Booking:
    """Cores and memory (bytes) one job holds on one node from ``start`` to
    ``end`` (POSIX times): a running job until its expected end, or a pending
    job the scheduler planned, from its planned start."""

    node: str
    partition: str
    cpus: int
    memory: int
    start: float
    end: float


@dataclass(frozen=True)
class QueueForecast:
    """The queue's plan at ``taken_at``: nodes, partitions (with the names of
    their nodes) and bookings."""

    taken_at: float
    nodes: tuple[NodeInfo, ...]
    partitions: tuple[PartitionLimits, ...]
    #: partition name -> names of its nodes
    members: tuple[tuple[str, tuple[str, ...]], ...]
    bookings: tuple[Booking, ...]

    def default_partition(self) -> str | None:
        return next((p.name for p in self.partitions if p.default), None)


@dataclass(frozen=True)
class Placement:
    """Where and when one job would start: on ``node`` in ``partition`` at
    ``start``, with room to run until ``until`` (``inf``: no end in sight)."""

    start: float
    node: str
    partition: str
    until: float


@dataclass(frozen=True)
class ShapeParams:
    """How the adaptive policy chooses the walltime of new jobs (seconds).

    ``walltime`` is the user's (the longest a job asks for), ``min_walltime``
    the shortest one chosen (the floor: shorter jobs cost more in start-ups and
    roll-overs than they save). A shorter job is chosen only when it starts at
    least ``gain`` sooner than one of the full walltime, and ends ``slack``
    before the reservation that bounds its hole. ``cpus``/``memory`` (bytes) are
    what one job asks for on its node; ``partitions`` where it may start (empty:
    the default partition). A forecast older than ``max_age`` is not used.
    """

    walltime: float
    min_walltime: float = 600.0
    gain: float = 120.0
    slack: float = 60.0
    cpus: int = 1
    memory: int = 0
    partitions: tuple[str, ...] = ()
    max_age: float = 60.0


@dataclass(frozen=True)
class JobShape:
    """``count`` new jobs of ``walltime`` seconds, and why that walltime."""

    count: int
    walltime: float
    note: str = ""


#: (from this time on, whether a job fits) steps of one node in one partition
_Steps = list[tuple[float, bool]]


@dataclass
class _Slot:
    """One node as seen from one partition."""

    node: NodeInfo
    partition: PartitionLimits
    rank: int  # the partition's place in the user's list
    steps: _Steps = field(default_factory=list)


class Planner:
    """Places jobs of ``cpus`` cores and ``memory`` bytes in a forecast.

    Parameters
    ----------
    forecast
        the queue's plan.
    partitions
        where the job may start, in the user's order (empty: the default one).
    cpus, memory
        what one job asks for on its node.
    now
        the current time; nothing starts before it.
    """

    def __init__(
        self,
        forecast: QueueForecast,
        partitions: Sequence[str],
        cpus: int,
        memory: int,
        now: float,
    ) -> None:
        self.cpus = cpus
        self.memory = memory
        self.now = now
        names = list(partitions) or [forecast.default_partition() or ""]
        limits = {p.name: p for p in forecast.partitions}
        members = dict(forecast.members)
        nodes = {n.name: n for n in forecast.nodes}
        self._bookings: dict[str, list[Booking]] = {}
        for booking in forecast.bookings:
            if booking.end > now:
                self._bookings.setdefault(booking.node, []).append(booking)
        self._slots: list[_Slot] = []
        for rank, name in enumerate(names):
            part = limits.get(name)
            if part is None or not part.up:
                continue
            for node_name in members.get(name, ()):
                node = nodes.get(node_name)
                if node is not None and self._could_ever_fit(node, part):
                    self._slots.append(_Slot(node, part, rank))
        self._node_slots: dict[str, list[int]] = {}
        for i, slot in enumerate(self._slots):
            slot.steps = self._steps(slot)
            self._node_slots.setdefault(slot.node.name, []).append(i)
        self._answers: dict[
            tuple[str, float, float], list[tuple[float, float] | None]
        ] = {}

    def _could_ever_fit(self, node: NodeInfo, part: PartitionLimits) -> bool:
        cap = part.max_cpus_per_node
        return (
            node.usable
            and node.cpus >= self.cpus
            and node.memory >= self.memory
            and (cap is None or cap >= self.cpus)
        )

    def _steps(self, slot: _Slot) -> _Steps:
        """Whether a job fits on the slot's node, step by step from now."""
        node, part = slot.node, slot.partition
        changes: dict[float, list[int]] = {self.now: [0, 0, 0]}
        for b in self._bookings.get(node.name, ()):
            in_part = int(b.partition == part.name)
            for when, sign in ((max(b.start, self.now), 1), (b.end, -1)):
                delta = changes.setdefault(when, [0, 0, 0])
                delta[0] += sign * b.cpus
                delta[1] += sign * b.memory
                delta[2] += sign * b.cpus * in_part
        cap = part.max_cpus_per_node
        cpus = mem = part_cpus = 0
        steps: _Steps = []
        for when in sorted(changes):
            d_cpus, d_mem, d_part = changes[when]
            cpus, mem, part_cpus = cpus + d_cpus, mem + d_mem, part_cpus + d_part
            fits = (
                node.cpus - cpus >= self.cpus
                and node.memory - mem >= self.memory
                and (cap is None or cap - part_cpus >= self.cpus)
            )
            if steps and steps[-1][1] == fits:
                continue
            steps.append((when, fits))
        return steps

    def earliest(
        self, walltime: float, not_before: float | None = None
    ) -> Placement | None:
        """Where a job of ``walltime`` seconds starts first (the user's first
        partition wins a tie); ``None`` when it never fits."""
        table = self._table("earliest", walltime, not_before or self.now)
        best = min(
            (
                (found[0], self._slots[i].rank, i)
                for i, found in enumerate(table)
                if found is not None
            ),
            default=None,
        )
        if best is None:
            return None
        start, _, i = best
        return self._placement(i, start, table[i])

    def room_at(self, start: float, longest: float) -> Placement | None:
        """The slot where a job starting at ``start`` could run longest (at
        most ``longest`` seconds, and within the partition's limit)."""
        table = self._table("room", start, longest)
        best = max(
            ((found[1], -i) for i, found in enumerate(table) if found is not None),
            default=None,
        )
        return (
            None if best is None else self._placement(-best[1], start, table[-best[1]])
        )

    def _placement(
        self, i: int, start: float, found: tuple[float, float] | None
    ) -> Placement:
        slot = self._slots[i]
        until = found[1] if found is not None else math.inf
        return Placement(start, slot.node.name, slot.partition.name, until)

    def _table(self, kind: str, a: float, b: float) -> list[tuple[float, float] | None]:
        """Each slot's answer to one question (cached: a booking recomputes
        only the slots of its node, so placing many jobs on many nodes stays
        cheap)."""
        key = (kind, a, b)
        table = self._answers.get(key)
        if table is None:
            table = [self._answer(slot, key) for slot in self._slots]
            self._answers[key] = table
        return table

    @staticmethod
    def _answer(
        slot: _Slot, key: tuple[str, float, float]
    ) -> tuple[float, float] | None:
        """For ``("earliest", walltime, not_before)``: (start, until) of the
        first run that long; for ``("room", start, longest)``: (start, until)
        of the run from ``start``, at most ``longest`` and the time limit."""
        kind, a, b = key
        limit = slot.partition.max_time
        if kind == "earliest":
            return None if a > limit else _first_run(slot.steps, a, b)
        until = _run_from(slot.steps, a)
        return None if until is None else (a, min(until, a + min(b, limit)))

    def book(self, placement: Placement, walltime: float) -> None:
        """Hold the cores and memory of one job from ``placement.start`` for
        ``walltime`` seconds: the next placement sees them taken."""
        booking = Booking(
            placement.node,
            placement.partition,
            self.cpus,
            self.memory,
            placement.start,
            placement.start + walltime,
        )
        self._bookings.setdefault(placement.node, []).append(booking)
        for i in self._node_slots.get(placement.node, ()):
            slot = self._slots[i]
            slot.steps = self._steps(slot)
            for key, table in self._answers.items():
                table[i] = self._answer(slot, key)

    @property
    def slots(self) -> int:
        """How many (node, partition) pairs a job of this shape could use."""
        return len(self._slots)


def _first_run(
    steps: _Steps, length: float, not_before: float
) -> tuple[float, float] | None:
    """The first time from ``not_before`` at which a job fits for ``length``
    seconds, and until when it would fit."""
    for i, (when, fits) in enumerate(steps):
        if not fits:
            continue
        end = steps[i + 1][0] if i + 1 < len(steps) else math.inf
        start = max(when, not_before)
        if end - start >= length:
            return start, end
    return None


def _run_from(steps: _Steps, start: float) -> float | None:
    """Until when a job starting at ``start`` fits (``None``: it does not)."""
    for i, (when, fits) in enumerate(steps):
        end = steps[i + 1][0] if i + 1 < len(steps) else math.inf
        if when <= start < end:
            return end if fits else None
    return None
