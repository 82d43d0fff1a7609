"""A gallery of buggy senders and receivers: the catalogue of what the checks find.

Each class below is a few lines of socket code with one classic bug, and
:data:`SENDER_BUGS` and :data:`RECEIVER_BUGS` say which check catches it and
with which verdict. The correct implementations (one sender, one sender
with flow control, four receivers, and a sender and a receiver for TLS) pass
every check; each bug is a small change to one of them. The documentation
shows this module as the list of bugs :func:`~bufkit.testing.check_sender` and
:func:`~bufkit.testing.check_receiver` find, and the test suite runs every
entry, so the catalogue cannot drift from what the checks do.

Run one entry with :func:`run`::

    from bufkit.testing import gallery

    gallery.run(gallery.SENDER_BUGS[0])  # raises CheckFailed
"""

from __future__ import annotations

import bisect
import itertools
import ssl
import struct
from collections import deque
from collections.abc import Callable
from typing import Any, Final, final

import attrs

from bufkit.testing._errors import CheckFailed
from bufkit.testing._fakebase import IOV_MAX
from bufkit.testing._fakesocket import FakeSocket
from bufkit.testing._recvcheck import check_receiver
from bufkit.testing._sendcheck import check_sender

__all__ = [
    "CORRECT",
    "RECEIVER_BUGS",
    "SENDER_BUGS",
    "Entry",
    "find",
    "run",
    "verdict",
]

OnMessage = Callable[[bytes], object]
OnEof = Callable[[], object]


# -- correct senders ------------------------------------------------------
class GatherSender:
    """Correct: gathers writes into ``sendmsg``, keeps the rest, arms interest."""

    def __init__(self, sock: FakeSocket) -> None:
        self.sock = sock
        self.pending: deque[memoryview] = deque()

    def write(self, data: bytes) -> None:
        """Queue ``data``; send at once unless waiting for writable already."""
        waiting = bool(self.pending)
        if data:
            self.pending.append(memoryview(data))
        if not waiting:
            self.on_writable()

    def on_writable(self) -> None:
        """Send until drained or the socket would block."""
        while self.pending:
            try:
                sent = self.sock.sendmsg(list(itertools.islice(self.pending, IOV_MAX)))
            except BlockingIOError:
                return
            self.advance(sent)

    def advance(self, sent: int) -> None:
        """Drop the ``sent`` bytes from the front of the queue."""
        while sent:
            head = self.pending[0]
            if sent < len(head):
                self.pending[0] = head[sent:]
                return
            sent -= len(head)
            self.pending.popleft()

    @property
    def wants_writable(self) -> bool:
        """Armed while anything is pending."""
        return bool(self.pending)


class PausingSender(GatherSender):
    """Correct, with flow control: the producer is paused above 300 pending bytes."""

    high_water = 300

    @property
    def paused(self) -> bool:
        """Whether the producer must stop writing."""
        return sum(len(view) for view in self.pending) > self.high_water


# -- buggy senders ---------------------------------------------------------
class IgnoresReturnValue(GatherSender):
    """Treats every ``send`` as complete: ignores how many bytes were accepted."""

    def on_writable(self) -> None:
        """Send each buffer once, whatever was accepted."""
        while self.pending:
            try:
                self.sock.send(self.pending[0])
            except BlockingIOError:
                return
            self.pending.popleft()


class IgnoresSendmsgReturnValue(GatherSender):
    """Treats a ``sendmsg`` as complete: the whole gather list counts as sent."""

    def advance(self, sent: int) -> None:
        """Forget every buffer that was offered."""
        self.pending.clear()


class ResendsWholeBuffer(GatherSender):
    """After a partial send, offers the whole buffer again."""

    def advance(self, sent: int) -> None:
        """Drop only the buffers sent whole."""
        while self.pending and sent >= len(self.pending[0]):
            sent -= len(self.pending.popleft())


