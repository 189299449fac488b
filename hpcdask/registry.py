"""The registry of a user's scheduler-job clusters: one private directory each.

``<root>/<name>/`` (root ``~/.hpcdask/clusters``, mode 0700, as is each entry)
holds, each file mode 0600:

- ``ca.pem``, ``cert.pem``, ``key.pem``: the cluster's TLS credentials, made for it
  alone by the process that made the cluster; the scheduler, its workers and every
  handle use them, so only this user can connect;
- ``spec.pickle``: what the scheduler job needs to make the cluster (the
  constructor's arguments and the notebook's hpcdask config), written before the
  job is submitted; only the user can write the directory, so only the user's own
  data is ever unpickled;
- ``entry.json``: the scheduler job's id and the batch system, written once it is
  submitted;
- ``scheduler.json``: the scheduler's address and dashboard, written by the
  scheduler job once the scheduler listens.

File I/O only: whether an entry's job still lives is asked of the queue by
:mod:`hpcdask.lookup`, which removes stale entries.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import stat
import tempfile
from dataclasses import dataclass
from typing import Any

from distributed.security import Security

from hpcdask.errors import InvalidOptionError
from hpcdask.security import CREDENTIAL_NAMES, worker_tls, write_private

__all__ = [
    "Entry",
    "entry_security",
    "list_entries",
    "make_root",
    "new_entry",
    "read_entry",
    "read_spec",
    "remove_entry",
    "write_json",
    "write_spec",
]

ENTRY = "entry.json"
SCHEDULER = "scheduler.json"
SPEC = "spec.pickle"


@dataclass(frozen=True)
class Entry:
    """One registered cluster, as its files say."""

    name: str
    directory: str
    system: str = ""
    job_id: str = ""
    created: float = 0.0
    log_directory: str = ""
    #: the scheduler's address (``tls://``); empty while the job has not started
    address: str = ""
    #: the dashboard's ``host:port`` (empty: no dashboard)
    dashboard: str = ""
    #: when the scheduler started (POSIX time)
    started: float = 0.0

    @property
    def running(self) -> bool:
        """Whether the scheduler job has said where its scheduler listens."""
        return bool(self.address)

    @property
    def submitted(self) -> bool:
        return bool(self.job_id)


def make_root(root: str) -> str:
    """Create the registry's directory (0700) if needed; refuse one that others
    can read or that belongs to someone else."""
    os.makedirs(root, mode=0o700, exist_ok=True)
    info = os.stat(root)
    if info.st_uid != os.getuid():
        raise InvalidOptionError(
            "hpcdask.registry-directory", root, "belongs to another user"
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(root, 0o700)  # ours: keep it private
    return root


def new_entry(root: str, name: str) -> str:
    """Create the private directory of a new cluster ``name``.

    Raises
    ------
    hpcdask.InvalidOptionError
        when a cluster of that name is registered.
    """
    path = os.path.join(make_root(root), name)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        raise InvalidOptionError(
            "cluster_name",
            name,
            "a cluster of this name is registered (see `hpcdask list`): reconnect "
            "with from_name(), or choose another name",
        ) from None
    os.chmod(path, 0o700)  # whatever the umask
    return path


def write_credentials(directory: str, security: Security) -> None:
    """Write ``security``'s in-memory credentials (PEM text) as private files."""
    for name, value in zip(CREDENTIAL_NAMES, worker_tls(security), strict=True):
        write_private(directory, name, value)


def entry_security(directory: str) -> Security:
    """The cluster's TLS settings from its credential files: the same certificate
    for the scheduler, its workers and its clients, encryption required."""
    ca, cert, key = (os.path.join(directory, n) for n in CREDENTIAL_NAMES)
    for path in (ca, cert, key):
        if not os.path.exists(path):
            raise FileNotFoundError(f"the cluster's TLS file {path} is missing")
    # distributed's Security is unannotated
    security: Security = Security(  # type: ignore[no-untyped-call]
        tls_ca_file=ca,
        tls_client_cert=cert,
        tls_client_key=key,
        tls_scheduler_cert=cert,
        tls_scheduler_key=key,
        tls_worker_cert=cert,
        tls_worker_key=key,
        require_encryption=True,
    )
    return security


def write_json(directory: str, filename: str, data: dict[str, Any]) -> None:
    """Replace ``filename`` in ``directory`` with ``data`` at once (mode 0600):
    a reader sees the old file or the new one, never half of it."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")  # 0600
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, os.path.join(directory, filename))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_spec(directory: str, spec: dict[str, Any]) -> None:
    write_private(directory, SPEC, "")  # created 0600 first, never through a link
    with open(os.path.join(directory, SPEC), "wb") as f:
        pickle.dump(spec, f)


def read_spec(directory: str) -> dict[str, Any]:
    """The spec the scheduler job makes its cluster from."""
    info = os.stat(directory)
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o022:
        raise PermissionError(f"{directory} is not private to this user")
    with open(os.path.join(directory, SPEC), "rb") as f:
        spec: dict[str, Any] = pickle.load(f)  # our own file, see the module doc
    return spec


def _read_json(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_entry(directory: str) -> Entry:
    """The entry in ``directory`` (fields empty where its files are missing)."""
    fields = {**_read_json(os.path.join(directory, ENTRY))}
    fields.update(_read_json(os.path.join(directory, SCHEDULER)))
    known = set(Entry.__dataclass_fields__) - {"name", "directory"}
    values = {k: v for k, v in fields.items() if k in known}
    return Entry(name=os.path.basename(directory), directory=directory, **values)


def list_entries(root: str) -> list[Entry]:
    """Every entry in the registry, by name (none when it does not exist)."""
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    return [
        read_entry(os.path.join(root, name))
        for name in names
        if not name.startswith(".") and os.path.isdir(os.path.join(root, name))
    ]


def remove_entry(directory: str) -> None:
    """Delete an entry with its credentials; safe when it is already gone."""
    shutil.rmtree(directory, ignore_errors=True)
