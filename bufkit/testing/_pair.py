"""Connected fakes: what one side's schedule accepts arrives at the other.

Theory of operation: :func:`fake_socketpair` links two :class:`FakeSocket`
objects. Bytes a send accepts are appended to the peer's inbox, where the
peer's receives find them (split by its :class:`Short` steps, or whole);
``shutdown(SHUT_WR)`` and ``close`` give the peer end of file, and closing
with unread bytes (or ``reset()``) gives it ``ECONNRESET``, as TCP would.
Cost: the bytes are copied once into the peer's inbox.
"""

from __future__ import annotations

from collections.abc import Iterable

from bufkit.testing._fakebase import connect
from bufkit.testing._fakesocket import FakeSocket
from bufkit.testing._schedule import RecvStep, SendStep

__all__ = ["fake_socketpair"]


def fake_socketpair(
    a_send: Iterable[SendStep] = (),
    a_recv: Iterable[RecvStep] = (),
    b_send: Iterable[SendStep] = (),
    b_recv: Iterable[RecvStep] = (),
    *,
    step_budget: int | None = None,
) -> tuple[FakeSocket, FakeSocket]:
    """Return two connected fakes, like :func:`socket.socketpair`.

    Args:
        a_send: send schedule of the first socket.
        a_recv: receive schedule of the first socket; use :class:`Short` to
            split what the second one sent.
        b_send: send schedule of the second socket.
        b_recv: receive schedule of the second socket.
        step_budget: passed to both fakes.

    Returns:
        The pair ``(a, b)``; both are non-blocking and block when nothing is
        left to read.
    """
    a = FakeSocket(a_send, a_recv, step_budget=step_budget)
    b = FakeSocket(b_send, b_recv, step_budget=step_budget)
    connect(a, b)
    return a, b
