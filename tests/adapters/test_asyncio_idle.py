"""10,000 idle connections hold zero pool bytes, at both levels, on both loops.

The client ends live in a subprocess (10,000 descriptors each side, below the
hard limit of one process); each client sends one byte, so every server-side
connection has read once before it goes idle.
"""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest

import bufkit
from bufkit.adapters.asyncio import (
    PooledProtocol,
    StreamProtocol,
    start_protocol_server,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

CONNECTIONS = 10_000

CLIENTS = textwrap.dedent(
    """
    import resource, socket, sys
    port, count = int(sys.argv[1]), int(sys.argv[2])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 100), hard))
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"x")
        socks.append(s)
    print("ready", flush=True)
    sys.stdin.readline()
    for s in socks:
        s.close()
    """
)


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        try:
            import uvloop
        except ImportError as exc:  # pragma: no cover - uvloop is a test dependency
            pytest.skip(f"uvloop cannot be imported here: {exc}")
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    return asyncio.new_event_loop


class Count(StreamProtocol):
    """Counts connections that have read their byte."""

    seen = 0

    def data_received(self, view: memoryview) -> None:
        """Count once."""
        Count.seen += 1


class CountPooled(PooledProtocol):
    """The same at the PooledProtocol level."""

    def data_received(self, view: memoryview) -> None:
        """Count once."""
        Count.seen += 1


async def _serve_idle(level: str, pool: bufkit.BufferPool) -> tuple[int, int]:
    """Serve CONNECTIONS idle clients; return (connections seen, buffers in use)."""
    loop = asyncio.get_running_loop()
    Count.seen = 0
    close: Callable[[], object]
    if level == "stream":
        server = await start_protocol_server(
            Count, "127.0.0.1", 0, pool=pool, backlog=4096
        )
        port = server.sockets[0].getsockname()[1]
        close = server.close
    else:
        aio_server = await loop.create_server(
            lambda: CountPooled(pool), "127.0.0.1", 0, backlog=4096
        )
        port = aio_server.sockets[0].getsockname()[1]
        close = aio_server.close
    clients = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CLIENTS,
        str(port),
        str(CONNECTIONS),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert clients.stdin is not None
    assert clients.stdout is not None
    try:
        assert await asyncio.wait_for(clients.stdout.readline(), 60) == b"ready\n"
        for _ in range(6000):
            if Count.seen >= CONNECTIONS:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        return Count.seen, pool.stats().buffers_in_use
    finally:
        close()
        clients.stdin.write(b"done\n")
        await clients.stdin.drain()
        await asyncio.wait_for(clients.wait(), 60)
        if level == "protocol":
            await asyncio.sleep(0.2)  # let transports finish closing


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
@pytest.mark.parametrize("level", ["stream", "protocol"])
def test_ten_thousand_idle_connections_hold_zero_pool_bytes(
    level: str, loop_name: str
) -> None:
    """After one read each, 10,000 open idle connections hold no pool buffer."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = CONNECTIONS + 200
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {want}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    pool = bufkit.BufferPool()
    with asyncio.Runner(loop_factory=_loop_factory(loop_name)) as runner:
        seen, held = runner.run(_serve_idle(level, pool))
    assert seen == CONNECTIONS
    assert held == 0
    assert pool.stats().buffers_in_use == 0
