"""Worker pools' names: checked as users give them, and how they are shown.

The default pool's key is ``""`` (in job records); users name it ``"default"``
or ``None``. Other pools are named by their users (``add_pool("gpu", ...)``,
``pools={"gpu": {...}}``, a profile's ``pools:``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hpcdask.errors import InvalidOptionError

__all__ = ["DEFAULT_POOL", "check_pool_name", "checked_pools", "pool_key", "pool_label"]

#: the default pool's key ("" in job records; shown as "default")
DEFAULT_POOL = ""
_POOL_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


def check_pool_name(name: object) -> str:
    """A pool's name: a lower-case letter, then letters, digits and ``_``
    (it becomes part of job and worker names)."""
    if not isinstance(name, str) or not _POOL_NAME.fullmatch(name):
        why = "use a lower-case letter, then lower-case letters, digits and _"
        raise InvalidOptionError("pool", name, why)
    if name == "default":
        raise InvalidOptionError("pool", name, "the cluster's own pool is 'default'")
    return name


def pool_key(name: str | None) -> str:
    """The key of a pool a user names: ``None`` and ``"default"`` are the
    default pool."""
    return DEFAULT_POOL if name in (None, "default") else str(name)


def checked_pools(pools: object) -> dict[str, Mapping[str, Any]]:
    """The cluster's ``pools=`` argument: pool name -> its job options."""
    if pools is None:
        return {}
    if not isinstance(pools, Mapping) or not all(
        isinstance(v, Mapping) for v in pools.values()
    ):
        why = "expected {name: {job option: value}}, e.g. {'gpu': {'gpus': 1}}"
        raise InvalidOptionError("pools", pools, why)
    return {check_pool_name(k): v for k, v in pools.items()}


def pool_label(pool: str) -> str:
    """How a pool is shown: its name, or ``default``."""
    return pool or "default"
