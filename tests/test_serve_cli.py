"""``bufkit serve``: the reference servers as processes, with signals."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from bufkit._cli import main

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


@pytest.mark.parametrize("serve", [["discard", "--workers", "2"]], indirect=True)
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


@pytest.mark.parametrize("serve", [["discard", "--workers", "3"]], indirect=True)
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
