"""The package's shape, checked from its source: layers, cycles, sizes, and who
may read dask config or change the wanted jobs (docs/architecture.md)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "hpcdask"

#: every module's layer; a module imports only from its own layer or below.
#: A new module must be placed here (the test fails until it is).
LAYERS: dict[str, int] = {
    "errors": 0, "models": 0, "format": 0, "forecast": 0,
    "validation": 1, "runner": 1, "noise": 1, "network": 1, "forward": 1,
    "optiontable": 1, "demand": 1, "poolnames": 1,
    "options": 2, "config": 2, "configfile": 2, "profiles": 2, "security": 2,
    "jobbounds": 2,
    "jobmode": 2, "registry": 2, "idle": 1,
    "systems": 3, "systems.base": 3, "systems.slurm": 3, "systems.pbs": 3,
    "systems.sge": 3, "systems.sge_output": 3, "systems.sge_backend": 3,
    "systems.local": 3, "systems.timefmt": 3, "script": 3, "cost": 3, "policy": 3,
    "systems.slurm_starts": 3, "shapes": 3,
    "jobs": 4, "fleet": 4, "probe": 4, "view": 4, "compat": 4, "lookup": 4,
    "startprobe": 4, "submission": 4,
    "pooldemand": 2, "poolview": 3,
    "adaptive": 5, "manager": 5, "listing": 5, "widget": 5, "page": 5, "dashboard": 5,
    "launch": 5, "address": 5,
    "schedulerargs": 5, "pools": 5, "poolscaling": 5, "poolset": 5,
    "deploy": 6, "cluster": 6, "handle": 6, "keeper": 6, "discovery": 6,
    "mpi": 6, "mpi.options": 6, "mpi.roles": 6, "mpi.logs": 6, "mpi.servers": 6,
    "mpi.control": 6, "mpi.slurm": 6, "mpi.plugins": 6, "mpi.scheduler": 6,
    "mpi.worker": 6, "mpi.client": 6, "mpi.ranks": 6, "mpi.tracebacks": 6,
    "mpi.api": 6, "mpi.script": 6, "mpi.cli": 6, "mpi.srun": 6, "mpi.__main__": 6,
    "cli": 7, "cli_clusters": 7, "": 8,
}  # fmt: skip


def modules() -> dict[str, Path]:
    """Module name (relative to the package, "" for its __init__) -> file."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported(path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """The package's modules ``path`` imports (anywhere in it, TYPE_CHECKING
    blocks and function bodies included), with line numbers."""
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # "from hpcdask.x import y": module x, and x.y when that is a module
            # too ("from hpcdask import cli" is the module cli, not the package)
            submodules = [f"{node.module}.{a.name}" for a in node.names]
            names = [n for n in submodules if _relative(n) in known]
            if node.module != "hpcdask" or not names:
                names.append(node.module)
        for name in names:
            is_ours = name == "hpcdask" or name.startswith("hpcdask.")
            if is_ours and _relative(name) in known:
                yield _relative(name), node.lineno


def _relative(name: str) -> str:
    return name.removeprefix("hpcdask").removeprefix(".")


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {
        name: {m for m, _ in imported(path, set(found)) if m != name}
        for name, path in found.items()
    }


def test_every_module_has_a_layer() -> None:
    assert set(modules()) == set(LAYERS)


def test_imports_go_down_the_layers() -> None:
    upward = [
        f"{name} (layer {LAYERS[name]}) imports {target} (layer {LAYERS[target]})"
        for name, targets in import_graph().items()
        for target in targets
        if LAYERS[target] > LAYERS[name]
    ]
    assert upward == []


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` (empty when there is none)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_no_import_cycles() -> None:
    assert find_cycle(import_graph()) == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("name", sorted(modules()))
def test_sizes(name: str) -> None:
    """Modules <= 400 lines, functions <= 60, classes <= 250 (docstrings in)."""
    source = modules()[name].read_text()
    assert len(source.splitlines()) <= 400
    too_long = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            limit = 250 if isinstance(node, ast.ClassDef) else 60
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > limit:
                too_long.append(f"{node.name}: {length} lines")
    assert too_long == []


def attribute_uses(attribute: str) -> Iterator[tuple[str, int, bool]]:
    """(module, line, whether it is written) for each ``x.<attribute>``."""
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        targets = {
            id(t)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete))
            for t in (node.targets if hasattr(node, "targets") else [node.target])
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == attribute:
                yield name, node.lineno, id(node) in targets


def test_dask_config_is_read_only_in_config() -> None:
    readers = {
        (name, line)
        for name, line, _ in attribute_uses("get")
        if "dask.config.get" in modules()[name].read_text().splitlines()[line - 1]
    }
    assert {name for name, _ in readers} == {"config"}


def test_the_wanted_jobs_are_changed_in_the_fleet_only() -> None:
    """``fleet.wanted`` (SpecCluster's ``worker_spec``) is mutated in fleet.py
    only: assigned, or changed through a mutating method."""
    mutators = {"pop", "update", "clear", "setdefault", "popitem", "__setitem__"}
    changed = set()
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            target = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr in mutators:
                    target = node.func.value
            elif isinstance(node, (ast.Assign, ast.Delete)):
                for t in node.targets:
                    if isinstance(t, ast.Subscript):
                        target = t.value
            if isinstance(target, ast.Attribute) and target.attr in (
                "wanted",
                "worker_spec",
            ):
                changed.add(name)
    assert changed == {"fleet"}
