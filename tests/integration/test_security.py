"""TLS by default, on the real local Slurm: who can connect, where the key is,
and what a job, its script and its processes show."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import ssl
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask.config
import pytest
from distributed import Client
from distributed.comm import connect
from distributed.comm.addressing import parse_host_port
from distributed.security import Security

from hpcdask import LocalBatchCluster, SLURMCluster
from hpcdask.security import remove_stale_private_dirs

pytestmark = pytest.mark.usefixtures("new_jobs")

NewJobs = Callable[[], list[str]]
PEM_MARKERS = ("-----BEGIN", "PRIVATE KEY", "CERTIFICATE-----")


def key_fragments(private_dir: str) -> list[str]:
    """Lines of the key's body long enough to be unmistakable."""
    text = Path(private_dir, "key.pem").read_text()
    body = [line for line in text.splitlines() if line and not line.startswith("-")]
    assert len(body) > 10  # a 2048-bit key
    return body[1:-1]


def assert_no_key_material(text: str, fragments: list[str], where: str) -> None:
    for marker in PEM_MARKERS:
        assert marker not in text, f"{marker!r} found in {where}"
    for fragment in fragments:
        assert fragment not in text, f"key material found in {where}"


async def comm_identity(address: str, **connection_args: Any) -> dict[str, Any]:
    comm = await connect(address, timeout=5, **connection_args)
    try:
        await comm.write({"op": "identity", "reply": True})
        reply: dict[str, Any] = await comm.read()
        return reply
    finally:
        await comm.close()


