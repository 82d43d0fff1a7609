"""Connected fakes pass bytes, end of file and resets to each other."""

from __future__ import annotations

import errno
import socket

import pytest

from bufkit.testing import Accept, Short, WouldBlock, fake_socketpair


def test_bytes_arrive_split_by_the_receivers_schedule() -> None:
    """What one side accepts, the other reads, split by ``Short`` steps."""
    a, b = fake_socketpair(a_send=[Accept(3)], b_recv=[Short(1), WouldBlock()])
    assert a.send(b"hello") == 3
    assert a.send(b"lo") == 2
    assert b.recv(10) == b"h"
    with pytest.raises(BlockingIOError):
        b.recv(10)
    assert b.recv(10) == b"ello"
    with pytest.raises(BlockingIOError):
        b.recv(10)


def test_shutdown_gives_the_peer_eof_after_the_data() -> None:
    """``shutdown(SHUT_WR)`` reaches the peer as EOF after the pending bytes."""
    a, b = fake_socketpair()
    a.sendall(b"bye")
    a.shutdown(socket.SHUT_WR)
    assert b.recv(10) == b"bye"
    assert b.recv(10) == b""
    a.close()
    b.close()


def test_close_gives_eof_and_sending_to_a_closed_peer_is_epipe() -> None:
    """A closed peer means EOF for reads; as over TCP, the second send is ``EPIPE``."""
    a, b = fake_socketpair()
    a.close()
    assert b.recv(10) == b""
    assert b.send(b"x") == 1  # accepted: the peer answers it with a reset
    with pytest.raises(BrokenPipeError) as info:
        b.send(b"x")
    assert info.value.errno == errno.EPIPE


def test_close_with_unread_bytes_resets_the_peer() -> None:
    """Closing with unread inbound bytes resets the peer (``ECONNRESET``)."""
    a, b = fake_socketpair()
    b.send(b"unread")
    a.close()
    with pytest.raises(ConnectionResetError):
        b.recv(10)
    assert b.recv(10) == b""


def test_reset_is_seen_by_the_peer() -> None:
    """``reset()`` makes the peer's next receive ``ECONNRESET``."""
    a, b = fake_socketpair()
    a.reset()
    with pytest.raises(ConnectionResetError):
        b.recv(1)
    assert a.closed


def test_a_seed_cuts_the_stream_at_random_points() -> None:
    """With a seed, receives return random short reads, reproducibly."""

    def run(seed: int) -> list[int]:
        a, b = fake_socketpair(seed=seed, max_chunk=10)
        a.sendall(bytes(100))
        a.shutdown(socket.SHUT_WR)
        sizes = []
        while data := b.recv(1000):
            sizes.append(len(data))
        return sizes

    assert run(3) == run(3)
    assert sum(run(3)) == 100
    assert max(run(3)) <= 10
    assert len(run(3)) > 10
