"""Hybrid mode: schedules applied over a real socket, truthfully.

Theory of operation: a :class:`HybridSocket` runs the same schedule logic as
:class:`FakeSocket`, but what a send step accepts is handed to a real,
non-blocking socket, and receives read from it. A partial send stays
truthful: only the accepted bytes reach the kernel, so the peer receives
exactly :attr:`HybridSocket.wire`. Since the descriptor is real, selectors and
asyncio see real readiness; a :class:`WouldBlock` step then looks like
readiness that lied. Cost: one real system call per scheduled send or receive.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any, final

from bufkit.testing._fakesocket import ScheduledSocket
from bufkit.testing._records import Call
from bufkit.testing._schedule import RecvStep, SendStep

__all__ = ["HybridSocket", "hybrid_socketpair"]


@final
class HybridSocket(ScheduledSocket):
    """A real socket behind a schedule: faults are injected, bytes are real.

    Args:
        real: a connected stream socket; it is made non-blocking, and closing
            the hybrid closes it.
        send: the send schedule (see :class:`FakeSocket`); after it, every
            send goes straight to the kernel.
        recv: the receive schedule; :class:`Short` caps a read from the
            kernel, :class:`Deliver` injects bytes that never crossed it.
        step_budget: raise :class:`StepBudgetExceeded` after this many calls.

    Raises:
        ValueError: if ``real`` is not a stream socket.
    """

    def __init__(
        self,
        real: socket.socket,
        send: Iterable[SendStep] = (),
        recv: Iterable[RecvStep] = (),
        *,
        step_budget: int | None = None,
    ) -> None:
        if real.type != socket.SOCK_STREAM:
            raise ValueError(f"hybrid mode needs a stream socket, not {real!r}")
        super().__init__(send, recv, step_budget=step_budget)
        real.setblocking(False)
        self.real = real

    def _transmit(self, parts: list[memoryview]) -> int:
        sent = self.real.sendmsg(parts) if len(parts) > 1 else self.real.send(parts[0])
        accepted = bytearray()
        for part in parts:
            accepted += part[: sent - len(accepted)]
        self._wire += accepted
        return sent

    def _inbound(self, limit: int) -> bytes | None:
        try:
            return self.real.recv(limit)
        except BlockingIOError:
            return None

    def fileno(self) -> int:
        """Return the real socket's descriptor (-1 once closed)."""
        return self.real.fileno()

    def close(self) -> None:
        """Close the real socket."""
        if not self._closed:
            self._calls.append(Call("close"))
            self._closed = True
            self.real.close()

    def shutdown(self, how: int, /) -> None:
        """Shut down the real socket's reading, writing or both."""
        super().shutdown(how)
        self.real.shutdown(how)

    def getsockname(self) -> Any:
        """Return the real socket's address."""
        return self.real.getsockname()

    def getpeername(self) -> Any:
        """Return the real peer's address."""
        return self.real.getpeername()

    def setblocking(self, flag: bool, /) -> None:
        """Only non-blocking mode is supported.

        Raises:
            ValueError: for blocking mode.
        """
        if flag:
            raise ValueError("hybrid sockets are non-blocking only")

    def settimeout(self, value: float | None, /) -> None:
        """Only ``0.0`` (non-blocking) is supported.

        Raises:
            ValueError: for any other timeout.
        """
        if value != 0.0:
            raise ValueError("hybrid sockets are non-blocking only")

    def __repr__(self) -> str:
        return (
            f"HybridSocket(<real fd {self.real.fileno()}>, "
            f"send={list(self.send_schedule)!r}, recv={list(self.recv_schedule)!r})"
        )


def hybrid_socketpair(
    a_send: Iterable[SendStep] = (),
    a_recv: Iterable[RecvStep] = (),
    b_send: Iterable[SendStep] = (),
    b_recv: Iterable[RecvStep] = (),
) -> tuple[HybridSocket, HybridSocket]:
    """Return two connected hybrids over :func:`socket.socketpair`.

    Close both (they own real descriptors). The arguments are the schedules
    of the first and the second socket.
    """
    a, b = socket.socketpair()
    return HybridSocket(a, a_send, a_recv), HybridSocket(b, b_send, b_recv)