class PopsBeforeSending(GatherSender):
    """Takes the buffer off the queue first, and loses it when ``EAGAIN`` comes."""

    def on_writable(self) -> None:
        """Pop, then send; ``EAGAIN`` drops the popped buffer."""
        while self.pending:
            head = self.pending.popleft()
            try:
                sent = self.sock.send(head)
            except BlockingIOError:
                return
            if sent < len(head):
                self.pending.appendleft(head[sent:])


class SwapsQueueBeforeSending(GatherSender):
    """Swaps the queue out before ``sendmsg``; ``EAGAIN`` loses all of it."""

    def on_writable(self) -> None:
        """Take every buffer, send, and forget them on ``EAGAIN``."""
        while self.pending:
            taken, self.pending = self.pending, deque()
            try:
                sent = self.sock.sendmsg(list(taken))
            except BlockingIOError:
                return
            self.pending = taken
            self.advance(sent)


class ArmsOnlyAfterEagain(GatherSender):
    """Arms write interest only after ``EAGAIN``, not after a partial send."""

    armed = False

    def on_writable(self) -> None:
        """One ``sendmsg`` per event; arm only when it raised."""
        self.armed = False
        if self.pending:
            try:
                self.advance(self.sock.sendmsg(list(self.pending)))
            except BlockingIOError:
                self.armed = True

    @property
    def wants_writable(self) -> bool:
        """Armed only after an ``EAGAIN``."""
        return self.armed


class NeverArms(GatherSender):
    """Keeps what was not sent, but never asks for write readiness."""

    def write(self, data: bytes) -> None:
        """Queue and try to send everything now."""
        if data:
            self.pending.append(memoryview(data))
        self.on_writable()

    @property
    def wants_writable(self) -> bool:
        """Never armed."""
        return False


class StaysArmed(GatherSender):
    """Never disarms write interest: the loop wakes it forever."""

    @property
    def wants_writable(self) -> bool:
        """Always armed."""
        return True


class SpinsOnEagain(GatherSender):
    """Retries at once after ``EAGAIN`` instead of waiting for writable."""

    def on_writable(self) -> None:
        """Send until drained, retrying on ``EAGAIN``."""
        while self.pending:
            try:
                self.advance(self.sock.sendmsg(list(self.pending)))
            except BlockingIOError:
                continue


class RetriesTwiceAfterEagain(GatherSender):
    """Retries up to twice right after ``EAGAIN`` before it waits."""

    def on_writable(self) -> None:
        """Send; on ``EAGAIN`` try twice more, then wait."""
        retries = 0
        while self.pending:
            try:
                self.advance(self.sock.sendmsg(list(self.pending)))
            except BlockingIOError:
                retries += 1
                if retries > 2:
                    return


class SendsWhileWaiting(GatherSender):
    """Sends on every write, even while waiting for writable after ``EAGAIN``."""

    def write(self, data: bytes) -> None:
        """Queue and send now, whatever the socket said last time."""
        if data:
            self.pending.append(memoryview(data))
        self.on_writable()


class GathersPastIovMax(GatherSender):
    """Passes every pending buffer to one ``sendmsg``, however many there are."""

    def on_writable(self) -> None:
        """One unbounded gather at a time."""
        while self.pending:
            try:
                self.advance(self.sock.sendmsg(list(self.pending)))
            except BlockingIOError:
                return


class NoFlowControl(GatherSender):
    """Buffers without bound while the peer reads nothing (checked with a limit)."""


class PausesTooLate(PausingSender):
    """Pauses the producer at 500 pending bytes, above the limit of 300."""

    high_water = 500


class SwallowsReset(GatherSender):
    """Hides ``ECONNRESET``: drops the data and carries on."""

    def on_writable(self) -> None:
        """Send; on a reset, forget everything."""
        try:
            super().on_writable()
        except ConnectionResetError:
            self.pending.clear()


