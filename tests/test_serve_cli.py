"""``bufkit serve``: the reference servers as processes, with signals."""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bufkit._cli import main
from tests._tls import self_signed

pytestmark = pytest.mark.slow

_LISTENING = re.compile(rb"pid (\d+) listening on ([\d.]+):(\d+)")


def _readline(proc: subprocess.Popen[bytes], timeout: float = 10) -> bytes:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the server printed nothing in time"
    return proc.stdout.readline()


def _wait_for(proc: subprocess.Popen[bytes], needle: bytes, count: int) -> list[bytes]:
    lines: list[bytes] = []
    deadline = time.monotonic() + 10
    while sum(needle in line for line in lines) < count:
        assert time.monotonic() < deadline, lines
        lines.append(_readline(proc))
    return lines


@pytest.fixture
def serve(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Run ``bufkit serve`` with the test's parameters on a free port."""
    args: list[str] = request.param
    with subprocess.Popen(
        [sys.executable, "-m", "bufkit", "serve", *args, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
        start_new_session=True,
    ) as proc:
        try:
            workers = (
                int(args[args.index("--workers") + 1]) if "--workers" in args else 1
            )
            lines = _wait_for(proc, b"listening on", workers)
            ports = {m.group(3) for line in lines if (m := _LISTENING.search(line))}
            assert len(ports) == 1
            yield proc, int(ports.pop())
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # the server and its workers
            proc.communicate(timeout=10)


def _exchange(port: int, request: bytes, expect: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(request)
        got = bytearray()
        while len(got) < expect:
            data = client.recv(65536)
            assert data
            got += data
        return bytes(got)


@pytest.mark.parametrize("serve", [["echo"]], indirect=True)
def test_echo_server_reports_stats_on_sigusr1_and_exit(
    serve: tuple[subprocess.Popen[bytes], int],
) -> None:
    """The echo server echoes; SIGUSR1 and SIGTERM print pool statistics."""
    proc, port = serve
    assert _exchange(port, b"hello", 5) == b"hello"
    proc.send_signal(signal.SIGUSR1)
    assert b"pool_bytes_in_use=0" in b"".join(_wait_for(proc, b"pool_bytes", 1))
    proc.send_signal(signal.SIGTERM)
    out, _err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert b"pool_buffers_in_use=0" in out


@pytest.mark.parametrize("serve", [["fanout"]], indirect=True)
def test_fanout_server_replies_3200_bytes_per_request(
    serve: tuple[subprocess.Popen[bytes], int],
) -> None:
    """Each request byte to the fanout server brings 32 x 100 bytes back."""
    _proc, port = serve
    assert len(_exchange(port, b"?", 3200)) == 3200


@pytest.mark.parametrize("serve", [["line-echo"]], indirect=True)
def test_line_echo_server(serve: tuple[subprocess.Popen[bytes], int]) -> None:
    """The line-echo server returns whole lines."""
    _proc, port = serve
    assert _exchange(port, b"one\ntwo\n", 8) == b"one\ntwo\n"


@pytest.mark.parametrize(
    "serve",
    [["discard", "--workers", "2"], ["discard", "--workers", "2", "--loop", "twisted"]],
    ids=["selectors", "twisted"],
    indirect=True,
)
def test_workers_share_the_port_and_are_reaped(
    serve: tuple[subprocess.Popen[bytes], int],
) -> None:
    """Two workers share one port; the parent forwards signals and reaps them."""
    proc, port = serve
    for _ in range(4):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"ignored")
    proc.send_signal(signal.SIGUSR1)
    _wait_for(proc, b"pool_bytes", 2)
    proc.send_signal(signal.SIGINT)
    out, _err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert out.count(b"pool_bytes_in_use") == 2


@pytest.mark.parametrize(
    "serve",
    [["discard", "--workers", "3"], ["discard", "--workers", "3", "--loop", "twisted"]],
    ids=["selectors", "twisted"],
    indirect=True,
)
def test_ctrl_c_at_a_terminal_ends_every_worker_cleanly(
    serve: tuple[subprocess.Popen[bytes], int],
) -> None:
    """SIGINT to the whole group (a terminal's Ctrl-C) on top of the forwarded one."""
    proc, _port = serve
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert out.count(b"pool_buffers_in_use=0") == 3


def test_serve_rejects_zero_workers(capsys: pytest.CaptureFixture[str]) -> None:
    """``--workers 0`` is refused with status 2."""
    assert main(["serve", "echo", "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err


def test_serve_rejects_unknown_protocol(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown protocol name is a usage error."""
    with pytest.raises(SystemExit) as info:
        main(["serve", "chargen"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_serve_reports_a_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    """A port already taken is reported with status 1, without a traceback."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["serve", "echo", "--port", str(port), "--quiet"]) == 1
    assert "cannot listen" in capsys.readouterr().err


def _bufkit(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bufkit", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
        start_new_session=True,
    )


def _group(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes of process group ``pgid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry))
    return found


def _wait_gone(pgid: int, timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := _group(pgid)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


def _finish(proc: subprocess.Popen[bytes], timeout: float = 15) -> tuple[bytes, bytes]:
    """Wait for ``proc``; on a hang, kill its whole group and fail."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"bufkit serve did not exit within {timeout} s")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_right_after_start_never_hangs() -> None:
    """A SIGTERM at any moment of a --workers start ends every process cleanly."""
    for attempt in range(20):
        proc = _bufkit("serve", "discard", "--workers", "3", "--port", "0", "-q")
        time.sleep(attempt * 0.015)  # sweeps the start: before, during, after forks
        proc.send_signal(signal.SIGTERM)
        _out, err = _finish(proc)
        assert proc.returncode in (0, -signal.SIGTERM), err
        assert b"Traceback" not in err
        assert _wait_gone(proc.pid) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("loop", ["selectors", "twisted"])
def test_workers_exit_when_the_supervisor_is_killed(loop: str) -> None:
    """SIGKILL to the supervisor: its workers see the lifeline close and exit."""
    proc = _bufkit(
        "serve", "echo", "--workers", "2", "--port", "0", "-q", "--loop", loop
    )
    try:
        lines = _wait_for(proc, b"listening on", 2)
        workers = {int(m.group(1)) for ln in lines if (m := _LISTENING.search(ln))}
        assert len(workers) == 2
        proc.kill()
        proc.wait(timeout=10)
        assert _wait_gone(proc.pid) == []
    finally:
        if _group(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM])
@pytest.mark.parametrize(
    "serve",
    [["echo", "--workers", "2"], ["echo", "--workers", "2", "--loop", "twisted"]],
    ids=["selectors", "twisted"],
    indirect=True,
)
def test_stop_signals_end_the_workers_cleanly(
    serve: tuple[subprocess.Popen[bytes], int], sig: signal.Signals
) -> None:
    """SIGHUP, SIGQUIT and SIGTERM each stop a supervisor and its workers, status 0."""
    proc, port = serve
    assert _exchange(port, b"ping", 4) == b"ping"
    proc.send_signal(sig)
    out, err = _finish(proc)
    assert proc.returncode == 0, err
    assert out.count(b"pool_buffers_in_use=0") == 2


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_out_of_range_is_a_usage_error(workers: str) -> None:
    """``--port 99999`` is refused in one line with status 2, never wrapped."""
    proc = _bufkit("serve", "echo", "--port", "99999", "--workers", workers)
    out, err = _finish(proc)
    assert proc.returncode == 2
    assert err.decode().splitlines() == [
        "bufkit serve: --port 99999 is not a port number (0 to 65535)"
    ]
    assert out == b""


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_unresolvable_host_is_a_usage_error(workers: str) -> None:
    """A host name that does not resolve is one line naming it, status 2."""
    proc = _bufkit(
        "serve", "echo", "--host", "nonexistent.invalid", "--workers", workers
    )
    _out, err = _finish(proc)
    assert proc.returncode == 2
    lines = err.decode().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "bufkit serve: cannot resolve --host 'nonexistent.invalid'"
    )


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_workers_serve_ipv6() -> None:
    """``--workers 2 --host ::1`` listens on the IPv6 loopback and echoes."""
    proc = _bufkit("serve", "echo", "--workers", "2", "--host", "::1", "--port", "0")
    try:
        line = _wait_for(proc, b"listening on", 1)[-1]
        port = int(line.rsplit(b":", 1)[1])
        with socket.create_connection(("::1", port), timeout=10) as client:
            client.sendall(b"six")
            assert client.recv(16) == b"six"
        proc.send_signal(signal.SIGTERM)
        _out, err = _finish(proc)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)


@pytest.mark.parametrize("serve", [["discard", "--workers", "2"]], indirect=True)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_second_server_on_the_same_port_is_refused(
    serve: tuple[subprocess.Popen[bytes], int], workers: str
) -> None:
    """A second server on a port that a --workers server holds gets EADDRINUSE."""
    _proc, port = serve
    second = _bufkit("serve", "echo", "--port", str(port), "--workers", workers)
    out, err = _finish(second)
    assert second.returncode == 1, out
    assert err.decode().splitlines() == [
        f"bufkit serve: cannot listen on 127.0.0.1:{port}: "
        "[Errno 98] Address already in use"
    ]


def test_serve_rejects_too_many_workers() -> None:
    """``--workers`` above the limit is refused with status 2 before any fork."""
    proc = _bufkit("serve", "echo", "--workers", "257", "--port", "0")
    _out, err = _finish(proc)
    assert proc.returncode == 2
    assert err.decode().splitlines() == [
        "bufkit serve: --workers 257 is not in 1 to 256"
    ]


@pytest.mark.parametrize("serve", [["line-echo", "-q"]], indirect=True)
def test_quiet_line_echo_stays_quiet_on_a_line_too_long(
    serve: tuple[subprocess.Popen[bytes], int],
) -> None:
    """A peer's over-long line closes its connection; ``-q`` prints nothing."""
    proc, port = serve
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as client,
        contextlib.suppress(ConnectionResetError, BrokenPipeError),
    ):
        client.sendall(b"a" * 70_000)
        while client.recv(65536):
            pass
    assert _exchange(port, b"still serving\n", 14) == b"still serving\n"
    proc.send_signal(signal.SIGTERM)
    _out, err = _finish(proc)
    assert proc.returncode == 0
    assert err == b""


# -- TLS ----------------------------------------------------------------------


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway certificate and key for ``localhost``."""
    return self_signed(tmp_path)


@contextlib.contextmanager
def _serve_tls(
    files: tuple[Path, Path], *extra: str
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    cert, key = files
    args = ["--tls-cert", str(cert), "--tls-key", str(key), *extra]
    workers = int(args[args.index("--workers") + 1]) if "--workers" in args else 1
    with _bufkit("serve", "echo", "--port", "0", *args) as proc:
        try:
            lines = _wait_for(proc, b"listening on", workers)
            assert all(b"over TLS" in line for line in lines if b"listening" in line)
            ports = {m.group(3) for line in lines if (m := _LISTENING.search(line))}
            assert len(ports) == 1
            yield proc, int(ports.pop())
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)


def _tls_exchange(cafile: Path, port: int, request: bytes) -> bytes:
    context = ssl.create_default_context(cafile=str(cafile))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with context.wrap_socket(raw, server_hostname="localhost") as client:
        client.sendall(request)
        got = bytearray()
        while len(got) < len(request):
            data = client.recv(65536)
            assert data
            got += data
        return bytes(got)


@pytest.mark.parametrize("loop", ["selectors", "twisted"])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_tls_echo_through_python_ssl(
    tls_files: tuple[Path, Path], workers: str, loop: str
) -> None:
    """``bufkit serve echo`` with a certificate echoes byte-exact over TLS."""
    request = bytes(range(256)) * 300  # several TLS records
    with _serve_tls(tls_files, "--workers", workers, "--loop", loop) as (_proc, port):
        for _ in range(4):  # with two workers, likely both take some
            assert _tls_exchange(tls_files[0], port, request) == request


def _s_client_line(openssl: str, port: int, cafile: Path, text: bytes) -> bytes:
    """Send one line through ``openssl s_client``; return the line it printed."""
    with subprocess.Popen(
        [
            openssl,
            "s_client",
            "-connect",
            f"127.0.0.1:{port}",
            "-servername",
            "localhost",
            "-CAfile",
            str(cafile),
            "-verify_return_error",
            "-quiet",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    ) as client:
        try:
            assert client.stdin is not None
            client.stdin.write(text)
            line = _readline(client, timeout=20)
        finally:
            client.kill()
            client.communicate(timeout=10)
    return line


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl tool")
@pytest.mark.parametrize("workers", ["1", "2"])
def test_tls_echo_through_openssl_s_client(
    tls_files: tuple[Path, Path], workers: str
) -> None:
    """``openssl s_client`` verifies the certificate and gets its line echoed."""
    openssl = shutil.which("openssl")
    assert openssl is not None
    with _serve_tls(tls_files, "--workers", workers) as (_proc, port):
        line = _s_client_line(openssl, port, tls_files[0], b"hello over s_client\n")
    assert line == b"hello over s_client\n"


@pytest.mark.parametrize("loop", ["selectors", "twisted"])
def test_tls_plain_http_to_the_tls_port_is_closed_and_serving_goes_on(
    tls_files: tuple[Path, Path], loop: str
) -> None:
    """A plain HTTP request to the TLS port is closed; the next TLS client is served."""
    timeout = ("--tls-handshake-timeout", "5", "--loop", loop)
    with _serve_tls(tls_files, *timeout) as (proc, port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            with contextlib.suppress(ConnectionResetError):
                while raw.recv(4096):
                    pass  # an alert at most, then the end of the stream
        assert _tls_exchange(tls_files[0], port, b"still here") == b"still here"
        assert proc.poll() is None


@pytest.mark.parametrize("loop", ["selectors", "twisted"])
def test_tls_client_that_stops_after_hello_is_closed_at_the_timeout(
    tls_files: tuple[Path, Path], loop: str
) -> None:
    """A client that sends its ClientHello and no more is closed by the server."""
    context = ssl.create_default_context(cafile=str(tls_files[0]))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = outgoing.read()
    assert hello
    timeout = ("--tls-handshake-timeout", "0.5", "--loop", loop)
    with _serve_tls(tls_files, *timeout) as (proc, port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(hello)
            with contextlib.suppress(ConnectionResetError):
                while raw.recv(65536):
                    pass  # the server's flight, then its end of the stream
        assert proc.poll() is None


def test_tls_cert_without_key_is_refused_by_argparse(
    tls_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--tls-cert`` alone (or ``--tls-key`` alone) is a usage error, status 2."""
    for flag in ("--tls-cert", "--tls-key"):
        with pytest.raises(SystemExit) as info:
            main(["serve", "echo", flag, str(tls_files[0])])
        assert info.value.code == 2
        assert "--tls-cert and --tls-key go together" in capsys.readouterr().err


def test_tls_missing_or_bad_files_are_one_line_and_status_2(
    tls_files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A certificate that is missing or not PEM is one line on stderr, status 2."""
    cert, key = tls_files
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    for pair in ((tmp_path / "absent.pem", key), (junk, key), (cert, junk)):
        argv = ["serve", "echo", "--tls-cert", str(pair[0]), "--tls-key", str(pair[1])]
        assert main([*argv, "--port", "0"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert err.startswith("bufkit serve: cannot load --tls-cert")


def test_tls_handshake_timeout_must_be_positive(
    tls_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--tls-handshake-timeout 0`` is refused with status 2, naming the value."""
    cert, key = tls_files
    argv = ["--tls-cert", str(cert), "--tls-key", str(key)]
    assert main(["serve", "echo", *argv, "--tls-handshake-timeout", "0"]) == 2
    assert "--tls-handshake-timeout 0.0" in capsys.readouterr().err
