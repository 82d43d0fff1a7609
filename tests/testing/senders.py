"""Senders and receivers for the conformance checks: one right, the rest wrong.

The wrong ones reproduce real bugs (several shipped in asyncio's selector
transport); ``check_sender``/``check_receiver`` must catch each one.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable

from bufkit.testing import IOV_MAX, FakeSocket


class GoodSender:
    """Gathers pending writes into ``sendmsg``, keeps the rest, arms interest."""

    def __init__(self, sock: FakeSocket) -> None:
        self.sock = sock
        self.pending: deque[memoryview] = deque()

    def write(self, data: bytes) -> None:
        """Queue ``data``; try to send at once unless already waiting."""
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
            while sent:
                head = self.pending[0]
                if sent >= len(head):
                    sent -= len(head)
                    self.pending.popleft()
                else:
                    self.pending[0] = head[sent:]
                    sent = 0

    @property
    def wants_writable(self) -> bool:
        """Armed while anything is pending."""
        return bool(self.pending)


class IgnoresReturnValue(GoodSender):
    """Treats every ``send`` as complete (ignores its return value)."""

    def on_writable(self) -> None:
        """Send each buffer once, whatever was accepted."""
        while self.pending:
            try:
                self.sock.send(self.pending[0])
            except BlockingIOError:
                return
            self.pending.popleft()


class ArmedForever(GoodSender):
    """Never disarms write interest: a busy loop on writable."""

    @property
    def wants_writable(self) -> bool:
        """Always armed."""
        return True


class SpinsOnEagain(GoodSender):
    """Retries at once after ``EAGAIN`` instead of waiting for writable."""

    def on_writable(self) -> None:
        """Send until drained, spinning on EAGAIN."""
        while self.pending:
            try:
                super().on_writable()
                return
            except BlockingIOError:  # pragma: no cover - never raised
                continue

    def write(self, data: bytes) -> None:
        """Queue and send everything, retrying on EAGAIN."""
        self.pending.append(memoryview(data))
        while self.pending:
            try:
                sent = self.sock.send(self.pending[0])
            except BlockingIOError:
                continue
            if sent == len(self.pending[0]):
                self.pending.popleft()
            else:
                self.pending[0] = self.pending[0][sent:]


class DropsAfterEagain(GoodSender):
    """Takes a buffer off the queue, then loses it when ``EAGAIN`` comes."""

    def on_writable(self) -> None:
        """Pop, then send; EAGAIN drops the popped buffer."""
        while self.pending:
            head = self.pending.popleft()
            try:
                sent = self.sock.send(head)
            except BlockingIOError:
                return
            if sent < len(head):
                self.pending.appendleft(head[sent:])
                return


class NeverArms(GoodSender):
    """Keeps the unsent rest but arms interest only after EAGAIN (gh-103462)."""

    def __init__(self, sock: FakeSocket) -> None:
        super().__init__(sock)
        self.armed = False

    def on_writable(self) -> None:
        """One ``sendmsg`` per event; arm only when it raised."""
        self.armed = False
        if not self.pending:
            return
        try:
            sent = self.sock.sendmsg(list(self.pending))
        except BlockingIOError:
            self.armed = True
            return
        rest = b"".join(self.pending)[sent:]
        self.pending.clear()
        if rest:
            self.pending.append(memoryview(rest))

    @property
    def wants_writable(self) -> bool:
        """Armed only after an EAGAIN."""
        return self.armed


class LosesBufferOnEagain(GoodSender):
    """Swaps the queue out before ``sendmsg``; EAGAIN loses it (gh-146507)."""

    def on_writable(self) -> None:
        """Take every buffer, send, and forget them on EAGAIN."""
        while self.pending:
            taken, self.pending = self.pending, deque()
            try:
                sent = self.sock.sendmsg(list(taken))
            except BlockingIOError:
                return
            rest = b"".join(taken)[sent:]
            if rest:
                self.pending.append(memoryview(rest))
                return


class TooManyBuffers(GoodSender):
    """Passes every pending buffer to one ``sendmsg``, however many."""

    def write(self, data: bytes) -> None:
        """Queue; send once more than a few writes are pending."""
        self.pending.append(memoryview(data))

    def on_writable(self) -> None:
        """One unbounded gather per event."""
        try:
            sent = self.sock.sendmsg(list(self.pending))
        except BlockingIOError:
            return
        rest = b"".join(self.pending)[sent:]
        self.pending.clear()
        if rest:
            self.pending.append(memoryview(rest))


class LineReceiver:
    """Buffers bytes until a newline, then emits the line without it."""

    def __init__(
        self,
        sock: FakeSocket,
        on_message: Callable[[bytes], object],
        on_eof: Callable[[], object],
    ) -> None:
        self.sock, self.on_message, self.on_eof = sock, on_message, on_eof
        self.buffer = bytearray()
        self.done = False

    recv_size = 4096

    def on_readable(self) -> None:
        """Read until EAGAIN; hand each chunk to ``received``; report EOF once."""
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
        """Buffer ``data``; emit every whole line."""
        self.buffer += data
        while (end := self.buffer.find(b"\n")) >= 0:
            self.on_message(bytes(self.buffer[:end]))
            del self.buffer[: end + 1]


class OneRecvOneMessage(LineReceiver):
    """Assumes that one ``recv`` returns exactly one line."""

    def received(self, data: bytes) -> None:
        """Emit the chunk received as a line, unbuffered."""
        self.on_message(data.rstrip(b"\n"))


class StreamReceiver(LineReceiver):
    """Hands every chunk on as it comes (a plain byte stream)."""

    recv_size = 7

    def received(self, data: bytes) -> None:
        """Hand the chunk on as it is."""
        self.on_message(data)


class SwallowsReset(StreamReceiver):
    """Treats a reset as end of file, hiding the error."""

    def on_readable(self) -> None:
        """Read; turn ConnectionResetError into EOF."""
        try:
            super().on_readable()
        except ConnectionResetError:
            self.done = True
            self.on_eof()


class PausingSender(GoodSender):
    """A correct sender with flow control: paused above 300 pending bytes."""

    @property
    def paused(self) -> bool:
        """Whether the producer must stop writing."""
        return sum(len(view) for view in self.pending) > 300


class RetriesWholeBuffer(GoodSender):
    """After a partial send, sends the whole buffer again."""

    def on_writable(self) -> None:
        """Send the head; on a partial send, keep all of it."""
        while self.pending:
            try:
                sent = self.sock.send(self.pending[0])
            except BlockingIOError:
                return
            if sent < len(self.pending[0]):
                return
            self.pending.popleft()