class SwallowsBrokenPipe(GatherSender):
    """Hides ``EPIPE``: drops the data and carries on."""

    def on_writable(self) -> None:
        """Send; on a broken pipe, forget everything."""
        try:
            super().on_writable()
        except BrokenPipeError:
            self.pending.clear()


class LetsEagainEscape(GatherSender):
    """Lets ``BlockingIOError`` reach the caller as if it were an error."""

    def on_writable(self) -> None:
        """Send, without catching ``EAGAIN``."""
        while self.pending:
            self.advance(self.sock.sendmsg(list(self.pending)))


class UsesSendall(GatherSender):
    """Calls ``sendall`` on a non-blocking socket: ``EAGAIN`` escapes mid-way."""

    def on_writable(self) -> None:
        """Send everything with ``sendall``."""
        while self.pending:
            self.sock.sendall(self.pending.popleft())


class SpinsOnEmptyWrite(GatherSender):
    """Queues empty writes and loops on a ``sendmsg`` that sends 0 bytes."""

    def write(self, data: bytes) -> None:
        """Queue ``data``, even empty, and send."""
        self.pending.append(memoryview(data))
        self.on_writable()

    def on_writable(self) -> None:
        """Send until drained; an empty head is never dropped."""
        while self.pending:
            try:
                sent = self.sock.sendmsg([self.pending[0]])
            except BlockingIOError:
                return
            if sent:
                self.advance(sent)


class RetriesAfterReset(GatherSender):
    """Retries a send that failed with ``ECONNRESET``, forever."""

    def on_writable(self) -> None:
        """Send; on any socket error, try again."""
        while self.pending:
            try:
                super().on_writable()
                return
            except (ConnectionResetError, BrokenPipeError):
                continue


class SendsNothingOnWritable(GatherSender):
    """Stays armed, but sends nothing when the socket becomes writable."""

    def on_writable(self) -> None:
        """Do nothing."""


class RequeuesAtTheBackOnEagain(GatherSender):
    """On ``EAGAIN``, puts the buffer it tried back at the end of the queue."""

    def on_writable(self) -> None:
        """Pop, send; on ``EAGAIN`` append the buffer again (reordering it)."""
        while self.pending:
            head = self.pending.popleft()
            try:
                sent = self.sock.send(head)
            except BlockingIOError:
                self.pending.append(head)
                return
            if sent < len(head):
                self.pending.appendleft(head[sent:])


class DropsGatherTailAfterCut(GatherSender):
    """After a cut inside a gather buffer, keeps that buffer's rest only."""

    def advance(self, sent: int) -> None:
        """Keep the rest of the cut buffer only."""
        ends = list(itertools.accumulate(len(view) for view in self.pending))
        i = bisect.bisect_right(ends, sent)
        if i < len(ends):
            start = ends[i - 1] if i else 0
            self.pending = deque([self.pending[i][sent - start :]])
        else:
            self.pending.clear()


class ClearsQueueAtABoundary(GatherSender):
    """Takes a send that ends exactly at a buffer boundary for the whole gather."""

    def advance(self, sent: int) -> None:
        """Clear the queue when ``sent`` ends a buffer, else advance correctly."""
        ends = itertools.accumulate(len(view) for view in self.pending)
        if sent in set(ends):
            self.pending.clear()
        else:
            super().advance(sent)


class ClosesOnEagain(GatherSender):
    """Treats ``EAGAIN`` as a dead peer: closes the socket, drops the data."""

    def on_writable(self) -> None:
        """Send; on ``EAGAIN``, close."""
        try:
            super().on_writable()
        except OSError:
            self.sock.close()
            self.pending.clear()

    def write(self, data: bytes) -> None:
        """Send now; ``EAGAIN`` closes the socket."""
        if self.sock.fileno() >= 0 and data:
            self.pending.append(memoryview(data))
            while self.pending:
                try:
                    self.advance(self.sock.sendmsg(list(self.pending)))
                except BlockingIOError:
                    self.sock.close()
                    self.pending.clear()


