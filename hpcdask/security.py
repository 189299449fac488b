"""TLS for a cluster's scheduler and workers, on by default.

A notebook cluster's scheduler runs on a shared login node and runs whatever code
it is sent, so every cluster gets its own self-signed certificate and key
(``Security.temporary()``, made with ``cryptography``) and listens on ``tls://``
only: a client or worker without that certificate cannot connect, to the
scheduler or to a worker. ``security=False`` (or config ``hpcdask.security:
false``) turns TLS off, with a logged warning.

Workers start on other nodes, so the in-memory credentials are written to a
directory only the user can read (0700, files 0600) on a file system the jobs see:
``shared_temp_directory``, by default ``security/`` next to the log directory. Each
cluster's directory is ``cluster-PID@HOST-XXXXXXXX`` in it, removed when the
cluster closes or the interpreter exits; directories of processes of this host
that died without either (``kill -9``) are removed by the next cluster made there
and by ``hpcdask cancel``. Only the files' paths reach a job script or a worker's
argv; the key itself never does.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import socket
import tempfile
import weakref
from collections.abc import Callable

from distributed.security import Security

from hpcdask.errors import InvalidOptionError
from hpcdask.options import JobOptions
from hpcdask.runner import process_alive

logger = logging.getLogger(__name__)

__all__ = [
    "CredentialFiles",
    "credential_args",
    "credentials_directory",
    "placeholder_security_args",
    "remove_stale_private_dirs",
    "resolve_security",
    "secure_job_options",
    "with_tls_protocol",
    "worker_security_args",
    "worker_tls",
    "write_private",
]

#: file names of the credentials a worker reads, in a cluster's private directory.
CREDENTIAL_NAMES = ("ca.pem", "cert.pem", "key.pem")
_PRIVATE_PREFIX = "cluster-"
_PRIVATE_DIR = re.compile(r"cluster-(\d+)@(.+)-[^-]+")
#: protocols that encrypt, and that distributed's TLS credentials apply to.
TLS_PROTOCOLS = ("tls://", "wss://")
_INSECURE_WARNING = (
    "security=False: TLS is off. The scheduler will accept connections from "
    "anyone who can reach its port (other users of this login node too) and run "
    "the code they send; leave security on unless the network is yours alone."
)


def resolve_security(
    security: Security | bool | None, configured: bool = True
) -> Security | None:
    """The cluster's :class:`~distributed.security.Security`, or ``None`` for none.

    ``None`` means ``configured`` (config ``hpcdask.security``, see
    :func:`hpcdask.config.security_setting`); ``True`` makes
    a temporary self-signed certificate for this cluster only; ``False`` turns
    TLS off, with a logged warning; a ``Security`` is used as given.

    Raises
    ------
    hpcdask.InvalidOptionError
        for any other value.
    """
    if security is None:
        security = configured
    if isinstance(security, Security):
        return security
    if security is True:
        # distributed's Security is unannotated
        temporary: Security = Security.temporary()  # type: ignore[no-untyped-call]
        return temporary
    if security is False:
        logger.warning(_INSECURE_WARNING)
        return None
    raise InvalidOptionError(
        "security",
        security,
        "expected True (TLS with a certificate made for this cluster), False, "
        "or a distributed.security.Security",
    )


def worker_tls(security: Security) -> tuple[object, object, object]:
    """The CA, certificate and key a worker uses: file paths, PEM text or None."""
    # distributed's Security is unannotated
    config = security.get_tls_config_for_role("worker")  # type: ignore[no-untyped-call]
    return config.get("ca_file"), config.get("cert"), config.get("key")


def secure_job_options(opts: JobOptions, security: Security | None) -> JobOptions:
    """``opts`` with the protocol ``security`` needs: ``tls://`` unless chosen.

    Raises
    ------
    hpcdask.InvalidOptionError
        when ``security`` requires encryption and ``opts.protocol`` is not TLS.
    """
    if security is None:
        return opts
    ca, cert, _ = worker_tls(security)
    if not (security.require_encryption or ca or cert):
        return opts
    return with_tls_protocol(opts, strict=bool(security.require_encryption))


def with_tls_protocol(opts: JobOptions, strict: bool = True) -> JobOptions:
    """``opts`` with protocol ``tls://`` when none was chosen; with ``strict``,
    an unencrypted protocol is an error."""
    if opts.protocol is None:
        return dataclasses.replace(opts, protocol="tls://")
    if strict and opts.protocol not in TLS_PROTOCOLS:
        raise InvalidOptionError(
            "protocol",
            opts.protocol,
            "TLS is on (the default), so use tls:// (or leave protocol unset); "
            "pass security=False to run unencrypted",
        )
    return opts


def credentials_directory(opts: JobOptions) -> str:
    """Where clusters with ``opts`` write their workers' credentials."""
    return opts.shared_temp_directory or os.path.join(
        os.path.dirname(opts.log_directory.rstrip("/")) or "/", "security"
    )


