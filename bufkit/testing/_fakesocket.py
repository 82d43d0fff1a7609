"""The fake socket: socket methods whose outcomes come from schedules.

Theory of operation: a :class:`FakeSocket` keeps two queues of steps (see
``_schedule.py``). Each send consumes one send step and each receive one
receive step; when a queue runs out the socket falls back to ``after_send``
(accept everything, or block) and ``after_receive`` (block, or end of file).
Accepted bytes are appended to :attr:`FakeSocket.wire` (and to the peer's
inbox for :func:`fake_socketpair`), so the wire is exactly what a kernel would
have taken: the ledger against which docs/design.md invariant 1 is checked.
Errors are the builtin :class:`OSError` subclasses with real errno values.
Cost: O(bytes accepted) per send, plus one call record per call.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from typing import TYPE_CHECKING, final

from bufkit.testing._fakebase import FakeSocketBase, byte_view
from bufkit.testing._records import Call
from bufkit.testing._schedule import (
    Accept,
    AcceptAll,
    AcceptAllBut,
    AcceptBuffers,
    Deliver,
    Eof,
    Fail,
    Interrupt,
    RecvStep,
    Short,
    Spurious,
    WouldBlock,
)

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["FakeSocket", "ScheduledSocket"]


_Acceptance = Accept | AcceptAll | AcceptAllBut | AcceptBuffers | None


def _accepted(step: _Acceptance, views: list[memoryview], size: int) -> int:
    """The bytes ``step`` accepts of ``views`` (``size`` bytes in all)."""
    if isinstance(step, AcceptAll | None):
        return size
    if isinstance(step, AcceptBuffers):
        return step.accepted([view.nbytes for view in views])
    if isinstance(step, AcceptAllBut):
        return step.accepted(size)
    return min(step.n, size)


class ScheduledSocket(FakeSocketBase):
    """The scheduled sends and receives shared by the fake and hybrid sockets.

    Subclasses say where accepted bytes go (:meth:`_transmit`) and where
    inbound bytes come from (:meth:`_inbound`).
    """

    # -- sending ---------------------------------------------------------
    def send(self, data: Buffer, flags: int = 0, /) -> int:
        """Send from ``data``; return the count the schedule accepted."""
        return self._send("send", [byte_view(data)])

    def sendmsg(
        self,
        buffers: Iterable[Buffer],
        ancdata: Iterable[object] = (),
        flags: int = 0,
        address: object = None,
        /,
    ) -> int:
        """Send from ``buffers`` in order; a cut may fall inside any buffer.

        Ancillary data, flags and the address are not modelled: ignored.

        Raises:
            OSError: ``EMSGSIZE`` for more than ``iov_max`` buffers, and the
                scheduled errors.
        """
        return self._send("sendmsg", [byte_view(b) for b in buffers])

    def sendall(self, data: Buffer, flags: int = 0, /) -> None:
        """Send all of ``data``, as :meth:`socket.socket.sendall` does.

        In non-blocking mode, a would-block raises :class:`BlockingIOError` after
        an unknown part was sent: exactly the trap a real socket sets.
        """
        view = byte_view(data)
        while view:
            try:
                view = view[self._send("send", [view]) :]
            except InterruptedError:
                continue

    def _send(self, op: str, views: list[memoryview]) -> int:
        size = sum(v.nbytes for v in views)
        self._begin(op, size, len(views), "send")
        if len(views) > self.iov_max:
            self._raise(op, size, errno.EMSGSIZE, f"{len(views)} > iov_max", len(views))
        if self._reset_pending:  # after the peer's FIN, a reset reads as EPIPE
            self._reset_pending, self._broken = False, True
            code = errno.EPIPE if self._inbox_eof else errno.ECONNRESET
            self._raise(op, size, code, "peer reset the connection")
        if self._shut_wr or self._broken:
            self._raise(op, size, errno.EPIPE, "cannot send", len(views))
        if self._peer is not None and self._peer._closed:
            # As over TCP: the first send after the peer closed is accepted
            # (the peer answers it with a reset); later ones fail with EPIPE.
            self._broken = True
        if size == 0:
            self._calls.append(Call(op, 0, len(views), 0))
            return 0
        step = self._next_send_step(op, size, len(views))
        n = _accepted(step, views, size)
        parts: list[memoryview] = []
        left = n
        for view in views:
            parts.append(view[:left])
            left -= parts[-1].nbytes
            if not left:
                break
        if n < size:
            self._note("partial send")
            if len(views) > 1 and parts[-1].nbytes < views[len(parts) - 1].nbytes:
                self._note("cut inside a gather buffer")
        n = self._transmit_recorded(op, size, len(views), parts)
        self._calls.append(Call(op, size, len(views), n, None, step))
        self._eagain["send"] = False
        return n

    def _next_send_step(self, op: str, size: int, count: int) -> _Acceptance:
        while True:
            step = self._send_steps.popleft() if self._send_steps else None
            if step is None and self.after_send == "block":
                self._would_block(op, size, "send", None, count)
            elif isinstance(step, WouldBlock | Spurious):
                self._would_block(op, size, "send", step, count)
            elif isinstance(step, Interrupt | Fail):
                self._fail(op, size, step, count)
            else:
                return step

    # -- receiving -------------------------------------------------------
    def recv(self, bufsize: int, flags: int = 0, /) -> bytes:
        """Receive at most ``bufsize`` bytes; ``b""`` at end of file."""
        return self._recv("recv", bufsize)

    def recv_into(self, buffer: Buffer, nbytes: int = 0, flags: int = 0, /) -> int:
        """Receive into ``buffer`` from its start; return the count, 0 at EOF."""
        view = byte_view(buffer)
        if nbytes > view.nbytes:
            raise ValueError("buffer too small for requested bytes")
        data = self._recv("recv_into", nbytes or view.nbytes)
        view[: len(data)] = data
        return len(data)

    def recvmsg(
        self, bufsize: int, ancbufsize: int = 0, flags: int = 0, /
    ) -> tuple[bytes, list[tuple[int, int, bytes]], int, None]:
        """Receive like :meth:`recv`; no ancillary data, no flags, no address."""
        return self._recv("recvmsg", bufsize), [], 0, None

    def _recv(self, op: str, nbytes: int) -> bytes:
        self._begin(op, nbytes, 1, "recv")
        if nbytes < 0:
            raise ValueError("negative buffersize in recv")
        if nbytes == 0 or self._shut_rd or self._eof_seen:
            return self._received_now(op, nbytes, b"", None)
        if self._reset_pending and not self._inbox:  # bytes that came first stay
            self._reset_pending, self._broken = False, True
            if not self._inbox_eof:  # after the peer's FIN, a reset reads as EOF
                self._raise(op, nbytes, errno.ECONNRESET, "peer reset the connection")
        if self._broken and not self._inbox:
            return self._received_now(op, nbytes, b"", None)
        while True:
            step = self._recv_steps.popleft() if self._recv_steps else None
            if isinstance(step, Deliver):
                if len(step.data) > nbytes:
                    self._recv_steps.appendleft(Deliver(step.data[nbytes:]))
                    self._note("short read")
                return self._received_now(op, nbytes, step.data[:nbytes], step)
            if isinstance(step, Eof):
                self._eof_seen = True
                self._note("EOF")
                return self._received_now(op, nbytes, b"", step)
            if isinstance(step, Interrupt | Fail):
                self._fail(op, nbytes, step)
            if isinstance(step, WouldBlock | Spurious):
                self._would_block(op, nbytes, "recv", step)
                continue
            data = self._from_inbox(op, nbytes, step)
            if data is not None:
                return data

    def _from_inbox(self, op: str, nbytes: int, step: Short | None) -> bytes | None:
        data = self._inbound_recorded(op, min(nbytes, step.n if step else nbytes))
        if data is None and step is None and self.after_recv == "eof":
            data = b"" if self._peer is None else None
        if data is None:
            if step is not None:
                self._recv_steps.appendleft(step)  # a Short waits for data
            self._would_block(op, nbytes, "recv", None)
        elif not data:
            self._eof_seen = True
            self._note("EOF")
        return None if data is None else self._received_now(op, nbytes, data, step)

    def _transmit_recorded(
        self, op: str, size: int, count: int, parts: list[memoryview]
    ) -> int:
        try:
            return self._transmit(parts)
        except OSError as exc:  # a real socket refused (hybrid mode)
            self._calls.append(Call(op, size, count, None, exc.errno))
            raise

    def _inbound_recorded(self, op: str, limit: int) -> bytes | None:
        try:
            return self._inbound(limit)
        except OSError as exc:  # a real socket failed (hybrid mode)
            self._calls.append(Call(op, limit, 1, None, exc.errno))
            raise

    def _received_now(
        self, op: str, size: int, data: bytes, step: RecvStep | None
    ) -> bytes:
        self._received += data
        self._calls.append(Call(op, size, 1, len(data), None, step))
        self._eagain["recv"] = False
        return data

    # -- where bytes go and come from -------------------------------------
    def _transmit(self, parts: list[memoryview]) -> int:
        """Hand the bytes the schedule accepted on; return how many were taken."""
        for part in parts:
            self._wire += part
            if self._peer is not None:
                self._peer._inbox += part
        return sum(part.nbytes for part in parts)

    def _inbound(self, limit: int) -> bytes | None:
        """Up to ``limit`` bytes from the peer, ``b""`` at EOF, ``None`` if none."""
        if self._inbox:
            if limit < len(self._inbox):
                self._note("short read")
            data = bytes(self._inbox[:limit])
            del self._inbox[:limit]
            return data
        return b"" if self._inbox_eof else None


@final
class FakeSocket(ScheduledSocket):
    """A non-blocking stream socket whose every outcome is scheduled.

    Args:
        send: steps for successive sends (:class:`Accept`, :class:`AcceptAll`,
            :class:`AcceptAllBut`, :class:`AcceptBuffers`, :class:`WouldBlock`,
            :class:`Spurious`, :class:`Interrupt`, :class:`Fail`).
        recv: steps for successive receives (:class:`Deliver`, :class:`Short`,
            :class:`WouldBlock`, :class:`Spurious`, :class:`Interrupt`,
            :class:`Fail`, :class:`Eof`).
        after_send: once ``send`` is used up, ``"accept"`` every byte or
            ``"block"`` forever.
        after_recv: once ``recv`` is used up (and the inbox is empty),
            ``"block"`` or report ``"eof"``.
        iov_max: a ``sendmsg`` with more buffers raises ``EMSGSIZE``.
        step_budget: raise :class:`StepBudgetExceeded` after this many calls.
        busy_limit: raise :class:`BusyLoopError` once more than this many calls
            were retried right after ``EAGAIN`` without waiting for readiness
            (see :meth:`mark_waited`); ``None`` only counts them.
        spin_limit: raise :class:`BusyLoopError` ("no progress") after this
            many calls in a row that moved no byte, used no scheduled step
            and waited for nothing (such as ``sendmsg`` of empty buffers,
            which returns 0); ``None`` never does.

    The socket starts in non-blocking mode. In blocking mode a
    :class:`WouldBlock` step means "wait" (instantly) instead of raising.
    """