def raw_tls_without_certificate(address: str) -> bytes | str:
    """A TLS client that trusts any server and shows no certificate: what the
    server sends back, or why the connection ended."""
    host, port = parse_host_port(address.split("://", 1)[1])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((host, port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        try:
            # dask's handshake would start with the peer's message; ask anyway
            tls.sendall(b"\x00" * 64)
            return tls.recv(1024)
        except (ssl.SSLError, OSError) as e:
            return repr(e)


def test_tls_is_the_default_and_strangers_cannot_connect(new_jobs: NewJobs) -> None:
    with SLURMCluster(cores=1, memory="1GB") as cluster, Client(cluster) as client:
        address = cluster.scheduler_address
        assert address.startswith("tls://")
        assert cluster.job_options.protocol == "tls://"
        assert "--protocol tls://" in cluster.job_script()
        cluster.scale(1)
        client.wait_for_workers(1, timeout=60)
        assert client.submit(sum, [1, 2, 3]).result() == 6
        (worker,) = client.scheduler_info()["workers"]
        assert worker.startswith("tls://")

        # the cluster's own certificate opens both (so the refusals below are
        # about the certificate, not a dead address)
        with Client(address, security=cluster.security, timeout=10) as friend:
            assert friend.submit(sum, [4, 5]).result() == 9
        reply = asyncio.run(
            comm_identity(worker, **cluster.security.get_connection_args("client"))
        )
        assert reply["type"] == "Worker"

        # another user: no certificate, another certificate, plain TCP
        stranger = Security.temporary()
        for target in (address, worker):
            with pytest.raises((OSError, TypeError, asyncio.TimeoutError)):
                asyncio.run(comm_identity(target))
            with pytest.raises((OSError, asyncio.TimeoutError)):
                asyncio.run(
                    comm_identity(target, **stranger.get_connection_args("client"))
                )
            with pytest.raises((OSError, asyncio.TimeoutError)):
                asyncio.run(comm_identity(target.replace("tls://", "tcp://")))
            # a TLS client that does not check the server: the server checks it
            # and ends the connection (in TLS 1.3 the client sees the alert or,
            # when the close wins the race, only the end of the stream)
            answer = raw_tls_without_certificate(target)
            refusals = ("CERTIFICATE_REQUIRED", "EOF occurred", "Connection reset")
            assert answer == b"" or any(r in str(answer) for r in refusals), answer
        for security in (None, stranger):
            with pytest.raises((OSError, TypeError, asyncio.TimeoutError)):
                Client(address, security=security, timeout=5)
        # the cluster is unharmed
        assert client.submit(sum, [1, 1]).result() == 2


def test_credential_files_are_private_and_removed_on_close(tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "hpcdask-security"
    with SLURMCluster(
        cores=1, memory="1GB", shared_temp_directory=str(shared)
    ) as cluster:
        private = cluster.credentials.private_dir
        assert private is not None and Path(private).parent == shared
        assert stat.S_IMODE(shared.stat().st_mode) == 0o700
        assert stat.S_IMODE(Path(private).stat().st_mode) == 0o700
        files = sorted(os.listdir(private))
        assert files == ["ca.pem", "cert.pem", "key.pem"]
        for name in files:
            st = Path(private, name).stat()
            assert stat.S_IMODE(st.st_mode) == 0o600
            assert st.st_uid == os.getuid()
        assert "PRIVATE KEY" in Path(private, "key.pem").read_text()
        # the script names the files, on the path the jobs see
        script = cluster.job_script()
        assert f"--tls-key {private}/key.pem" in script
        assert f"--tls-ca-file {private}/ca.pem" in script
    assert not Path(private).exists()
    assert shared.exists()  # only the cluster's own directory goes


def test_default_directory_is_beside_the_logs_and_config_can_move_it(
    tmp_path: Path, log_directory: Path
) -> None:
    with SLURMCluster(cores=1, memory="1GB") as cluster:
        private = cluster.credentials.private_dir
        assert private is not None
        assert Path(private).parent == log_directory.parent / "security"
    moved = tmp_path / "from-config"
    with (
        dask.config.set({"hpcdask.slurm.shared-temp-directory": str(moved)}),
        SLURMCluster(cores=1, memory="1GB") as cluster,
    ):
        assert Path(cluster.credentials.private_dir or "").parent == moved
    for bad in ("/tmp/$USER/x", "/tmp/a b", "/tmp/x;id"):
        with pytest.raises(ValueError, match="shared_temp_directory"):
            SLURMCluster(cores=1, memory="1GB", shared_temp_directory=bad)


def test_credentials_go_at_interpreter_exit_and_stale_ones_are_swept(
    tmp_path: Path,
) -> None:
    script = textwrap.dedent(
        f"""
        import dask.config
        from hpcdask import SLURMCluster
        dask.config.set({{"hpcdask.slurm.scheduler-options": {{"dashboard_address": "127.0.0.1:0"}}}})
        cluster = SLURMCluster(cores=1, memory="1GB", log_directory={str(tmp_path)!r},
                               shared_temp_directory={str(tmp_path / "sec")!r})
        print(cluster.credentials.private_dir, flush=True)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    private = Path(out.stdout.strip())
    assert private.parent == tmp_path / "sec"
    assert not private.exists()  # no close(): removed at exit

    # a kill -9 leaves one behind; its process is gone, so the next sweep takes it
    host = socket.gethostname()
    dead_pid = _a_dead_pid()
    stale = tmp_path / "sec" / f"cluster-{dead_pid}@{host}-abcdefgh"
    alive = tmp_path / "sec" / f"cluster-{os.getppid()}@{host}-abcdefgh"
    elsewhere = tmp_path / "sec" / f"cluster-{dead_pid}@not-{host}-abcdefgh"
    for path in (stale, alive, elsewhere):
        path.mkdir(mode=0o700)
        (path / "key.pem").write_text("x")
    assert remove_stale_private_dirs(str(tmp_path / "sec"), dry_run=True) == [
        str(stale)
    ]
    assert stale.exists()
    with SLURMCluster(
        cores=1, memory="1GB", shared_temp_directory=str(tmp_path / "sec")
    ):
        assert not stale.exists()
        assert alive.exists() and elsewhere.exists()


def _a_dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_no_key_material_in_scripts_argv_or_the_queue(new_jobs: NewJobs) -> None:
    with SLURMCluster(cores=2, processes=2, memory="2GB") as cluster:
        private = cluster.credentials.private_dir
        assert private is not None
        fragments = key_fragments(private)
        script = cluster.job_script()
        assert "--tls-key" in script
        assert_no_key_material(script, fragments, "the job script")
        cluster.scale(jobs=2)  # one array of two jobs, two workers each
        with Client(cluster) as client:
            client.wait_for_workers(4, timeout=60)
            workers = set(client.run(os.getpid).values())
            nannies = set(client.run(os.getppid).values())
            assert len(workers) == 4 and len(nannies) == 2
            ids = list(cluster.jobs()["job_id"])
            for job_id in ids:
                stored = subprocess.run(
                    ["scontrol", "write", "batch_script", job_id, "-"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                assert "--tls-key" in stored
                assert_no_key_material(stored, fragments, f"job {job_id}'s script")
                shown = subprocess.run(
                    ["scontrol", "-o", "show", "job", job_id],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                assert_no_key_material(shown, fragments, f"scontrol show job {job_id}")
            port = cluster.scheduler_address.rsplit(":", 1)[1]
            launched = {
                int(pid)
                for pid in os.listdir("/proc")
                if pid.isdigit() and _mentions(int(pid), f":{port}")
            }
            # the job scripts' shells and `dask worker` commands name the files
            assert len(launched) >= 2
            for pid in workers | nannies | launched:
                for part in ("cmdline", "environ"):
                    text = _proc_text(pid, part)
                    assert_no_key_material(text, fragments, f"/proc/{pid}/{part}")
            assert any("--tls-key" in _proc_text(pid, "cmdline") for pid in launched)
            ps = subprocess.run(
                ["ps", "-eww", "-o", "args"], capture_output=True, text=True, check=True
            ).stdout
            assert f"{private}/key.pem" in ps  # ps does show the workers' argv
            assert_no_key_material(ps, fragments, "ps")


def _proc_text(pid: int, part: str) -> str:
    try:
        return Path(f"/proc/{pid}/{part}").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _mentions(pid: int, text: str) -> bool:
    return text in _proc_text(pid, "cmdline")


def test_security_false_opts_out_with_a_warning(
    caplog: pytest.LogCaptureFixture, new_jobs: NewJobs
) -> None:
    caplog.set_level(logging.WARNING, logger="hpcdask.security")
    with SLURMCluster(cores=1, memory="1GB", security=False) as cluster:
        assert cluster.scheduler_address.startswith("tcp://")
        assert cluster.credentials.private_dir is None
        assert "--tls" not in cluster.job_script()
        cluster.scale(1)
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=60)
            assert client.submit(sum, [2, 3]).result() == 5
    assert re.search(r"security=False: TLS is off", caplog.text)
    caplog.clear()
    with (
        dask.config.set({"hpcdask.security": False}),
        SLURMCluster(cores=1, memory="1GB") as cluster,
    ):
        assert cluster.scheduler_address.startswith("tcp://")
    assert "TLS is off" in caplog.text


def test_bad_security_settings_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="invalid security='yes'"):
        SLURMCluster(cores=1, memory="1GB", security="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"invalid protocol='tcp://'.*security=False"):
        SLURMCluster(cores=1, memory="1GB", protocol="tcp://")
    with (
        dask.config.set({"hpcdask.security": "off"}),
        pytest.raises(ValueError, match=r"hpcdask\.security"),
    ):
        SLURMCluster(cores=1, memory="1GB")


def test_local_backend_is_secure_by_default_too() -> None:
    with LocalBatchCluster(cores=1, memory="1GB") as cluster:
        assert cluster.scheduler_address.startswith("tls://")
        cluster.scale(1)
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=60)
            (worker,) = client.scheduler_info()["workers"]
            assert worker.startswith("tls://")
            with pytest.raises((OSError, asyncio.TimeoutError)):
                asyncio.run(
                    comm_identity(
                        worker, **Security.temporary().get_connection_args("client")
                    )
                )
