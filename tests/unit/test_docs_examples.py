"""The Python examples in docs/ and the README stay true to the API: they
compile, import names that exist, call cluster methods that exist, and pass
arguments the cluster classes and ``adapt()`` accept."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

from hpcdask import HPCCluster
from hpcdask.config import AdaptArguments
from hpcdask.options import DEFAULTS

ROOT = Path(__file__).resolve().parents[2]
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
CLUSTERS = {"SLURMCluster", "PBSCluster", "LocalBatchCluster", "HPCCluster"}
CLUSTER_ARGS = set(inspect.signature(HPCCluster.__init__).parameters) | set(DEFAULTS)
ADAPT_ARGS = set(AdaptArguments.__annotations__)


def examples() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for i, block in enumerate(FENCE.findall(page.read_text())):
            if not block.lstrip().startswith(">>>"):  # sessions are shown, not run
                found.append((f"{page.name}#{i}", block))
    return found


def test_the_docs_have_examples() -> None:
    assert len(examples()) >= 10


@pytest.mark.parametrize(("where", "code"), examples(), ids=[w for w, _ in examples()])
def test_example_matches_the_api(where: str, code: str) -> None:
    tree = ast.parse(code, filename=where)
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "hpcdask"
        ):
            module = importlib.import_module(node.module or "")
            problems += [
                f"{node.module} has no {alias.name}"
                for alias in node.names
                if not hasattr(module, alias.name)
            ]
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "cluster"
            and not hasattr(HPCCluster, node.attr)
        ):
            problems.append(f"clusters have no {node.attr!r}")
        elif isinstance(node, ast.Call):
            func = node.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else getattr(func, "id", "")
            )
            owner = func.value if isinstance(func, ast.Attribute) else None
            if name in CLUSTERS or (
                name == "from_profile" and getattr(owner, "id", "") in CLUSTERS
            ):
                accepted = CLUSTER_ARGS
            elif name == "adapt":
                accepted = ADAPT_ARGS
            else:
                continue
            problems += [
                f"{name}() takes no {kw.arg!r}"
                for kw in node.keywords
                if kw.arg is not None and kw.arg not in accepted
            ]
    assert not problems, f"{where}: {problems}"
