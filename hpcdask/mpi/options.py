"""How the scheduler and the workers are started: one dataclass, also the flags.

Each field of :class:`ClusterOptions` carries its help text and how a command
line's word becomes its value; :func:`add_arguments` builds ``hpcdask-mpi``'s
flags from them (``nthreads`` is ``--nthreads``, a ``bool`` is ``--x/--no-x``),
so an option is written once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from hpcdask.mpi.roles import Roles, worker_name

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from hpcdask.mpi.servers import DaskServer

__all__ = ["ClusterOptions", "Placement", "add_arguments", "from_arguments"]

D = TypeVar("D", bound="DataclassInstance")


def flag(
    help: str,
    parse: Callable[[str], object] | None = None,
    *,
    names: tuple[str, ...] = (),
    off: str | None = None,
) -> dict[str, object]:
    """A field's metadata that makes it a command-line flag.

    ``help`` is its help text, ``parse`` turns a word into its value (``str``
    when ``None``). The flag is ``--field-name``, or ``names``; a ``bool``
    field is ``--x/--no-x``, or ``--x`` and ``off`` (e.g. dask-mpi's
    ``--exclusive-workers/--inclusive-workers``).
    """
    return {"help": help, "parse": parse, "names": names, "off": off}


# -- how command-line words become values ------------------------------------------


def parse_memory_limit(text: str) -> str | float | None:
    """``"none"``/``"0"``: no limit; a number: bytes or a fraction; else as given."""
    if text.lower() in ("none", "0"):
        return None
    try:
        return float(text)
    except ValueError:
        return text


def parse_positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def parse_json_object(text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from e
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def parse_log_level(text: str) -> str | None:
    """``"dask"`` keeps dask's own logging configuration (``None``)."""
    return None if text == "dask" else text


class SchedulerKwargs(TypedDict, total=False):
    """What the launcher passes to :class:`distributed.Scheduler`."""

    interface: str | None
    protocol: str | None
    dashboard: bool
    dashboard_address: str
    port: int
    scheduler_file: str