# -- over TLS ----------------------------------------------------------------
class TLSSender(GatherSender):
    """Correct over TLS: ``send`` (no ``sendmsg``); a want-read waits for readable."""

    want_read = False

    def on_writable(self) -> None:
        """Send until drained, the stream would block, or TLS needs the peer."""
        self.want_read = False
        while self.pending:
            try:
                self.advance(self.sock.send(self.pending[0]))
            except (BlockingIOError, ssl.SSLWantWriteError):
                return
            except ssl.SSLWantReadError:
                self.want_read = True
                return

    def on_readable(self) -> None:
        """The peer's bytes came: send again."""
        self.on_writable()

    @property
    def wants_writable(self) -> bool:
        """Armed while something is pending and TLS is not waiting to read."""
        return bool(self.pending) and not self.want_read

    @property
    def wants_readable(self) -> bool:
        """Armed while TLS waits for the peer's bytes."""
        return self.want_read


class WantReadIsFatal(TLSSender):
    """Written for TCP: catches ``BlockingIOError`` only, so a want-read escapes."""

    def on_writable(self) -> None:
        """Send until drained or the stream would block."""
        while self.pending:
            try:
                self.advance(self.sock.send(self.pending[0]))
            except BlockingIOError:
                return


class SpinsOnWantRead(TLSSender):
    """Retries ``send`` at once after ``SSLWantReadError``: the peer gets no turn."""

    def on_writable(self) -> None:
        """Send until drained, retrying on a want-read."""
        while self.pending:
            try:
                self.advance(self.sock.send(self.pending[0]))
            except ssl.SSLWantReadError:
                continue
            except (BlockingIOError, ssl.SSLWantWriteError):
                return


# -- correct receivers -----------------------------------------------------
class StreamReceiver:
    """Correct: hands every chunk on as it comes (a plain byte stream)."""

    recv_size = 7

    def __init__(self, sock: FakeSocket, on_message: OnMessage, on_eof: OnEof) -> None:
        self.sock, self.on_message, self.on_eof = sock, on_message, on_eof
        self.done = False

    def on_readable(self) -> None:
        """Read until ``EAGAIN``; hand each chunk on; report end of file once."""
        while not self.done:
            try:
                data = self.sock.recv(self.recv_size)
            except BlockingIOError:
                return
            if not data:
                self.done = True
                self.on_eof()
                return
            self.received(data)

    def received(self, data: bytes) -> None:
        """Hand the chunk on as it is."""
        self.on_message(data)


class LineReceiver(StreamReceiver):
    """Correct: buffers until a newline, then emits the line without it."""

    delimiter = b"\n"

    def __init__(self, sock: FakeSocket, on_message: OnMessage, on_eof: OnEof) -> None:
        super().__init__(sock, on_message, on_eof)
        self.buffer = bytearray()

    def received(self, data: bytes) -> None:
        """Buffer ``data``; emit every whole line."""
        self.buffer += data
        while (end := self.buffer.find(self.delimiter)) >= 0:
            self.on_message(bytes(self.buffer[:end]))
            del self.buffer[: end + len(self.delimiter)]


class CrlfReceiver(LineReceiver):
    """Correct: lines that end with ``CRLF``, a delimiter a cut can split."""

    delimiter = b"\r\n"


class PrefixedReceiver(StreamReceiver):
    """Correct: frames with a 2-byte big-endian length before each message."""

    def __init__(self, sock: FakeSocket, on_message: OnMessage, on_eof: OnEof) -> None:
        super().__init__(sock, on_message, on_eof)
        self.buffer = bytearray()

    def received(self, data: bytes) -> None:
        """Buffer ``data``; emit every whole frame."""
        self.buffer += data
        while len(self.buffer) >= 2:
            (size,) = struct.unpack_from("!H", self.buffer)
            if len(self.buffer) < 2 + size:
                return
            self.on_message(bytes(self.buffer[2 : 2 + size]))
            del self.buffer[: 2 + size]


