"""Which address workers are given for the scheduler, and the job's pre-flight
check (pure, or in-process sockets on this host; no processes)."""

from __future__ import annotations

import logging
import shlex
import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from distributed.security import Security

from hpcdask.config import ClusterSettings, resolve_job_options
from hpcdask.manager import JobManager
from hpcdask.network import (
    PREFLIGHT,
    choose_scheduler_host,
    is_loopback,
    local_address_towards,
    preflight_words,
    with_host,
)
from hpcdask.noise import SchedulerNoise
from hpcdask.runner import Completed, FakeRunner
from hpcdask.security import worker_security_args
from hpcdask.systems.base import CommandBackend
from hpcdask.systems.pbs import PBS
from hpcdask.systems.slurm import Slurm

FIXTURES = Path(__file__).parent.parent / "fixtures"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.1.1", True),  # Debian's /etc/hosts line for the hostname
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("10.77.0.1", False),
        ("192.0.2.2", False),
        ("login1", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_with_host_keeps_protocol_and_port() -> None:
    assert with_host("tls://0.0.0.0:8786", "10.77.0.1") == "tls://10.77.0.1:8786"
    assert with_host("tcp://192.0.2.2:40211", "10.0.0.5") == "tcp://10.0.0.5:40211"
    assert with_host("tls://[::]:8786", "fd00::2") == "tls://[fd00::2]:8786"


def test_the_route_to_a_local_address_is_that_address() -> None:
    # the multi-node site's controller runs on this host (10.77.0.1): the route
    # to it leaves from that address, which the nodes reach
    assert local_address_towards("127.0.0.1") == "127.0.0.1"
    assert local_address_towards("no-such-host.invalid") is None


def test_a_loopback_controller_is_passed_over() -> None:
    # the one-node Slurm's controller is this host's name, which resolves to
    # 127.0.0.1 here: that says nothing about what other hosts reach
    chosen = choose_scheduler_host("localhost")
    default = choose_scheduler_host(None)
    assert chosen == default
    assert not is_loopback(chosen.host)
    assert chosen.why == "the default route's address"


def test_an_unknown_controller_falls_back_to_the_default_route() -> None:
    assert choose_scheduler_host("no-such-host.invalid") == choose_scheduler_host(None)


def test_the_controllers_route_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    routes = {"ctl": "10.1.0.7", "8.8.8.8": "192.0.2.2"}
    monkeypatch.setattr(
        "hpcdask.network.local_address_towards", lambda host: routes.get(host)
    )
    chosen = choose_scheduler_host("ctl")
    assert chosen.host == "10.1.0.7"
    assert "route to the batch controller (ctl)" in chosen.why


def test_loopback_only_when_nothing_else(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(
        "hpcdask.network.local_address_towards", lambda host: "127.0.1.1"
    )
    with caplog.at_level(logging.WARNING, logger="hpcdask.network"):
        chosen = choose_scheduler_host("ctl")
    assert chosen.host == "127.0.0.1"
    assert "workers on other hosts cannot reach the scheduler" in caplog.text


@pytest.mark.parametrize(
    ("fixture", "controller"),
    [("scontrol_ping.txt", "vm"), ("scontrol_ping_multinode.txt", "mnctl")],
)
def test_slurm_names_its_controller(fixture: str, controller: str) -> None:
    stdout = (FIXTURES / "slurm" / fixture).read_text()
    assert Slurm().controller_argv() == ["scontrol", "ping"]
    assert Slurm().parse_controller(stdout) == controller


def test_the_first_controller_that_is_up() -> None:
    # the format of the real output above, with a backup controller
    stdout = "Slurmctld(primary) at ctl1 is DOWN\nSlurmctld(backup) at ctl2 is UP\n"
    assert Slurm().parse_controller(stdout) == "ctl2"
    assert Slurm().parse_controller("") is None


async def test_a_controller_that_does_not_answer_is_no_error() -> None:
    down = Completed(("scontrol",), 1, "", "slurm_load_ctl_conf error")
    backend = CommandBackend(Slurm(), FakeRunner({"scontrol": [down]}))
    assert await backend.controller_host() is None
    # PBS: no command names the server the same way everywhere
    assert await CommandBackend(PBS(), FakeRunner({})).controller_host() is None


# -- the pre-flight check, run in this process --------------------------------------


def preflight(*args: str) -> str:
    """Run the check's source as ``python -c`` would; its exit message, or ""."""
    argv = sys.argv
    sys.argv = ["-c", *args]
    try:
        exec(compile(PREFLIGHT, "<preflight>", "exec"), {"__name__": "__main__"})
    except SystemExit as e:
        return str(e.code)
    finally:
        sys.argv = argv
    return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_check_quotes_as_one_shell_word() -> None:
    assert "'" not in PREFLIGHT  # the job script single-quotes it
    words = preflight_words("/opt/py/bin/python", "tls://10.0.0.1:8786", timeout=7)
    assert shlex.split(" ".join(words)) == [
        "/opt/py/bin/python", "-c", PREFLIGHT, "tls://10.0.0.1:8786", "7", "-"
    ]  # fmt: skip


def test_refused_fails_in_seconds_naming_node_address_and_options() -> None:
    address = f"tls://127.0.0.1:{free_port()}"
    message = preflight(address, "10", "-")
    assert message.startswith(
        f"hpcdask: node {socket.gethostname()} cannot reach the scheduler at "
        f"{address} ([Errno 111] Connection refused, after 2."
    )
    assert "interface=" in message and '{"host": ...}' in message
    assert "\n" not in message  # one line on the job's stderr


def test_a_missing_worker_interface_is_named_with_those_the_node_has() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert preflight(f"tcp://127.0.0.1:{port}", "5", "lo") == ""
        message = preflight(f"tcp://127.0.0.1:{port}", "5", "ib7")
    assert f"node {socket.gethostname()} has no network interface ib7 (it has " in (
        message
    )
    assert "lo" in message.split("(it has ")[1] and "worker_interface=" in message
    assert preflight_words("python", "tcp://h:1", interface="ib0")[-1] == "ib0"


def test_a_listening_scheduler_passes() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert preflight(f"tcp://127.0.0.1:{port}", "5", "-") == ""


@pytest.fixture
def tls_files(tmp_path: Path) -> Iterator[list[str]]:
    security = Security.temporary()  # type: ignore[no-untyped-call]
    files = worker_security_args(security, str(tmp_path))
    yield files.args
    files.remove()


def tls_server(
    paths: list[str], handshakes: list[str]
) -> tuple[socket.socket, int, threading.Thread]:
    """A server with the credentials ``paths`` (ca, cert, key) that requires a
    client certificate, as Dask's TLS listener does; one connection."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=paths[0])
    context.load_cert_chain(paths[1], paths[2])
    context.verify_mode = ssl.CERT_REQUIRED
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                handshakes.append(str(tls.version()))
        except OSError as e:
            handshakes.append(f"failed: {e}")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, server.getsockname()[1], thread


def test_tls_handshake_with_the_workers_files(tls_files: list[str]) -> None:
    paths = tls_files[1::2]  # ca, cert, key
    handshakes: list[str] = []
    server, port, thread = tls_server(paths, handshakes)
    with server:
        assert preflight(f"tls://127.0.0.1:{port}", "5", "-", *paths) == ""
        thread.join(5)
    assert handshakes[:1] and handshakes[0].startswith("TLS")
    words = preflight_words("python", "tls://10.0.0.1:1", tls_files)
    assert words[-3:] == [shlex.quote(p) for p in paths]


def test_another_clusters_scheduler_fails_the_handshake(
    tls_files: list[str], tmp_path: Path
) -> None:
    other = worker_security_args(
        Security.temporary(),  # type: ignore[no-untyped-call]
        str(tmp_path / "other"),
    )
    try:
        server, port, _ = tls_server(other.args[1::2], [])
        with server:
            message = preflight(f"tls://127.0.0.1:{port}", "5", "-", *tls_files[1::2])
    finally:
        other.remove()
    assert f"reached tls://127.0.0.1:{port} but the TLS handshake failed" in message
    assert "another cluster" in message


def test_unreadable_tls_files_are_named(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        missing = str(tmp_path / "ca.pem")
        message = preflight(f"tls://127.0.0.1:{port}", "5", "-", missing, "c", "k")
    assert f"cannot read the TLS files in {tmp_path} (" in message
    assert "shared_temp_directory must be on a file system the nodes share" in message


def test_the_checks_closed_connection_is_not_logged() -> None:
    noise = SchedulerNoise()
    closed = logging.LogRecord(
        "distributed.comm.tcp", logging.INFO, __file__, 1,
        "Connection from %s closed before handshake completed",
        ("tls://10.77.0.11:5000",), None,
    )  # fmt: skip
    failed = logging.LogRecord(
        "distributed.comm.tcp", logging.WARNING, __file__, 1,
        "Listener on %r: TLS handshake failed with remote %r: %s",
        ("tls://0.0.0.0:1", "tls://10.77.0.11:5000", "EOF"), None,
    )  # fmt: skip
    assert not noise.filter(closed)
    assert noise.filter(failed)  # strangers' failed handshakes stay visible


# -- what the manager gives the workers ---------------------------------------------


def scheduler(listen: str, address: str, contact: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        listen_address=listen, address=address, contact_address=contact
    )


def manager_with_controller(stdout: str) -> JobManager:
    opts = resolve_job_options("slurm", cores=1, memory="1GB", log_directory="/l")
    manager = JobManager(opts, ClusterSettings())
    ping = Completed(("scontrol", "ping"), 0, stdout, "")
    manager.backend = CommandBackend(Slurm(), FakeRunner({"scontrol": [ping]}))
    return manager


async def test_a_scheduler_on_all_interfaces_is_given_the_controllers_route(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    routes = {"mnctl": "10.77.0.1", "8.8.8.8": "192.0.2.2"}
    monkeypatch.setattr(
        "hpcdask.network.local_address_towards", lambda host: routes.get(host)
    )
    ping = (FIXTURES / "slurm/scontrol_ping_multinode.txt").read_text()
    manager = manager_with_controller(ping)
    everywhere = scheduler("tls://0.0.0.0:4000", "tls://192.0.2.2:4000")
    assert await manager.workers_address(everywhere) == "tls://10.77.0.1:4000"
    # an address the user chose is kept: bound, or distributed's contact address
    bound = scheduler("tls://10.0.0.9:4000", "tls://10.0.0.9:4000")
    assert await manager.workers_address(bound) == "tls://10.0.0.9:4000"
    contact = scheduler("tls://0.0.0.0:4000", "tls://192.0.2.2:4000", "tls://gw:9")
    assert await manager.workers_address(contact) == "tls://gw:9"


async def test_a_loopback_address_for_workers_is_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = manager_with_controller("")
    bound = scheduler("tls://127.0.0.1:4000", "tls://127.0.0.1:4000")
    with caplog.at_level(logging.WARNING, logger="hpcdask.network"):
        assert await manager.workers_address(bound) == "tls://127.0.0.1:4000"
    assert "loopback address for the scheduler (tls://127.0.0.1:4000)" in caplog.text
