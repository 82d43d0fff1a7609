"""In-memory streams for TLS: two ends, random partial writes and reads, resets.

Theory of operation: :func:`memory_socketpair` links two :class:`MemorySocket`
objects through two byte buffers. Each ``send`` accepts a random 1 to
``max_send`` bytes or raises :class:`BlockingIOError` (at ``block_rate``);
each ``recv_into`` returns a random 1 to ``max_recv`` bytes of what is there,
or :class:`BlockingIOError` when nothing is (or at ``block_rate``), so TLS
records arrive cut anywhere, one byte at a time if ``max_recv`` is 1.
:meth:`MemorySocket.reset` drops what the peer has not read yet and gives it
``ECONNRESET``: a reset mid-handshake or mid-record. The randomness comes
from one seed, so a failing run repeats. :class:`FakeTLSSocket` puts a real
in-memory :class:`ssl.SSLObject` over such a stream and behaves like a
non-blocking :class:`ssl.SSLSocket`: ``SSLWantReadError`` on send,
``SSLWantWriteError`` on receive, decrypted bytes the selector cannot see
(``pending()``). It records each send and receive for a report, and with a
``busy_limit`` it stops code that calls again right after ``SSLWantReadError``
or ``SSLWantWriteError`` without waiting for readiness (see
:meth:`FakeTLSSocket.mark_waited`). Cost: every byte is copied once into the
peer's buffer.
"""

from __future__ import annotations

import contextlib
import errno
import random
import ssl
from typing import TYPE_CHECKING, Final, final

from bufkit.testing._errors import BusyLoopError

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["FakeTLSSocket", "MemorySocket", "memory_socketpair"]

_SHUT_WR: Final = 1


@final
class MemorySocket:
    """One end of :func:`memory_socketpair`: a non-blocking stream in memory.

    It has what :class:`bufkit.StreamSocket` asks for (``recv_into``,
    ``send``, ``shutdown``, ``close``) plus ``sendmsg`` and ``fileno``.
    """

    def __init__(
        self, rng: random.Random, max_send: int, max_recv: int, block_rate: float
    ) -> None:
        self._rng = rng
        self._max_send = max_send
        self._max_recv = max_recv
        self._block_rate = block_rate
        self.inbox = bytearray()
        """Bytes the peer sent that this end has not received yet."""
        self.peer: MemorySocket | None = None
        self.eof = False
        """Whether the peer shut its sending side or closed."""
        self.reset_pending = False
        self.closed = False
        """Whether :meth:`close` was called."""
        self.sent = bytearray()
        """Every byte this end's sends accepted, in order."""
        self.send_blocked = False
        """While true, every send raises BlockingIOError (a full kernel buffer)."""

    def fileno(self) -> int:
        """Return -1: there is no descriptor."""
        return -1

    def send(self, data: Buffer, /) -> int:
        """Accept a random 1 to ``max_send`` bytes, or raise BlockingIOError."""
        view = memoryview(data).cast("B")
        if self.closed:
            raise OSError(errno.EBADF, "send on a closed MemorySocket")
        peer = self.peer
        if peer is None or peer.closed:
            raise BrokenPipeError(errno.EPIPE, "the peer closed")
        if not view.nbytes:
            return 0
        if self.send_blocked or self._rng.random() < self._block_rate:
            raise BlockingIOError(errno.EAGAIN, "send would block")
        n = min(view.nbytes, self._rng.randint(1, self._max_send))
        peer.inbox += view[:n]
        self.sent += view[:n]
        return n

    def sendmsg(self, buffers: list[Buffer], /) -> int:
        """:meth:`send` of the joined buffers."""
        return self.send(b"".join(bytes(memoryview(b)) for b in buffers))

    def recv(self, bufsize: int, /) -> bytes:
        """:meth:`recv_into` a new buffer of ``bufsize`` bytes; return what came."""
        buf = bytearray(bufsize)
        return bytes(buf[: self.recv_into(buf)])

    def recv_into(self, buffer: Buffer, /) -> int:
        """Copy a random 1 to ``max_recv`` bytes of the inbox into ``buffer``.

        Raises:
            BlockingIOError: Nothing to read yet (or a drawn would-block).
            ConnectionResetError: The peer reset the stream.
        """
        if self.reset_pending:
            raise ConnectionResetError(errno.ECONNRESET, "reset by the peer")
        view = memoryview(buffer).cast("B")
        if not self.inbox:
            if self.eof:
                return 0
            raise BlockingIOError(errno.EAGAIN, "nothing to read")
        if self._rng.random() < self._block_rate:
            raise BlockingIOError(errno.EAGAIN, "recv would block")
        n = min(view.nbytes, len(self.inbox), self._rng.randint(1, self._max_recv))
        view[:n] = self.inbox[:n]
        del self.inbox[:n]
        return n

    def readable(self) -> bool:
        """Whether a receive would not block (bytes, end of file or reset)."""
        return bool(self.inbox) or self.eof or self.reset_pending

    def shutdown(self, how: int, /) -> None:
        """Give the peer end of file (only ``SHUT_WR`` and ``SHUT_RDWR``)."""
        if how != 0 and self.peer is not None:
            self.peer.eof = True

    def close(self) -> None:
        """Close; the peer sees end of file after what it has not read."""
        if not self.closed:
            self.closed = True
            if self.peer is not None:
                self.peer.eof = True

    def reset(self) -> None:
        """Close abortively: the peer loses unread bytes and gets ECONNRESET."""
        self.closed = True
        if self.peer is not None:
            self.peer.inbox.clear()
            self.peer.reset_pending = True


