"""Which address workers on other hosts use to reach the scheduler, and the
check a job makes before its workers start.

A login node has several interfaces (a public one with the default route, a
cluster network, a high-speed one) and its hostname may resolve to 127.0.x.x,
which on a compute node is that node's own loopback. The scheduler listens on
all interfaces; the address it gives the workers is chosen by
:func:`choose_scheduler_host`: the address of this host's route to the batch
controller (the compute nodes talk to the controller too, so that network
reaches them), else that of the default route, never a loopback address while
another exists.

Before a job starts its workers, it runs :data:`PREFLIGHT` with the job's own
Python on every node (:func:`preflight_words`): the workers' interface exists,
and a connection (with TLS, a handshake) to the scheduler succeeds within a few
seconds; else one line on stderr naming the node, the address and what to
change, and a non-zero exit. Without it, a worker that cannot reach the
scheduler retries for 30 s (a nanny's connect timeout) or ``death_timeout``
(60 s) and its log's last lines name neither the address nor the node.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import shlex
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from distributed.comm.addressing import get_address_host

from hpcdask.validation import command_word, shell_word

__all__ = [
    "PREFLIGHT",
    "PREFLIGHT_TIMEOUT",
    "SchedulerHost",
    "choose_scheduler_host",
    "is_loopback",
    "local_address_towards",
    "preflight_words",
    "with_host",
    "workers_address",
]

logger = logging.getLogger(__name__)

#: the longest a job waits for the scheduler before it gives up (seconds); a
#: reachable scheduler answers in milliseconds, the first contact over an
#: IPoIB network can take a second or two
PREFLIGHT_TIMEOUT = 10.0

# an address no packet is sent to: a UDP socket's connect() only picks the
# route, as distributed's get_ip() does
_DEFAULT_ROUTE_PROBE = "8.8.8.8"


@dataclass(frozen=True)
class SchedulerHost:
    """The host the workers are given for the scheduler, and why it was chosen."""

    host: str
    why: str


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address of the loopback network (127.x, ::1)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def local_address_towards(host: str) -> str | None:
    """This host's IPv4 address on the route to ``host`` (``None``: no route,
    or ``host`` does not resolve). Sends nothing."""
    try:
        infos = socket.getaddrinfo(host, 9, socket.AF_INET, socket.SOCK_DGRAM)
    except (OSError, UnicodeError):
        return None
    for family, kind, _, _, sockaddr in infos:
        with socket.socket(family, kind) as sock:
            try:
                sock.connect(sockaddr)
            except OSError:
                continue
            return str(sock.getsockname()[0])
    return None


def choose_scheduler_host(controller: str | None) -> SchedulerHost:
    """The address to give workers for a scheduler listening on all interfaces.

    In order: this host's address on the route to the batch ``controller``
    (when known and not loopback), on the default route, the hostname's
    address; loopback only when nothing else exists (logged as a warning: no
    other host can reach it).
    """
    candidates: list[tuple[str | None, str]] = []
    if controller:
        candidates.append(
            (
                local_address_towards(controller),
                f"this host's address on the route to the batch controller "
                f"({controller})",
            )
        )
    candidates.append(
        (local_address_towards(_DEFAULT_ROUTE_PROBE), "the default route's address")
    )
    hostname = socket.gethostname()
    candidates.append(
        (local_address_towards(hostname), f"the address of the hostname {hostname}")
    )
    for host, why in candidates:
        if host and not is_loopback(host):
            return SchedulerHost(host, why)
    logger.warning(
        "this host has no address but loopback: workers on other hosts cannot "
        "reach the scheduler; pass interface= or scheduler_options={'host': ...}"
    )
    return SchedulerHost("127.0.0.1", "no other address found")


#: what a scheduler's host is when it listens on every interface
_WILDCARDS = ("0.0.0.0", "::", "")


async def workers_address(
    scheduler: Any,
    controller_host: Callable[[], Awaitable[str | None]],
    batch: bool,
) -> str:
    """The scheduler's address as the workers are given it.

    Distributed's ``contact_address`` when set, and the address the scheduler
    bound when it bound one (``host``/``interface``); when it listens on all
    interfaces, its port at the host that :func:`choose_scheduler_host` picks
    (``controller_host`` asks the queue for its controller: one quick command).
    A loopback address given to workers of a ``batch`` system is a warning.
    """
    contact = getattr(scheduler, "contact_address", None)
    address = str(contact or scheduler.address)
    if not contact and get_address_host(scheduler.listen_address) in _WILDCARDS:
        controller = await controller_host()
        # name lookups may wait on DNS: not in the event loop
        chosen = await asyncio.get_running_loop().run_in_executor(
            None, choose_scheduler_host, controller
        )
        address = with_host(address, chosen.host)
        logger.info("workers reach the scheduler at %s: %s", address, chosen.why)
    if batch and is_loopback(get_address_host(address)):
        logger.warning(
            "the workers are given a loopback address for the scheduler "
            "(%s): on a compute node that is the node itself. Pass "
            "interface= or scheduler_options={'host': ...}",
            address,
        )
    return address


def with_host(address: str, host: str) -> str:
    """``address`` (``proto://ip:port``) with its host replaced by ``host``."""
    protocol, sep, rest = address.rpartition("://")
    _, _, port = rest.rpartition(":")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{protocol}{sep}{host}:{port}"


#: run with the job's Python as ``python -c PREFLIGHT ADDRESS TIMEOUT INTERFACE
#: [CA CERT KEY]``; exits 0 when the node has the workers' ``INTERFACE`` (``-``:
#: none chosen) and the scheduler answers (and a TLS handshake with the
#: worker's credentials succeeds), else 1 with one line on stderr. A refused
#: connection fails after three tries a second apart (nothing listens there:
#: the scheduler starts before any job), anything else is tried again until
#: ``TIMEOUT`` seconds have passed. Written for any Python 3.8+, with nothing
#: but the standard library, and no single quote (the job script quotes it
#: with single quotes).
PREFLIGHT = """\
import os, socket, ssl, sys, time
address, timeout, interface, *tls = sys.argv[1:]
host, port = address.split("://")[-1].rsplit(":", 1)
start = time.monotonic()
end, tries = start + float(timeout), 0
def fail(what, hint):
    sys.exit(f"hpcdask: node {socket.gethostname()} {what}; {hint}")
names = [name for _, name in socket.if_nameindex()]
if interface != "-" and interface not in names:
    have = ", ".join(names)
    fail(f"has no network interface {interface} (it has {have})",
         "the workers use worker_interface=, else interface= (the scheduler too)")
while True:
    try:
        wait = max(end - time.monotonic(), 1.0)
        sock = socket.create_connection((host.strip("[]"), int(port)), wait)
        break
    except OSError as e:
        tries += 1
        refused = isinstance(e, ConnectionRefusedError) and tries >= 3
        if refused or time.monotonic() + 1 > end:
            seconds = time.monotonic() - start
            fail(f"cannot reach the scheduler at {address} "
                 f"({e}, after {seconds:.1f} s)",
                 "choose the address with interface= or scheduler_options="
                 "{\\"interface\\": ...} or {\\"host\\": ...} (docs: Multi-node jobs)")
        time.sleep(1)
if tls:
    try:
        context = ssl.create_default_context(cafile=tls[0])
        context.check_hostname = False
        context.load_cert_chain(tls[1], tls[2])
    except OSError as e:
        fail(f"cannot read the TLS files in {os.path.dirname(tls[0])} ({e})",
             "shared_temp_directory must be on a file system the nodes share")
    try:
        sock = context.wrap_socket(sock)
    except OSError as e:
        fail(f"reached {address} but the TLS handshake failed ({e})",
             "is this the scheduler of another cluster?")
sock.close()
"""


def preflight_words(
    python: str,
    scheduler_address: str,
    security_args: Sequence[str] = (),
    timeout: float = PREFLIGHT_TIMEOUT,
    interface: str | None = None,
) -> list[str]:
    """The pre-flight command as shell words: ``python -c PREFLIGHT ...``.

    ``interface`` is the one the workers will listen on (validated already:
    it is rendered as it is). ``security_args`` are the worker's ``--tls-*``
    arguments; with all three files the check makes a TLS handshake (so the
    scheduler sees a client that closed after connecting, not a failed
    handshake).
    """
    words = [
        command_word("python", python),
        "-c",
        shlex.quote(PREFLIGHT),
        shell_word("scheduler address", scheduler_address),
        f"{timeout:g}",
        interface or "-",
    ]
    tls = dict(zip(security_args[::2], security_args[1::2], strict=False))
    files = [tls.get(flag) for flag in ("--tls-ca-file", "--tls-cert", "--tls-key")]
    if all(files):
        words += [shell_word("security", path) for path in files if path]
    return words