class CredentialFiles:
    """The worker's TLS arguments and, for in-memory credentials, their files.

    Made by :func:`worker_security_args`. :meth:`remove` deletes the private
    directory; it also runs at interpreter exit and when the object is collected.
    """

    def __init__(self, args: list[str], private_dir: str | None) -> None:
        self.args = args
        self.private_dir = private_dir
        self._finalizer: Callable[[], object] | None = None
        if private_dir is not None:
            self._finalizer = weakref.finalize(self, _remove_tree, private_dir)

    def remove(self) -> None:
        """Delete the private directory (if any); safe to call twice."""
        if self._finalizer is not None:
            self._finalizer()


def _remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def worker_security_args(security: Security, directory: str) -> CredentialFiles:
    """``dask worker`` TLS arguments for ``security``.

    In-memory credentials (PEM text, as ``Security.temporary()`` holds them) are
    written to a new private directory in ``directory``; credentials that are
    already files are passed by their paths.
    """
    ca, cert, key = worker_tls(security)
    if not (ca or cert):
        return CredentialFiles([], None)
    private_dir = None
    if any(_is_pem(v) for v in (ca, cert, key)):
        private_dir = _make_private_dir(directory)
        try:
            ca, cert, key = (
                write_private(private_dir, name, value) if _is_pem(value) else value
                for name, value in zip(CREDENTIAL_NAMES, (ca, cert, key), strict=True)
            )
        except BaseException:
            _remove_tree(private_dir)
            raise
    return CredentialFiles(credential_args(ca, cert, key), private_dir)


def credential_args(ca: object, cert: object, key: object) -> list[str]:
    """The worker command's ``--tls-*`` arguments for credential file paths."""
    args: list[str] = []
    for flag, value in (
        ("--tls-ca-file", ca),
        ("--tls-cert", cert),
        ("--tls-key", key),
    ):
        if value:
            args += [flag, str(value)]
    return args


def placeholder_security_args(opts: JobOptions) -> list[str]:
    """The ``--tls-*`` arguments a cluster with ``opts`` would pass, with
    ``XXXXXXXX`` where each cluster puts its own private directory's name."""
    private_dir = os.path.join(credentials_directory(opts), "cluster-XXXXXXXX")
    ca, cert, key = (os.path.join(private_dir, name) for name in CREDENTIAL_NAMES)
    return credential_args(ca, cert, key)


def _is_pem(value: object) -> bool:
    return isinstance(value, str) and "-----BEGIN" in value


def _make_private_dir(directory: str) -> str:
    os.makedirs(directory, mode=0o700, exist_ok=True)
    remove_stale_private_dirs(directory)
    host = socket.gethostname()
    prefix = f"{_PRIVATE_PREFIX}{os.getpid()}@{host}-"
    # mkdtemp creates the directory 0700 whatever the umask, and never reuses one
    return tempfile.mkdtemp(prefix=prefix, dir=directory)


def write_private(directory: str, name: str, content: object) -> str:
    """Write ``content`` to a new file ``name`` in ``directory``, mode 0600."""
    path = os.path.join(directory, name)
    # O_EXCL: never write through a file (or symlink) someone put there
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(str(content))
    return path


def remove_stale_private_dirs(directory: str, dry_run: bool = False) -> list[str]:
    """Remove the private directories in ``directory`` left by processes of this
    host that are gone (killed before they could clean up); return their paths.

    Directories of other hosts, and of live processes, are left alone.
    """
    host = socket.gethostname()
    try:
        entries = sorted(os.listdir(directory))
    except OSError:
        return []
    removed = []
    for entry in entries:
        match = _PRIVATE_DIR.fullmatch(entry)
        if not match or match.group(2) != host:
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or process_alive(pid):
            continue
        path = os.path.join(directory, entry)
        if not dry_run:
            _remove_tree(path)
        removed.append(path)
    return removed
