"""``bufkit serve --loop twisted``: the reference servers on Twisted, by the CLI."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("twisted")

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _serving(*args: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bufkit", "serve", *args, "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def test_echo_is_byte_exact_through_the_cli() -> None:
    """``bufkit serve echo --loop twisted`` sends back exactly what it got."""
    payload = os.urandom(1 << 20)
    with (
        _serving("echo", "--loop", "twisted", "-q") as (_proc, port),
        socket.create_connection(("127.0.0.1", port), timeout=20) as sock,
    ):
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        got = bytearray()
        while len(got) < len(payload):
            part = sock.recv(65536)
            if not part:
                break
            got += part
    assert bytes(got) == payload


def test_sigterm_exits_cleanly_with_stats() -> None:
    """SIGTERM stops the Twisted server with status 0 and one stats line."""
    with _serving("line-echo", "--loop", "twisted", "-q") as (proc, port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"a line\n")
            assert sock.recv(100) == b"a line\n"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert out.count(b"bufkit serve: pid") == 1
    assert b"Traceback" not in err


def test_two_workers_echo_byte_exact_and_stop_cleanly() -> None:
    """``--workers 2 --loop twisted``: byte-exact echo, then SIGTERM ends all, 0."""
    payload = os.urandom(1 << 18)
    with _serving("echo", "--loop", "twisted", "--workers", "2") as (proc, port):
        for _ in range(4):  # likely reaches both workers
            with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)
                got = bytearray()
                while part := sock.recv(65536):
                    got += part
            assert bytes(got) == payload
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert out.count(b"supervising 2 workers") == 1
    assert out.count(b"pool_buffers_in_use=0") == 2
    assert b"Traceback" not in err