# -- buggy receivers -------------------------------------------------------
class OneRecvOneMessage(LineReceiver):
    """Assumes that one ``recv`` returns exactly one line."""

    def received(self, data: bytes) -> None:
        """Emit the chunk as a line, unbuffered."""
        self.on_message(data.rstrip(b"\n"))


class DropsPartialLine(LineReceiver):
    """Emits the whole lines of each chunk and drops the partial one at its end."""

    def received(self, data: bytes) -> None:
        """Emit the lines of this chunk; forget the rest."""
        super().received(data)
        self.buffer.clear()


class OneLinePerEvent(LineReceiver):
    """Emits one line per readable event and leaves the others buffered."""

    recv_size = 4096

    def received(self, data: bytes) -> None:
        """Buffer ``data``; emit only the first whole line."""
        self.buffer += data
        if (end := self.buffer.find(b"\n")) >= 0:
            self.on_message(bytes(self.buffer[:end]))
            del self.buffer[: end + 1]


class SearchesOnlyTheNewChunk(CrlfReceiver):
    """Looks for ``CRLF`` in the new chunk only: misses one split across reads."""

    def received(self, data: bytes) -> None:
        """Emit a line when this chunk holds the delimiter."""
        start = len(self.buffer)
        self.buffer += data
        while (end := data.find(self.delimiter)) >= 0:
            cut = start + end
            self.on_message(bytes(self.buffer[:cut]))
            del self.buffer[: cut + 2]
            data, start = data[end + 2 :], 0


class AssumesWholeHeader(PrefixedReceiver):
    """Reads the header from the chunk that starts a frame, as if it came whole."""

    size = 0

    def received(self, data: bytes) -> None:
        """Take the first two bytes of the chunk that starts a frame as its header."""
        if not self.buffer:
            self.size = int.from_bytes(data[:2], "big")
        self.buffer += data
        if len(self.buffer) >= 2 + self.size:
            self.on_message(bytes(self.buffer[2 : 2 + self.size]))
            del self.buffer[: 2 + self.size]


class SwallowsReceiveReset(StreamReceiver):
    """Treats a reset as end of file, hiding the error."""

    def on_readable(self) -> None:
        """Read; turn ``ConnectionResetError`` into end of file."""
        try:
            super().on_readable()
        except ConnectionResetError:
            self.done = True
            self.on_eof()


class ReportsEofTwice(StreamReceiver):
    """Forgets it saw end of file, and reports it again on the next event."""

    def on_readable(self) -> None:
        """Read until ``EAGAIN`` or end of file, every time."""
        self.done = False
        super().on_readable()


class NeverReportsEof(StreamReceiver):
    """Stops reading at end of file without telling anyone."""

    def on_readable(self) -> None:
        """Read; at end of file, just stop."""
        on_eof, self.on_eof = self.on_eof, lambda: None
        super().on_readable()
        self.on_eof = on_eof


class ShortReadIsEof(StreamReceiver):
    """Takes a read shorter than asked for as end of file."""

    def received(self, data: bytes) -> None:
        """Hand the chunk on; a short one means the peer is done."""
        self.on_message(data)
        if len(data) < self.recv_size:
            self.done = True
            self.on_eof()


class DropsLastChunk(StreamReceiver):
    """Hands each chunk on when the next arrives; forgets the last at end of file."""

    held = b""

    def received(self, data: bytes) -> None:
        """Hand on the previous chunk; hold this one."""
        if self.held:
            self.on_message(self.held)
        self.held = data


class EofBeforeLastChunk(DropsLastChunk):
    """Reports end of file, then hands on the chunk it still held."""

    def on_readable(self) -> None:
        """Read; after end of file, flush the held chunk."""
        super().on_readable()
        if self.done and self.held:
            self.on_message(self.held)
            self.held = b""


