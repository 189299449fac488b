"""The cluster options: defaults, checks, what the scheduler and workers get."""

from __future__ import annotations

import argparse
import dataclasses
import inspect

import pytest
from distributed import Nanny, Worker

from hpcdask.mpi import ClusterOptions, initialize
from hpcdask.mpi.options import add_arguments, from_arguments


def test_defaults_match_dask_mpi() -> None:
    options = ClusterOptions()
    assert options.nthreads == 1
    assert options.memory_limit == "auto"
    assert options.nanny is False
    assert options.dashboard is True
    assert options.dashboard_address == ":8787"
    assert options.worker_class == "distributed.Worker"


def test_worker_spec_plain_worker() -> None:
    options = ClusterOptions(
        nthreads=2,
        memory_limit="1GB",
        interface="lo",
        worker_options={"resources": {"GPU": 1}},
    )
    cls, kwargs = options.worker_spec(3)
    assert cls is Worker
    assert kwargs["name"] == 3
    assert kwargs["nthreads"] == 2
    assert kwargs["memory_limit"] == "1GB"
    assert kwargs["interface"] == "lo"
    assert kwargs["resources"] == {"GPU": 1}
    assert "worker_class" not in kwargs


def test_worker_spec_nanny_runs_the_worker_class() -> None:
    cls, kwargs = ClusterOptions(nanny=True).worker_spec(2)
    assert cls is Nanny
    assert kwargs["worker_class"] is Worker


def test_worker_spec_a_nanny_class_is_used_as_is() -> None:
    cls, kwargs = ClusterOptions(
        nanny=True, worker_class="distributed.Nanny"
    ).worker_spec(2)
    assert cls is Nanny
    assert "worker_class" not in kwargs


def test_scheduler_kwargs() -> None:
    kwargs = ClusterOptions(
        dashboard=False, scheduler_file="/tmp/s.json", scheduler_port=8786
    ).scheduler_kwargs()
    assert kwargs["dashboard"] is False
    assert kwargs["scheduler_file"] == "/tmp/s.json"
    assert kwargs["port"] == 8786


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("nthreads", 0),
        ("nthreads", True),
        ("failure_timeout", 0),
        ("shutdown_timeout", -1),
        ("log_level", "loud"),
    ],
)
def test_bad_options_are_refused_by_name(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        ClusterOptions(**{field: value})  # type: ignore[arg-type]


# -- one dataclass, also the flags and initialize()'s parameters --------------------


def test_the_flags_default_to_the_fields_defaults() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert from_arguments(parser.parse_args([]), ClusterOptions) == ClusterOptions()


def test_every_option_is_a_flag() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = {a.dest for a in parser._actions if a.option_strings} - {"help"}
    assert flags == {f.name for f in dataclasses.fields(ClusterOptions)}


def test_flag_words_become_values() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    words = "--nanny --no-dashboard --memory-limit none --log-level dask"
    words += " --failure-timeout 2.5"
    args = parser.parse_args([*words.split(), "--worker-options", '{"lifetime": "1h"}'])
    options = from_arguments(args, ClusterOptions)
    assert options.nanny is True
    assert options.dashboard is False
    assert options.memory_limit is None
    assert options.log_level is None
    assert options.worker_options == {"lifetime": "1h"}
    assert options.failure_timeout == 2.5


def test_initialize_has_one_parameter_per_option_with_its_default() -> None:
    parameters = inspect.signature(initialize).parameters
    fields = dataclasses.fields(ClusterOptions)
    assert set(parameters) - {"comm", "exit"} == {f.name for f in fields}
    defaults = ClusterOptions()
    for f in fields:
        default = parameters[f.name].default
        # None for worker_options means {}, as in dask-mpi
        expected = None if f.name == "worker_options" else getattr(defaults, f.name)
        assert default == expected, f.name


def test_from_mapping_takes_the_options_among_other_names() -> None:
    options = ClusterOptions.from_mapping(
        {"nthreads": 3, "worker_options": None, "comm": object(), "exit": False}
    )
    assert options == ClusterOptions(nthreads=3)
