"""TLS credentials that workers in batch jobs can read.

Workers start on other nodes, so in-memory certificates (``Security.temporary()``)
are written to a directory only the user can read (0700, files 0600) on a file
system the jobs see, and removed when the cluster closes. Only file paths reach the
job script; the key itself never does.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from distributed.security import Security


def _is_pem(value: object) -> bool:
    return isinstance(value, str) and "-----BEGIN" in value


def worker_security_args(
    security: Security, directory: str
) -> tuple[list[str], str | None]:
    """``dask worker`` TLS arguments for ``security``.

    Returns the arguments and the private directory that was created to hold
    in-memory credentials (``None`` when the credentials were already files).
    """
    config = security.get_tls_config_for_role("worker")
    ca, cert, key = config.get("ca_file"), config.get("cert"), config.get("key")
    if not (ca or cert):
        return [], None
    private_dir = None
    if any(_is_pem(v) for v in (ca, cert, key)):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        private_dir = tempfile.mkdtemp(prefix="cluster-", dir=directory)
        os.chmod(private_dir, 0o700)
        ca, cert, key = (
            _write_private(private_dir, name, value) if _is_pem(value) else value
            for name, value in (("ca.pem", ca), ("cert.pem", cert), ("key.pem", key))
        )
    args: list[str] = []
    if ca:
        args += ["--tls-ca-file", str(ca)]
    if cert:
        args += ["--tls-cert", str(cert)]
    if key:
        args += ["--tls-key", str(key)]
    return args, private_dir


def _write_private(directory: str, name: str, content: object) -> str:
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(str(content))
    return path


def remove_private_dir(directory: str | None) -> None:
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