class InventsData(StreamReceiver):
    """Hands on a marker byte after every event, data or not."""

    def on_readable(self) -> None:
        """Read, then emit ``b"!"``."""
        super().on_readable()
        self.on_message(b"!")


class IgnoresReadiness(StreamReceiver):
    """Never reads: the loop reports the socket readable forever."""

    def on_readable(self) -> None:
        """Do nothing."""


class LetsRecvEagainEscape(StreamReceiver):
    """Lets ``BlockingIOError`` reach the caller as if it were an error."""

    def on_readable(self) -> None:
        """Read once, without catching ``EAGAIN``."""
        data = self.sock.recv(self.recv_size)
        if data:
            self.on_message(data)
        elif not self.done:
            self.done = True
            self.on_eof()


class SpinsOnRecvEagain(StreamReceiver):
    """Retries ``recv`` at once after ``EAGAIN`` instead of waiting."""

    def on_readable(self) -> None:
        """Read until end of file, retrying on ``EAGAIN``."""
        while not self.done:
            try:
                data = self.sock.recv(self.recv_size)
            except BlockingIOError:
                continue
            if not data:
                self.done = True
                self.on_eof()
            else:
                self.on_message(data)


class RetriesRecvTwice(StreamReceiver):
    """Retries ``recv`` up to twice right after ``EAGAIN`` before it waits."""

    def on_readable(self) -> None:
        """Read; on ``EAGAIN`` try twice more, then wait."""
        retries = 0
        while not self.done:
            try:
                data = self.sock.recv(self.recv_size)
            except BlockingIOError:
                retries += 1
                if retries > 2:
                    return
                continue
            if not data:
                self.done = True
                self.on_eof()
            else:
                self.on_message(data)


class SpinsAtEof(StreamReceiver):
    """Keeps reading after end of file, as if ``b""`` were an empty chunk."""

    def on_readable(self) -> None:
        """Read until ``EAGAIN``; an empty read is handed on, not the end."""
        while True:
            try:
                data = self.sock.recv(self.recv_size)
            except BlockingIOError:
                return
            self.on_message(data)


class KeepsTheView(StreamReceiver):
    """Reads into one reused buffer and hands on views of it, not copies."""

    def __init__(self, sock: FakeSocket, on_message: OnMessage, on_eof: OnEof) -> None:
        super().__init__(sock, on_message, on_eof)
        self.buffer = bytearray(self.recv_size)

    def on_readable(self) -> None:
        """``recv_into`` the same buffer; hand on a view of the filled part."""
        while not self.done:
            try:
                n = self.sock.recv_into(self.buffer)
            except BlockingIOError:
                return
            if not n:
                self.done = True
                self.on_eof()
                return
            self.on_message(memoryview(self.buffer)[:n])  # type: ignore[arg-type]


class TLSReceiver(StreamReceiver):
    """Correct over TLS: reads until ``SSLWantReadError``; a want-write waits."""

    want_write = False

    def on_readable(self) -> None:
        """Read everything TLS holds, not just one record; report end of file once."""
        self.want_write = False
        try:
            super().on_readable()
        except ssl.SSLWantReadError:
            return
        except ssl.SSLWantWriteError:
            self.want_write = True

    def on_writable(self) -> None:
        """The stream drained: receive again."""
        self.on_readable()

    @property
    def wants_writable(self) -> bool:
        """Armed while TLS waits to send handshake bytes."""
        return self.want_write


class ReadsOncePerEvent(TLSReceiver):
    """One ``recv`` per readable event: fine over TCP, stalls on ``pending()``."""

    def on_readable(self) -> None:
        """Receive once; the rest of the record waits where no selector sees it."""
        try:
            data = self.sock.recv(self.recv_size)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        if data:
            self.received(data)
        elif not self.done:
            self.done = True
            self.on_eof()


