"""One echo round trip in-process: the selectors ``Loop`` against asyncio.

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_echo.py --benchmark-enable``.

A blocking client end of a ``socketpair`` sends one message, the server's
loop runs one iteration (``Loop.run_once``, or asyncio's ``_run_once``: the
same select, dispatch and callbacks, with no timers due) and the client reads
the echo back. Both sides share one thread, so the figure is the CPU a round
trip costs, client included, without the scheduling noise of two processes.
Compare the rows of a group (``echo 64 B`` ...): ``bufkit.servers.Echo`` on the
``Loop`` against a plain ``asyncio.Protocol`` that writes what it receives.
The ``bufkit bench`` echo scenario measures the same thing across processes.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bufkit.adapters.selectors import Loop
from bufkit.servers import Echo

ROUNDS = 200
SIZES = (64, 4096)


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


class _AsyncioEcho(asyncio.Protocol):
    """The plain asyncio echo: write back what arrived."""

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A socketpair: a blocking client end and the server end."""
    client, server = socket.socketpair()
    with client, server:
        yield client, server


@pytest.mark.parametrize("size", SIZES)
def test_echo_selectors_loop(
    benchmark: BenchmarkFixture, pair: tuple[socket.socket, socket.socket], size: int
) -> None:
    """Echo on the selectors Loop (per call: ROUNDS round trips)."""
    client, server = pair
    loop = Loop()
    loop.add_socket(server.dup(), Echo())
    message = b"x" * size
    _round_trips(client, loop.run_once, message)  # warm the pool and reader
    benchmark.group = f"echo {size} B"
    benchmark(_round_trips, client, loop.run_once, message)
    loop.close()
    assert loop.pool.stats().buffers_in_use == 0


@pytest.mark.parametrize("size", SIZES)
def test_echo_asyncio_protocol(
    benchmark: BenchmarkFixture, pair: tuple[socket.socket, socket.socket], size: int
) -> None:
    """Echo with a plain asyncio Protocol (per call: ROUNDS round trips)."""
    client, server = pair
    loop = asyncio.new_event_loop()
    try:
        transport, _protocol = loop.run_until_complete(
            loop.connect_accepted_socket(_AsyncioEcho, server.dup())
        )
        step: Callable[[], object] = loop._run_once  # type: ignore[attr-defined]
        message = b"x" * size
        _round_trips(client, step, message)
        benchmark.group = f"echo {size} B"
        benchmark(_round_trips, client, step, message)
        transport.close()
        loop.run_until_complete(asyncio.sleep(0))  # let the transport close
    finally:
        loop.close()
