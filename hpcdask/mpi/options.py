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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["ClusterOptions", "add_arguments", "from_arguments"]

D = TypeVar("D", bound="DataclassInstance")


def flag(help: str, parse: Callable[[str], object] | None = None) -> dict[str, object]:
    """A field's metadata that makes it a command-line flag: its help text and
    how a word becomes its value (``str`` when ``None``; ``bool`` fields are
    ``--x/--no-x``)."""
    return {"help": help, "parse": parse}


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


def parse_json_object(text: str) -> dict[str, Any]:
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
    worker_options: Mapping[str, Any] = field(
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

    def worker_spec(self, rank: int) -> tuple[Callable[..., Any], dict[str, object]]:
        """The class to start on worker ``rank`` and its keyword arguments.

        With ``nanny=True`` that is a :class:`distributed.Nanny` running
        ``worker_class``, unless ``worker_class`` is itself a nanny class.
        """
        from distributed import Nanny
        from distributed.utils import import_term

        cls: Callable[..., Any] = (
            import_term(self.worker_class)
            if isinstance(self.worker_class, str)
            else self.worker_class
        )
        kwargs: dict[str, object] = {
            "name": rank,
            "interface": self.interface,
            "protocol": self.protocol,
            "nthreads": self.nthreads,
            "memory_limit": self.memory_limit,
            "local_directory": self.local_directory,
        }
        if self.nanny and not (isinstance(cls, type) and issubclass(cls, Nanny)):
            kwargs["worker_class"] = cls
            cls = Nanny
        kwargs.update(self.worker_options)
        return cls, kwargs


# -- flags from the fields ------------------------------------------------------------


def add_arguments(
    parser: argparse.ArgumentParser,
    cls: type[DataclassInstance] = ClusterOptions,
    title: str = "cluster",
) -> None:
    """One flag per field of ``cls`` that has help text, defaults from ``cls``."""
    group = parser.add_argument_group(title)
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = (
            f.default_factory()
            if f.default_factory is not dataclasses.MISSING
            else f.default
        )
        if isinstance(default, bool):
            group.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=default,
                help=f.metadata["help"],
            )
            continue
        group.add_argument(
            flag,
            dest=f.name,
            type=f.metadata["parse"],
            default=default,
            help=f.metadata["help"],
        )


def from_arguments(args: argparse.Namespace, cls: type[D]) -> D:
    """An instance of ``cls`` from the flags :func:`add_arguments` made."""
    names = [f.name for f in dataclasses.fields(cls) if "help" in f.metadata]
    return cls(**{name: getattr(args, name) for name in names})
