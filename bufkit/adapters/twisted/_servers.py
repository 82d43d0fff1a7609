"""The reference protocols of :mod:`bufkit.servers`, as Twisted protocols.

Theory of operation: ``bufkit serve --loop twisted`` runs these on bufkit
transports. Each registers itself as the streaming producer of its transport,
so the transport pauses it when the write queue passes its high watermark
and resumes it at the low watermark; a paused protocol stops reading
(docs/design.md invariant 3: no read while the peer does not read).
:class:`Fanout` owes its replies and writes them only while not paused, one
batch per reactor call. :class:`Echo` and :class:`Discard` take the pooled
view (:class:`~bufkit.adapters.twisted.IViewReceiver`): Echo hands the
buffer itself to the write queue, Discard drops it, neither copies.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from twisted.internet import protocol
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.protocols.basic import LineReceiver
from twisted.python import failure
from zope.interface import implementer

from bufkit.adapters.twisted._transport import IViewReceiver
from bufkit.servers import FANOUT_REPLIES, FANOUT_REPLY_SIZE, LINE_MAX

__all__ = ["Discard", "Echo", "Fanout", "LineEcho"]

LOGGER: Final = logging.getLogger("bufkit.servers")

_FANOUT_CHUNK: Final = b"x" * (FANOUT_REPLY_SIZE - 1) + b"\n"
_FANOUT_BATCH: Final = 65536 // FANOUT_REPLY_SIZE


def _log_closed(transport: Any) -> None:
    if LOGGER.isEnabledFor(logging.INFO):  # what `bufkit serve` shows
        conn = transport.connection
        LOGGER.info("closed %r after %d bytes in", conn, conn.bytes_received)


@implementer(IPushProducer)
class _Paced(protocol.Protocol):
    """Registers itself as its transport's push producer; pausing stops reading."""

    transport: Any

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)

    def pauseProducing(self) -> None:
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.transport.resumeProducing()

    def stopProducing(self) -> None:
        """The transport is going: nothing to stop."""

    def connectionLost(self, reason: failure.Failure = protocol.connectionDone) -> None:
        _log_closed(self.transport)


@implementer(IViewReceiver)
class Echo(_Paced):
    """Send every received byte back: the pooled buffer goes to the write queue."""

    def viewReceived(self, view: memoryview) -> None:
        """Forward the buffer behind ``view`` by ownership."""
        conn = self.transport.connection
        conn.write(conn.take_buffer(), nbytes=len(view))


@implementer(IViewReceiver)
class Discard(_Paced):
    """Read and drop everything."""

    def viewReceived(self, view: memoryview) -> None:
        """Drop the bytes."""


@implementer(IHalfCloseableProtocol)
class Fanout(_Paced):
    """Reply to each request byte with 32 separate 100-byte writes.

    The replies are owed, not queued: written while the transport has not
    paused this producer, 64 KiB per reactor call at most, the rest after
    ``resumeProducing``. After the peer's end of file the connection closes
    once every reply owed was written.

    Args:
        reactor: Runs the next batch (``callLater(0, ...)``).
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._owed = 0
        self._paused = False
        self._due = False
        self._eof = False

    def dataReceived(self, data: bytes) -> None:
        """Owe 32 writes per byte received; write a batch."""
        self._owed += len(data) * FANOUT_REPLIES
        self._produce()

    def pauseProducing(self) -> None:
        """Stop writing and reading."""
        self._paused = True
        super().pauseProducing()

    def resumeProducing(self) -> None:
        """Read again, and write on what is owed from the next reactor call."""
        self._paused = False
        super().resumeProducing()
        if self._owed:
            self._later()

    def readConnectionLost(self) -> None:
        """The peer is done sending: close once nothing is owed."""
        self._eof = True
        if not self._owed:
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        """Never asked for: Fanout does not half-close."""

    def _produce(self) -> None:
        transport = self.transport
        if transport is None or not transport.connected or transport.disconnecting:
            return
        write = transport.write
        owed = self._owed
        batch = _FANOUT_BATCH
        # pauseProducing runs inside the write that crosses the high watermark.
        while batch and owed and not self._paused:
            write(_FANOUT_CHUNK)
            owed -= 1
            batch -= 1
        self._owed = owed
        if owed and not self._paused:
            self._later()
        elif not owed and self._eof:
            transport.loseConnection()

    def _later(self) -> None:
        if not self._due:
            self._due = True
            self._reactor.callLater(0, self._scheduled)

    def _scheduled(self) -> None:
        self._due = False
        self._produce()


@implementer(IPushProducer)
class LineEcho(LineReceiver):
    """Echo each newline-terminated line; a line over ``LINE_MAX`` aborts."""

    transport: Any
    delimiter = b"\n"
    MAX_LENGTH = LINE_MAX

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)

    def lineReceived(self, line: bytes) -> None:
        """Send the line back."""
        self.sendLine(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        """The peer's fault: one log line, and the connection is aborted."""
        LOGGER.info("line-echo: aborting a connection: a line over %d bytes", LINE_MAX)
        self.transport.abortConnection()

    def stopProducing(self) -> None:
        """The transport is going: nothing to stop."""

    def connectionLost(self, reason: failure.Failure = protocol.connectionDone) -> None:
        _log_closed(self.transport)
