"""The whole ``Loop`` on ``FakeSelector`` and fake sockets: no kernel, no clock."""

from __future__ import annotations

import errno

from hypothesis import given
from hypothesis import strategies as st

from bufkit import BufferPool
from bufkit.adapters.selectors import Connection, Interest, Loop
from bufkit.servers import Echo, Fanout
from bufkit.testing import (
    Accept,
    Deliver,
    Fail,
    FakeSelector,
    FakeSocket,
    RecvStep,
    SendStep,
    WouldBlock,
)
from bufkit.testing.strategies import recv_schedules, send_schedules
from tests.adapters._selectors_support import Recorder


def _check_interest(loop: Loop, selector: FakeSelector) -> None:
    """Invariant 3 at the end of an iteration, against the selector's own keys."""
    registered = {key.data: key.events for key in selector.get_map().values()}
    for conn in loop.connections:
        events = registered.get(conn, 0)
        assert bool(events & Interest.WRITE) == (conn.pending_bytes > 0), conn
        assert bool(events & Interest.READ) == conn.reading, conn


def _run(loop: Loop, selector: FakeSelector, max_iterations: int = 3000) -> None:
    """Iterate until every connection closed, checking invariant 3 each time."""
    for _ in range(max_iterations):
        if not loop.connections:
            return
        loop.run_once(0)
        _check_interest(loop, selector)
    raise AssertionError(f"still open: {sorted(map(repr, loop.connections))}")


@st.composite
def _echo_peer(draw: st.DrawFn) -> tuple[bytes, list[RecvStep], list[SendStep]]:
    data = draw(st.binary(min_size=0, max_size=20000))
    recv = draw(recv_schedules(data, max_chunks=8, interrupts=True))
    send = draw(
        send_schedules(max_accept=5000, spurious=True, max_steps=12, interrupts=True)
    )
    return data, recv, send


@given(peers=st.lists(_echo_peer(), min_size=1, max_size=4))
def test_echo_loop_is_byte_exact_and_gives_every_buffer_back(
    peers: list[tuple[bytes, list[RecvStep], list[SendStep]]],
) -> None:
    """Echo over several fakes: exact bytes back, interest exact, pool empty."""
    selector = FakeSelector(busy_limit=20)
    pool = BufferPool()
    loop = Loop(selector=selector, pool=pool)
    socks = []
    for data, recv, send in peers:
        sock = FakeSocket(send=send, recv=recv)
        socks.append((data, sock))
        loop.add_socket(sock, Echo())
    _run(loop, selector)
    for data, sock in socks:
        assert sock.wire == data
        assert sock.closed
    assert pool.stats().buffers_in_use == 0
    loop.close()


@given(
    requests=st.integers(1, 5),
    send=send_schedules(max_accept=3000, spurious=True, max_steps=12, interrupts=True),
)
def test_fanout_on_the_fake_loop(requests: int, send: list[SendStep]) -> None:
    """Fanout's replies arrive whole whatever the partial writes."""
    selector = FakeSelector(busy_limit=20)
    loop = Loop(selector=selector)
    recv: list[RecvStep] = [Deliver(b"?")] * requests
    sock = FakeSocket(send=send, recv=recv, after_recv="eof")
    loop.add_socket(sock, Fanout())
    _run(loop, selector)
    assert len(sock.wire) == requests * 3200
    loop.close()


def test_graceful_close_through_the_loop_drains_first() -> None:
    """``close()`` lets blocked data leave before the fake is closed."""
    selector = FakeSelector()
    loop = Loop(selector=selector)
    sock = FakeSocket(send=[Accept(5), WouldBlock(), WouldBlock(), Accept(5)])
    proto = Recorder()
    conn = loop.add_socket(sock, proto)
    done: list[BaseException | None] = []
    conn.write(b"0123456789abcdef", done.append)
    conn.close()
    loop.run_once(0)
    assert not sock.closed
    _run(loop, selector)
    assert sock.wire == b"0123456789abcdef"
    assert done == [None]
    assert proto.lost == [None]
    loop.close()


def test_loop_close_aborts_and_fails_pending_completions() -> None:
    """Closing the loop aborts connections; pending completions fail."""
    pool = BufferPool()
    selector = FakeSelector()
    loop = Loop(selector=selector, pool=pool)
    sock = FakeSocket(after_send="block")
    conn: Connection = loop.add_socket(sock, Recorder())
    done: list[BaseException | None] = []
    conn.write(pool.acquire(4096), done.append, nbytes=4096)
    loop.run_once(0)
    assert conn.interest & Interest.WRITE
    loop.close()
    assert len(done) == 1
    assert isinstance(done[0], ConnectionAbortedError)
    assert sock.closed
    assert pool.stats().buffers_in_use == 0
    assert not selector.get_map()


def test_reset_on_the_fake_loop_reaches_connection_lost() -> None:
    """A scheduled ECONNRESET on send aborts with that very error."""
    selector = FakeSelector()
    loop = Loop(selector=selector)
    sock = FakeSocket(send=[WouldBlock(), Fail(errno.ECONNRESET)])
    proto = Recorder()
    conn = loop.add_socket(sock, proto)
    done: list[BaseException | None] = []
    conn.write(b"doomed", done.append)
    _run(loop, selector)
    assert isinstance(proto.lost[0], ConnectionResetError)
    assert done == [proto.lost[0]]
    loop.close()