# -- the options ----------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterOptions:
    """How the scheduler and the workers are started (see :func:`initialize`).

    Raises :class:`ValueError` naming the first bad value.
    """

    interface: str | None = field(
        default=None, metadata=flag("network interface, e.g. ib0")
    )
    nthreads: int = field(default=1, metadata=flag("threads per worker", int))
    local_directory: str | None = field(
        default=None, metadata=flag("directory for worker scratch files")
    )
    memory_limit: str | int | float | None = field(
        default="auto",
        metadata=flag(
            "memory per worker, e.g. 4GB ('auto': dask's share; 'none': no limit)",
            parse_memory_limit,
        ),
    )
    nanny: bool = field(
        default=False, metadata=flag("run each worker under a nanny that restarts it")
    )
    dashboard: bool = field(
        default=True, metadata=flag("serve the scheduler's dashboard")
    )
    dashboard_address: str = field(
        default=":8787",
        metadata=flag(
            "dashboard address (default %(default)s; ':0' for any free port)"
        ),
    )
    protocol: str | None = field(
        default=None, metadata=flag("comm protocol, e.g. tcp:// or ucx://")
    )
    worker_class: str | type = field(
        default="distributed.Worker",
        metadata=flag("import path of the worker class (default %(default)s)"),
    )
    worker_name: str | None = field(
        default=None,
        metadata=flag(
            "name workers <NAME>-<rank> (default: the rank)",
            names=("--worker-name", "--name"),
        ),
    )
    worker_options: Mapping[str, object] = field(
        default_factory=dict,
        metadata=flag(
            "JSON object of further worker keyword arguments", parse_json_object
        ),
    )
    scheduler_file: str | None = field(
        default=None, metadata=flag("write the scheduler's address here")
    )
    scheduler_port: int = field(
        default=0, metadata=flag("scheduler port (default: any free port)", int)
    )
    log_level: str | None = field(
        default="warning",
        metadata=flag(
            "level of dask's logs (default %(default)s; 'dask' keeps dask's config)",
            parse_log_level,
        ),
    )
    failure_timeout: float = field(
        default=10.0,
        metadata=flag(
            "seconds before a lost rank ends the job (default %(default)s)",
            parse_positive_float,
        ),
    )
    shutdown_timeout: float = field(
        default=60.0,
        metadata=flag(
            "seconds the shutdown may take (default %(default)s)",
            parse_positive_float,
        ),
    )

    def __post_init__(self) -> None:
        nthreads = self.nthreads
        if isinstance(nthreads, bool) or not isinstance(nthreads, int) or nthreads < 1:
            raise ValueError(f"nthreads must be a positive integer, not {nthreads!r}")
        for name in ("failure_timeout", "shutdown_timeout"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or value <= 0
            ):
                raise ValueError(
                    f"{name} must be a positive number of seconds, not {value!r}"
                )
        level = self.log_level
        if level is not None and not isinstance(
            logging.getLevelName(level.upper()), int
        ):
            raise ValueError(f"unknown log_level {level!r}")
        if not isinstance(self.worker_options, Mapping):
            raise ValueError("worker_options must be a dict")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ClusterOptions:
        """The options among ``values`` (e.g. a function's parameters); ``None``
        for ``worker_options`` is no options."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in names}
        if kwargs.get("worker_options", {}) is None:
            kwargs["worker_options"] = {}
        return cls(**kwargs)

    def scheduler_kwargs(self) -> SchedulerKwargs:
        """Keyword arguments of :class:`distributed.Scheduler`."""
        kwargs: SchedulerKwargs = {
            "interface": self.interface,
            "protocol": self.protocol,
            "dashboard": self.dashboard,
            "dashboard_address": self.dashboard_address,
            "port": self.scheduler_port,
        }
        if self.scheduler_file:
            kwargs["scheduler_file"] = self.scheduler_file
        return kwargs

    def worker_spec(
        self, rank: int
    ) -> tuple[Callable[..., DaskServer], dict[str, object]]:
        """The class to start on worker ``rank`` and its keyword arguments.

        With ``nanny=True`` that is a :class:`distributed.Nanny` running
        ``worker_class`` when that is a :class:`distributed.Worker` class.
        """
        from distributed import Nanny, Worker
        from distributed.utils import import_term

        cls: Callable[..., DaskServer] = (
            import_term(self.worker_class)
            if isinstance(self.worker_class, str)
            else self.worker_class
        )
        kwargs: dict[str, object] = {
            "name": worker_name(rank, self.worker_name),
            "interface": self.interface,
            "protocol": self.protocol,
            "nthreads": self.nthreads,
            "memory_limit": self.memory_limit,
            "local_directory": self.local_directory,
        }
        # a nanny runs a Worker class; others (dask-cuda's) start their own
        if self.nanny and isinstance(cls, type) and issubclass(cls, Worker):
            kwargs["worker_class"] = cls
            cls = Nanny
        kwargs.update(self.worker_options)
        return cls, kwargs


@dataclass(frozen=True)
class Placement:
    """Which rank runs the scheduler and the client (``hpcdask-mpi`` flags and
    :func:`~hpcdask.mpi.execute`'s arguments of the same names)."""

    scheduler_rank: int = field(
        default=0, metadata=flag("rank of the scheduler (default %(default)s)", int)
    )
    client_rank: int = field(
        default=1, metadata=flag("rank of the client (default %(default)s)", int)
    )
    exclusive_workers: bool = field(
        default=True,
        metadata=flag(
            "workers only on ranks with no other role (default); "
            "--inclusive-workers: on every rank, beside the scheduler and client",
            off="--inclusive-workers",
        ),
    )
    scheduler: bool = field(
        default=True,
        metadata=flag(
            "start a scheduler (default); --no-scheduler: the workers join the "
            "scheduler at SCHEDULER_ADDRESS or in --scheduler-file"
        ),
    )

    def roles(self, size: int, with_client: bool, launcher: str) -> Roles:
        """The roles of ``size`` ranks; :class:`WorldTooSmallError` if too few."""
        return Roles(
            size,
            scheduler=self.scheduler_rank if self.scheduler else None,
            client=self.client_rank if with_client else None,
            exclusive_workers=self.exclusive_workers,
            launcher=launcher,
        )


# -- flags from the fields ------------------------------------------------------------


def add_arguments(
    parser: argparse.ArgumentParser,
    cls: type[DataclassInstance] = ClusterOptions,
    title: str = "cluster",
    exclude: Collection[str] = (),
) -> None:
    """One flag per field of ``cls`` that has help text (but those named in
    ``exclude``), defaults from ``cls``."""
    group = parser.add_argument_group(title)
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata or f.name in exclude:
            continue
        meta = f.metadata
        names = meta["names"] or ("--" + f.name.replace("_", "-"),)
        default = (
            f.default_factory()
            if f.default_factory is not dataclasses.MISSING
            else f.default
        )
        if not isinstance(default, bool):
            group.add_argument(
                *names,
                dest=f.name,
                type=meta["parse"],
                default=default,
                help=meta["help"],
            )
        elif meta["off"] is None:
            group.add_argument(
                *names,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=default,
                help=meta["help"],
            )
        else:
            group.add_argument(
                *names,
                dest=f.name,
                action="store_true",
                default=default,
                help=meta["help"],
            )
            group.add_argument(
                meta["off"],
                dest=f.name,
                action="store_false",
                help=f"the opposite of {names[0]}",
            )


def from_arguments(args: argparse.Namespace, cls: type[D]) -> D:
    """An instance of ``cls`` from the flags :func:`add_arguments` made (the
    defaults of ``cls`` for fields without flags)."""
    names = [f.name for f in dataclasses.fields(cls) if hasattr(args, f.name)]
    return cls(**{name: getattr(args, name) for name in names})