class WantWriteIsEof(TLSReceiver):
    """Takes ``SSLWantWriteError`` for the end of the stream."""

    def on_readable(self) -> None:
        """Read; a want-write ends the stream."""
        try:
            super().on_readable()
        finally:
            if self.want_write and not self.done:
                self.done = True
                self.on_eof()


# -- the catalogue ---------------------------------------------------------
def _line(message: bytes) -> bytes:
    return message + b"\n"


def _crlf(message: bytes) -> bytes:
    return message + b"\r\n"


def _prefixed(message: bytes) -> bytes:
    return struct.pack("!H", len(message)) + message


@final
@attrs.frozen
class Entry:
    """One implementation in the gallery and how the checks judge it.

    Attributes:
        make: the class; it is built around the fake socket.
        verdict: a regular expression the verdict matches (``""`` for a
            correct implementation, which passes).
        encode: for a receiver, how each message is framed (``None``: a plain
            byte stream).
        delimiter: for a receiver, bytes the drawn messages never contain.
        max_buffered: for a sender, the flow-control limit checked.
        tls: whether the check runs over TLS (``tls=True``).
    """

    make: Callable[..., Any]
    verdict: str = ""
    encode: Callable[[bytes], bytes] | None = None
    delimiter: bytes = b""
    max_buffered: int | None = None
    tls: bool = False

    @property
    def name(self) -> str:
        """The class name."""
        return str(self.make.__name__)

    @property
    def is_sender(self) -> bool:
        """Whether the entry is a sender (else a receiver)."""
        return hasattr(self.make, "write")


SENDER_BUGS: Final[tuple[Entry, ...]] = (
    Entry(IgnoresReturnValue, "is the return value ignored"),
    Entry(IgnoresSendmsgReturnValue, "is the return value ignored"),
    Entry(ResendsWholeBuffer, "were sent twice"),
    Entry(PopsBeforeSending, "taken off the queue before it was sent"),
    Entry(SwapsQueueBeforeSending, "taken off the queue before it was sent"),
    Entry(ArmsOnlyAfterEagain, "write interest was never armed"),
    Entry(NeverArms, "write interest was never armed"),
    Entry(StaysArmed, "asks for write readiness with nothing left to send"),
    Entry(SpinsOnEagain, "right after EAGAIN without waiting for readiness"),
    Entry(RetriesTwiceAfterEagain, "right after EAGAIN without waiting for readiness"),
    Entry(SendsWhileWaiting, "right after EAGAIN without waiting for readiness"),
    Entry(GathersPastIovMax, "more than IOV_MAX"),
    Entry(NoFlowControl, "unbounded buffering", max_buffered=300),
    Entry(PausesTooLate, "unbounded buffering", max_buffered=300),
    Entry(SwallowsReset, "swallowed ECONNRESET"),
    Entry(SwallowsBrokenPipe, "swallowed EPIPE"),
    Entry(LetsEagainEscape, "BlockingIOError.* escaped from the sender"),
    Entry(UsesSendall, "BlockingIOError.* escaped from the sender"),
    Entry(SpinsOnEmptyWrite, "no progress"),
    Entry(RetriesAfterReset, "no progress"),
    Entry(SendsNothingOnWritable, "sent nothing: a busy loop on writable"),
    Entry(RequeuesAtTheBackOnEagain, "corrupted|never arrived|lost"),
    Entry(DropsGatherTailAfterCut, "were the bytes dropped"),
    Entry(ClearsQueueAtABoundary, "never arrived|lost"),
    Entry(ClosesOnEagain, "never arrived|lost|EBADF"),
    Entry(WantReadIsFatal, "SSLWantReadError.* escaped from the sender", tls=True),
    Entry(SpinsOnWantRead, "right after SSLWantReadError without waiting", tls=True),
)
"""Buggy senders, with the verdict :func:`~bufkit.testing.check_sender` gives."""