def memory_socketpair(
    seed: int | random.Random = 0,
    *,
    max_send: int = 4096,
    max_recv: int = 4096,
    block_rate: float = 0.0,
) -> tuple[MemorySocket, MemorySocket]:
    """Return two connected :class:`MemorySocket` ends.

    Args:
        seed: The seed (or generator) of every random choice.
        max_send: The most bytes one ``send`` accepts.
        max_recv: The most bytes one ``recv_into`` returns (1: byte by byte).
        block_rate: The chance that a send or a receive raises
            :class:`BlockingIOError` although it could proceed.

    Returns:
        The pair ``(a, b)``.

    Raises:
        ValueError: A maximum is below 1 or ``block_rate`` is outside [0, 1).
    """
    if max_send < 1 or max_recv < 1:
        raise ValueError(f"max_send {max_send} and max_recv {max_recv} must be >= 1")
    if not 0.0 <= block_rate < 1.0:
        raise ValueError(f"block_rate {block_rate!r} must be in [0, 1)")
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    a = MemorySocket(rng, max_send, max_recv, block_rate)
    b = MemorySocket(rng, max_send, max_recv, block_rate)
    a.peer, b.peer = b, a
    return a, b


@final
class FakeTLSSocket:
    """A non-blocking :class:`ssl.SSLSocket` look-alike over a :class:`MemorySocket`.

    A real :class:`ssl.SSLObject` does the TLS; the stream below it is the
    hostile one. Like an :class:`ssl.SSLSocket`, a send may raise
    ``SSLWantReadError`` (the handshake is not done), a receive
    ``SSLWantWriteError`` (handshake bytes could not be sent), and decrypted
    bytes may wait in :meth:`pending` while the stream is empty. It has no
    ``sendmsg``, as an :class:`ssl.SSLSocket`.

    Args:
        stream: The stream for ciphertext.
        context: The TLS context.
        server_side: Whether this end is the server.
        server_hostname: The name the client checks (client side).
        busy_limit: Raise :class:`~bufkit.testing.BusyLoopError` once a send
            or receive follows an ``SSLWantReadError`` or ``SSLWantWriteError``
            more than this many times without :meth:`mark_waited` between
            (``None``: never).
    """

    def __init__(
        self,
        stream: MemorySocket,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
        busy_limit: int | None = None,
    ) -> None:
        self.stream = stream
        """The stream carrying the ciphertext."""
        self.calls: list[str] = []
        """Each send and receive with its outcome, such as ``send(5) = 5``."""
        self.busy_retries = 0
        """Calls made right after a want-read or want-write without a wait."""
        self.busy_limit = busy_limit
        self._want = ""  # the want error since the last wait, if any
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = context.wrap_bio(
            self._in,
            self._out,
            server_side=server_side,
            server_hostname=server_hostname,
        )
        self._unsent = b""

    def fileno(self) -> int:
        """Return the stream's descriptor."""
        return self.stream.fileno()

    def mark_waited(self) -> None:
        """Note that the caller waited for readiness (an event loop's event)."""
        self._want = ""

    def pending(self) -> int:
        """Decrypted bytes a receive returns without the stream being readable."""
        return self._obj.pending()

    def do_handshake(self) -> None:
        """Step the handshake, as on a non-blocking SSLSocket."""
        self._pump_in()
        try:
            self._obj.do_handshake()
        finally:
            self._push_out()

    def send(self, data: Buffer, /) -> int:
        """Encrypt and send; ``SSLWantReadError`` until the handshake is done.

        Raises:
            ssl.SSLWantReadError: The handshake needs the peer's bytes.
            ssl.SSLWantWriteError: Ciphertext from before is still unsent.
        """
        size = memoryview(data).nbytes
        self._begin("send", size)
        try:
            n = self._send(data)
        except OSError as exc:
            self._note("send", size, exc)
            raise
        self.calls.append(f"send({size}) = {n}")
        return n

    def _send(self, data: Buffer) -> int:
        if self._unsent and not self._push_out():
            raise ssl.SSLWantWriteError("ciphertext pending")
        self._pump_in()
        try:
            n = self._obj.write(data)
        except ssl.SSLWantReadError:
            if not self._push_out():
                raise ssl.SSLWantWriteError("handshake bytes pending") from None
            raise
        self._push_out()
        return n

    def recv(self, bufsize: int, /) -> bytes:
        """:meth:`recv_into` a new buffer of ``bufsize`` bytes; return what came."""
        buf = bytearray(bufsize)
        return bytes(buf[: self.recv_into(buf)])

    def recv_into(self, buffer: Buffer, /) -> int:
        """Decrypt into ``buffer``; 0 at the end of the stream.

        Raises:
            ssl.SSLWantReadError: No whole record yet.
            ssl.SSLWantWriteError: Handshake bytes could not be sent.
            OSError: The stream's error.
        """
        view = memoryview(buffer).cast("B")
        self._begin("recv_into", view.nbytes)
        try:
            n = self._recv_into(view)
        except OSError as exc:
            self._note("recv_into", view.nbytes, exc)
            raise
        self.calls.append(f"recv_into({view.nbytes}) = {n}")
        return n

    def _recv_into(self, view: memoryview) -> int:
        while True:
            if self._unsent and not self._push_out():
                raise ssl.SSLWantWriteError("handshake bytes pending")
            try:
                return int(self._obj.read(view.nbytes, view))
            except ssl.SSLWantReadError:
                if not self._push_out():
                    raise ssl.SSLWantWriteError("handshake bytes pending") from None
                if not self._pump_in():
                    raise
            except ssl.SSLZeroReturnError:
                return 0

    def _begin(self, op: str, size: int) -> None:
        if not self._want:
            return
        self.busy_retries += 1
        if self.busy_limit is not None and self.busy_retries > self.busy_limit:
            self.calls.append(f"{op}({size}) = (stopped: a busy loop)")
            raise BusyLoopError(
                f"called {op} right after {self._want} without waiting for "
                f"readiness ({self.busy_retries} times)"
            )

    def _note(self, op: str, size: int, exc: OSError) -> None:
        name = type(exc).__name__
        self.calls.append(f"{op}({size}) = {name}")
        if isinstance(exc, ssl.SSLWantReadError | ssl.SSLWantWriteError):
            self._want = name

    def close_notify(self) -> None:
        """Send TLS's close alert: the peer's next receive after it returns 0."""
        with contextlib.suppress(ssl.SSLWantReadError):
            self._obj.unwrap()  # the peer's alert is not needed to send ours
        self._push_out()

    def flush(self) -> bool:
        """Send ciphertext still held, as a kernel drains its send buffer.

        Returns:
            Whether none is left.
        """
        return self._push_out()

    def buffered(self) -> int:
        """Bytes read from the stream that a receive has not returned yet."""
        return self._obj.pending() + self._in.pending

    def shutdown(self, how: int, /) -> None:
        """Shut the stream's sending side."""
        self.stream.shutdown(how)

    def close(self) -> None:
        """Close the stream."""
        self.stream.close()

    def drop_mid_record(self) -> None:
        """Reset the stream now, whatever record is half sent or half read."""
        self.stream.reset()

    def _pump_in(self) -> bool:
        buf = bytearray(16384)
        try:
            n = self.stream.recv_into(buf)
        except BlockingIOError:
            return False
        if n == 0:
            self._in.write_eof()
            return False
        self._in.write(bytes(buf[:n]))
        return True

    def _push_out(self) -> bool:
        self._unsent += self._out.read()
        while self._unsent:
            try:
                n = self.stream.send(self._unsent)
            except BlockingIOError:
                return False
            self._unsent = self._unsent[n:]
        return True
