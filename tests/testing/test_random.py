"""Seeded random schedules are reproducible and well formed."""

from __future__ import annotations

import errno
import random

from bufkit.testing import (
    SEND_FAULTS,
    Accept,
    Deliver,
    Eof,
    Fail,
    FakeSocket,
    random_cuts,
    random_recv_schedule,
    random_send_schedule,
)


def test_same_seed_same_schedule() -> None:
    """A seed always gives the same schedule; a Random instance works too."""
    assert random_send_schedule(7) == random_send_schedule(random.Random(7))
    assert random_recv_schedule(7, b"abc" * 50) == random_recv_schedule(7, b"abc" * 50)


def test_send_schedule_limits() -> None:
    """Partial sends stay within ``max_accept``; faults come from ``errnos``."""
    for seed in range(50):
        steps = random_send_schedule(seed, steps=10, max_accept=5, fault=0.5)
        assert 10 <= len(steps) <= 11
        assert all(s.n <= 5 for s in steps if isinstance(s, Accept))
        assert all(s.errno in SEND_FAULTS for s in steps if isinstance(s, Fail))


def test_recv_schedule_delivers_the_data_in_order() -> None:
    """The Deliver steps concatenate to the data; the schedule ends at EOF."""
    data = bytes(range(256)) * 4
    for seed in range(50):
        steps = random_recv_schedule(seed, data, max_chunk=100)
        delivered = b"".join(s.data for s in steps if isinstance(s, Deliver))
        assert delivered == data
        assert steps[-1] == Eof()


def test_recv_schedule_fault_cuts_the_stream() -> None:
    """With a fault the deliveries are a prefix of the data, then the error."""
    data = b"x" * 1000
    steps = random_recv_schedule(3, data, fault=1.0, errnos=[errno.ECONNRESET])
    assert steps[-1] == Fail(errno.ECONNRESET)
    delivered = b"".join(s.data for s in steps if isinstance(s, Deliver))
    assert data.startswith(delivered)


def test_random_cuts() -> None:
    """Cuts are non-empty, at most ``max_chunk`` long, and rebuild the data."""
    chunks = random_cuts(1, b"hello world", max_chunk=3)
    assert b"".join(chunks) == b"hello world"
    assert all(1 <= len(c) <= 3 for c in chunks)


def test_a_random_fake_round_trip() -> None:
    """A fake driven by a random schedule accepts everything eventually."""
    rng = random.Random(11)
    sock = FakeSocket(send=random_send_schedule(rng))
    data = bytes(rng.randbytes(20_000))
    sent = 0
    while sent < len(data):
        try:
            sent += sock.send(data[sent:])
        except (BlockingIOError, InterruptedError):
            sock.mark_waited()
    assert sock.wire == data