RECEIVER_BUGS: Final[tuple[Entry, ...]] = (
    Entry(
        OneRecvOneMessage, "one recv is not one message", encode=_line, delimiter=b"\n"
    ),
    Entry(
        DropsPartialLine, "never came out|came out as", encode=_line, delimiter=b"\n"
    ),
    Entry(OneLinePerEvent, "never came out", encode=_line, delimiter=b"\n"),
    Entry(
        SearchesOnlyTheNewChunk,
        "never came out|came out as",
        encode=_crlf,
        delimiter=b"\r",
    ),
    Entry(AssumesWholeHeader, "never came out|came out as", encode=_prefixed),
    Entry(SwallowsReceiveReset, "swallowed ECONNRESET"),
    Entry(ReportsEofTwice, "on_eof was called 2 times"),
    Entry(NeverReportsEof, "on_eof was called 0 times"),
    Entry(ShortReadIsEof, "on_eof was called"),
    Entry(DropsLastChunk, "received data: .*(lost|never arrived)"),
    Entry(EofBeforeLastChunk, "after on_eof"),
    Entry(InventsData, "never written"),
    Entry(IgnoresReadiness, "received nothing"),
    Entry(LetsRecvEagainEscape, "BlockingIOError.* escaped from the receiver"),
    Entry(SpinsOnRecvEagain, "right after EAGAIN without waiting for readiness"),
    Entry(RetriesRecvTwice, "right after EAGAIN without waiting for readiness"),
    Entry(SpinsAtEof, "no progress|on_eof was called 0 times"),
    Entry(KeepsTheView, "corrupted"),
    Entry(ReadsOncePerEvent, "stalled with .* bytes read from the socket", tls=True),
    Entry(WantWriteIsEof, "on_eof was called though the stream never", tls=True),
)
"""Buggy receivers, with the verdict :func:`~bufkit.testing.check_receiver` gives."""

CORRECT: Final[tuple[Entry, ...]] = (
    Entry(GatherSender),
    Entry(PausingSender, max_buffered=300),
    Entry(StreamReceiver),
    Entry(LineReceiver, encode=_line, delimiter=b"\n"),
    Entry(CrlfReceiver, encode=_crlf, delimiter=b"\r"),
    Entry(PrefixedReceiver, encode=_prefixed),
    Entry(TLSSender, tls=True),
    Entry(TLSReceiver, tls=True),
)
"""Correct implementations: they pass their checks."""


def find(name: str) -> Entry:
    """Return the entry of the class called ``name``.

    Raises:
        KeyError: if no entry has that name.
    """
    for entry in (*SENDER_BUGS, *RECEIVER_BUGS, *CORRECT):
        if entry.name == name:
            return entry
    raise KeyError(f"no gallery entry named {name!r}")


def run(entry: Entry, *, seed: int | None = None) -> None:
    """Run the check that judges ``entry`` (needs Hypothesis).

    Args:
        entry: a gallery entry.
        seed: fix Hypothesis's seed.

    Raises:
        CheckFailed: the verdict on a buggy implementation.
    """
    __tracebackhide__ = True
    if entry.is_sender:
        check_sender(
            entry.make, max_buffered=entry.max_buffered, seed=seed, tls=entry.tls
        )
        return
    messages = None
    if entry.delimiter:
        from hypothesis import strategies as st

        messages = st.binary(max_size=20).filter(lambda m: entry.delimiter not in m)
    check_receiver(
        entry.make, encode=entry.encode, messages=messages, seed=seed, tls=entry.tls
    )


def verdict(entry: Entry, *, seed: int | None = 0) -> str:
    """Return the first line of the check's verdict on ``entry`` (``""`` if it passes).

    Args:
        entry: a gallery entry.
        seed: fix Hypothesis's seed (fixed by default, so the verdict is the
            same on every run).

    Returns:
        The first line of the :class:`~bufkit.testing.CheckFailed` message.
    """
    try:
        run(entry, seed=seed)
    except CheckFailed as exc:
        return str(exc).partition("\n")[0]
    return ""
