"""Figures of the fault tests, for ``python -m benchmarks.faults``.

Each fault test calls :func:`record_fault` once its assertions passed; rows are
merged into a JSON file (``HPCDASK_FAULT_REPORT``, default
``tests/artifacts/faults.json``), one row per fault, the latest run winning.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_REPORT = Path(__file__).resolve().parents[1] / "artifacts" / "faults.json"


def report_path() -> Path:
    return Path(os.environ.get("HPCDASK_FAULT_REPORT") or DEFAULT_REPORT)


def record_fault(
    fault: str,
    checked: str,
    result: str,
    recover_seconds: float | None,
    **figures: Any,
) -> None:
    """Merge one fault's row into the report (written whole, then renamed)."""
    path = report_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        rows: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        rows = {}
    rows[fault] = {
        "fault": fault,
        "checked": checked,
        "result": result,
        "recover_seconds": None
        if recover_seconds is None
        else round(recover_seconds, 1),
        "figures": figures,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".faults-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(rows, f, indent=2, sort_keys=True)
    os.replace(tmp, path)
