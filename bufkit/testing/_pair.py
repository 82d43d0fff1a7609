"""Connected fakes: what one side's schedule accepts arrives at the other.

Theory of operation: :func:`fake_socketpair` links two :class:`FakeSocket`
objects. Bytes a send accepts are appended to the peer's inbox, where the
peer's receives find them (split by its :class:`Short` steps, or whole);
``shutdown(SHUT_WR)`` and ``close`` give the peer end of file, and closing
with unread bytes (or ``reset()``) gives it ``ECONNRESET``, as TCP would.
Cost: the bytes are copied once into the peer's inbox.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from bufkit.testing._fakebase import connect
from bufkit.testing._fakesocket import FakeSocket
from bufkit.testing._schedule import RecvStep, SendStep, Short

__all__ = ["fake_socketpair"]

_RANDOM_CUTS = 256  # random cuts per side; then each receive takes what is there


def fake_socketpair(
    a_send: Iterable[SendStep] = (),
    a_recv: Iterable[RecvStep] = (),
    b_send: Iterable[SendStep] = (),
    b_recv: Iterable[RecvStep] = (),
    *,
    step_budget: int | None = None,
    seed: int | random.Random | None = None,
    max_chunk: int = 4096,
) -> tuple[FakeSocket, FakeSocket]:
    """Return two connected fakes, like :func:`socket.socketpair`.

    Args:
        a_send: send schedule of the first socket.
        a_recv: receive schedule of the first socket; use :class:`Short` to
            split what the second one sent.
        b_send: send schedule of the second socket.
        b_recv: receive schedule of the second socket.
        step_budget: passed to both fakes.
        seed: cut what each side receives at random points, drawn from this
            seed, where its receive schedule is not given: each receive
            returns at most a random 1 to ``max_chunk`` bytes.
        max_chunk: the largest random cut.

    Returns:
        The pair ``(a, b)``; both are non-blocking and block when nothing is
        left to read.
    """
    a_recv, b_recv = list(a_recv), list(b_recv)
    if seed is not None:
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        a_recv = a_recv or _random_shorts(rng, max_chunk)
        b_recv = b_recv or _random_shorts(rng, max_chunk)
    a = FakeSocket(a_send, a_recv, step_budget=step_budget)
    b = FakeSocket(b_send, b_recv, step_budget=step_budget)
    connect(a, b)
    return a, b


def _random_shorts(rng: random.Random, max_chunk: int) -> list[RecvStep]:
    return [Short(rng.randint(1, max_chunk)) for _ in range(_RANDOM_CUTS)]
