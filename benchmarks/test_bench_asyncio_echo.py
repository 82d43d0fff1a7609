"""One echo round trip in-process on the asyncio readiness stream.

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_asyncio_echo.py
--benchmark-enable``.

Like ``test_bench_echo.py``: a blocking client end of a ``socketpair`` sends
one message, the default loop runs one iteration (``_run_once``) and the
client reads the echo back, so the figure is the CPU of one round trip. The
server is a :class:`~bufkit.adapters.asyncio.StreamProtocol` that echoes by
ownership (``conn.write(conn.take_buffer())``), the path whose per-call
overhead the stream keeps low by handing out the core's own bound methods.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import bufkit
from bufkit.adapters.asyncio import (
    Connection,
    StreamProtocol,
    open_protocol_connection,
)

ROUNDS = 200
SIZES = (64, 4096)


class _Echo(StreamProtocol):
    """Zero-copy echo: the read buffer itself goes back out."""

    conn: Connection

    def connection_made(self, conn: Connection) -> None:
        self.conn = conn

    def data_received(self, view: memoryview) -> None:
        self.conn.write(self.conn.take_buffer())


def _round_trips(
    client: socket.socket, step: Callable[[], object], message: bytes
) -> None:
    size = len(message)
    for _ in range(ROUNDS):
        client.sendall(message)
        step()
        got = 0
        while got < size:
            got += len(client.recv(65536))


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A socketpair: a blocking client end and the server end."""
    client, server = socket.socketpair()
    with client, server:
        yield client, server


@pytest.mark.parametrize("size", SIZES)
def test_echo_asyncio_stream(
    benchmark: BenchmarkFixture, pair: tuple[socket.socket, socket.socket], size: int
) -> None:
    """Echo on the readiness stream (per call: ROUNDS round trips)."""
    client, server = pair
    pool = bufkit.BufferPool()
    loop = asyncio.new_event_loop()
    try:
        conn, _protocol = loop.run_until_complete(
            open_protocol_connection(_Echo, pool=pool, sock=server.dup())
        )
        step: Callable[[], object] = loop._run_once  # type: ignore[attr-defined]
        message = b"x" * size
        _round_trips(client, step, message)
        benchmark.group = f"echo {size} B"
        benchmark(_round_trips, client, step, message)
        conn.abort()
        loop.run_until_complete(asyncio.sleep(0))  # connection_lost runs
    finally:
        loop.close()
    assert pool.stats().buffers_in_use == 0
