"""A hostile Twisted transport, and ``check_twisted_protocol`` (needs Twisted).

Theory of operation: :class:`HostileTwistedTransport` provides ``ITCPTransport``
and ``IConsumer`` without a reactor. It records ``write``, ``writeSequence``,
``loseWriteConnection``, ``loseConnection`` and ``abortConnection``, answers
``getPeer``/``getHost``, honours ``pauseProducing``/``resumeProducing`` on
itself (the protocol stopping its reads), and, following a
:class:`~bufkit.testing.Cutting`, calls ``pauseProducing()`` on the registered
streaming producer from inside one of the protocol's writes and
``resumeProducing()`` a few deliveries later; a pull producer is asked for data
with ``resumeProducing()`` whenever the transport is not paused. The
connection ends with ``readConnectionLost()`` (half-closeable protocols) or
``connectionLost(Failure(ConnectionDone()))``, or with ``ConnectionLost`` when
the cutting loses it. This is the only module of :mod:`bufkit.testing` that
imports Twisted; its names are public in :mod:`bufkit.testing.twisted`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, final

from twisted.internet import address, error, interfaces
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from bufkit.testing._hostile_core import (
    Outcome,
    Wire,
    check_example,
    check_search,
    prepare,
    run_plain,
)
from bufkit.testing._hostile_cuts import Cutting, _pieces

__all__ = [
    "HostileTwistedTransport",
    "check_twisted_protocol",
    "check_twisted_protocol_example",
    "run_twisted_protocol",
]

_PULL_LIMIT: Final = 10_000  # resumeProducing() calls to a pull producer per poll

ProtocolFactory = Callable[[], Protocol]


@final
@implementer(interfaces.ITCPTransport, interfaces.IConsumer, interfaces.IPushProducer)
class HostileTwistedTransport:
    """A Twisted transport that records writes and pauses producers on a schedule.

    Built by :func:`run_twisted_protocol`; no reactor runs.

    Args:
        cutting: the backpressure schedule to apply.
        respects_backpressure: flag a write made while the registered
            streaming producer is paused.
        peer: what :meth:`getPeer` returns (default ``127.0.0.1:50123``).
        host: what :meth:`getHost` returns (default ``127.0.0.1:8000``).
    """

    def __init__(
        self,
        cutting: Cutting | None = None,
        *,
        respects_backpressure: bool = False,
        peer: address.IPv4Address | None = None,
        host: address.IPv4Address | None = None,
    ) -> None:
        wire = Wire(cutting or Cutting(), respects_backpressure=respects_backpressure)
        wire.pause_name, wire.resume_name = (
            "producer.pauseProducing",
            "producer.resumeProducing",
        )
        wire.on_pause, wire.on_resume = self._pause_producer, self._resume_producer
        self._wire = wire
        self._peer = peer or address.IPv4Address("TCP", "127.0.0.1", 50123)
        self._host = host or address.IPv4Address("TCP", "127.0.0.1", 8000)
        self.producer: Any = None
        self.streaming = False
        self.disconnecting = False
        self.connected = True
        self._nodelay = False
        self._keepalive = False

    # ITransport.

    def write(self, data: bytes) -> None:
        """Record ``data``; maybe pause the producer from inside this call.

        Raises:
            TypeError: if ``data`` is not bytes, like Twisted.
        """
        self._wire.write(_checked(data))

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """Record the buffers as one write.

        Raises:
            TypeError: if a buffer is not bytes, like Twisted.
        """
        self._wire.write(b"".join(_checked(d) for d in data), "writeSequence")

    def loseConnection(self) -> None:
        """Record the close: no more data is delivered."""
        self.disconnecting = True
        self._wire.close("loseConnection()")

    def abortConnection(self) -> None:
        """Record the abort: no more data is delivered."""
        self.disconnecting = True
        self._wire.close("abortConnection()")

    def loseWriteConnection(self) -> None:
        """Record the half-close."""
        self._wire.note("loseWriteConnection()")
        self._wire.eof_written = True

    def getPeer(self) -> address.IPv4Address:
        """The peer's address (see ``peer``)."""
        return self._peer

    def getHost(self) -> address.IPv4Address:
        """This end's address (see ``host``)."""
        return self._host

    def getTcpNoDelay(self) -> bool:
        """The last value set with :meth:`setTcpNoDelay`."""
        return self._nodelay

    def setTcpNoDelay(self, enabled: bool) -> None:
        """Remember the option."""
        self._nodelay = bool(enabled)

    def getTcpKeepAlive(self) -> bool:
        """The last value set with :meth:`setTcpKeepAlive`."""
        return self._keepalive

    def setTcpKeepAlive(self, enabled: bool) -> None:
        """Remember the option."""
        self._keepalive = bool(enabled)

    # IConsumer: the protocol's producer.

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Register the producer that backpressure pauses.

        Raises:
            RuntimeError: if another producer is registered, like Twisted.
        """
        if self.producer is not None:
            raise RuntimeError(
                f"Cannot register producer {producer!r}, because producer "
                f"{self.producer!r} was never unregistered."
            )
        kind = "streaming" if streaming else "pull"
        self._wire.note(f"registerProducer({type(producer).__name__}, {kind})")
        self.producer, self.streaming = producer, bool(streaming)

    def unregisterProducer(self) -> None:
        """Forget the producer."""
        self._wire.note("unregisterProducer()")
        self.producer = None

    def _pause_producer(self) -> bool:
        if self.producer is None or not self.streaming:
            return False
        self.producer.pauseProducing()
        return True

    def _resume_producer(self) -> None:
        if self.producer is not None and self.streaming:
            self.producer.resumeProducing()

    # IPushProducer: the protocol pausing its reads.

    def pauseProducing(self) -> None:
        """Stop delivering data until :meth:`resumeProducing`."""
        self._wire.note("transport.pauseProducing()")
        self._wire.reading_paused = True

    def resumeProducing(self) -> None:
        """Deliver data again."""
        self._wire.note("transport.resumeProducing()")
        self._wire.reading_paused = False

    def stopProducing(self) -> None:
        """Close the connection, as Twisted does."""
        self._wire.note("transport.stopProducing()")
        self.loseConnection()

    # What the toolkit reads.

    @property
    def calls(self) -> list[str]:
        """The transcript so far, one call a line."""
        return list(self._wire.calls)

    def outcome(self) -> Outcome:
        """What the protocol did so far."""
        return self._wire.outcome()


def _checked(data: object) -> bytes:
    if not isinstance(data, bytes):
        raise TypeError(f"Data must be bytes, not {type(data).__name__!r}")
    return data


class _TwistedAdapter:
    """Delivers to a Twisted protocol through a :class:`HostileTwistedTransport`."""

    def __init__(self, transport: HostileTwistedTransport, protocol: Protocol) -> None:
        self.transport = transport
        self.wire = transport._wire
        self.protocol = protocol

    def start(self) -> None:
        self.wire.note("makeConnection(transport)")
        self.wire.guard("connectionMade", self.protocol.makeConnection, self.transport)

    def deliver(self, chunk: bytes) -> None:
        self.wire.note(f"dataReceived({chunk!r})")
        self.wire.guard("dataReceived", self.protocol.dataReceived, chunk)

    def eof(self) -> None:
        wire = self.wire
        if interfaces.IHalfCloseableProtocol.providedBy(self.protocol):
            wire.note("readConnectionLost()")
            wire.guard("readConnectionLost", self.protocol.readConnectionLost)  # type: ignore[attr-defined]
        else:
            wire.close("EOF: the transport closes (the protocol is not half-closeable)")

    def lose(self, exc: BaseException | None) -> None:
        transport, wire = self.transport, self.wire
        transport.connected, transport.disconnecting = False, False
        reason = Failure(self._reason(exc))  # type: ignore[no-untyped-call]
        if transport.producer is not None:
            wire.note("producer.stopProducing()")
            wire.guard("stopProducing", transport.producer.stopProducing)
        wire.note(f"connectionLost(Failure({reason.value!r}))")
        wire.guard("connectionLost", self.protocol.connectionLost, reason)

    def _reason(self, exc: BaseException | None) -> BaseException:
        if isinstance(exc, ConnectionResetError):
            return error.ConnectionLost(str(exc))
        if exc is not None:
            return exc
        if self.wire.ending == "abortConnection()":
            return error.ConnectionAborted()
        return error.ConnectionDone("Connection was closed cleanly.")

    def poll(self) -> None:
        transport, wire = self.transport, self.wire
        for _ in range(_PULL_LIMIT):
            producer = transport.producer
            if producer is None or transport.streaming or wire.write_paused:
                return
            if wire.closing or wire.lost:
                return
            wire.note("producer.resumeProducing()")
            wire.guard("resumeProducing", producer.resumeProducing)


def run_twisted_protocol(
    factory: ProtocolFactory,
    conversation: bytes | Sequence[bytes],
    cutting: Cutting | None = None,
    *,
    eof: bool = True,
    respects_backpressure: bool = False,
) -> Outcome:
    """Play ``conversation`` into a new Twisted protocol through a hostile transport.

    Args:
        factory: makes the protocol (a class, or ``lambda:
            MyFactory().buildProtocol(addr)``).
        conversation: the inbound bytes, or the messages the peer sends.
        cutting: how to cut them and when to push back (default: one
            delivery, no backpressure).
        eof: end with the peer's EOF (otherwise the input just stops).
        respects_backpressure: flag writes made while the registered streaming
            producer is paused.

    Returns:
        What the protocol did, with the transcript of the run.

    Raises:
        CuttingError: if the cutting does not fit the conversation.
    """
    __tracebackhide__ = True
    data, cutting = prepare(conversation, cutting)
    transport = HostileTwistedTransport(
        cutting, respects_backpressure=respects_backpressure
    )
    adapter = _TwistedAdapter(transport, factory())
    run_plain(transport._wire, adapter, data, cutting, eof=eof)
    return transport.outcome()


def check_twisted_protocol(
    factory: ProtocolFactory,
    conversation: bytes | Sequence[bytes],
    *,
    eof: bool = True,
    respects_backpressure: bool = False,
    lose_connection: bool = False,
    max_examples: int = 500,
    seed: int | None = None,
) -> None:
    """Check that a Twisted protocol behaves the same however its input is cut.

    The reference run delivers each message of ``conversation`` in one
    ``dataReceived`` with no backpressure. Hypothesis then draws cuttings (cut
    points down to one byte, pauses of the registered producer at your
    writes, and, if asked, a lost connection) and compares what the protocol
    wrote, how it ended and what it raised. No reactor runs.

    Args:
        factory: makes a fresh protocol for each run.
        conversation: the inbound bytes, or the messages the peer sends.
        eof: end the conversation with the peer's EOF.
        respects_backpressure: the protocol registers a streaming producer
            and promises not to write while it is paused; a write there fails.
        lose_connection: also lose the connection at drawn points (compared
            with a reference run that loses it at the same byte).
        max_examples: how many cuttings Hypothesis draws.
        seed: fix Hypothesis' seed (default: ``--bufkit-seed`` or random).

    Raises:
        CheckFailed: with the problem, the conversation, the smallest cutting
            that shows it, the reference and hostile outputs where they
            differ, a call that reproduces it, and the hostile transcript.
    """
    __tracebackhide__ = True
    pieces = _pieces(conversation)
    options = {"eof": eof, "respects_backpressure": respects_backpressure}
    check_search(
        "check_twisted_protocol",
        "factory",
        _runner(factory, pieces, options),
        pieces,
        options,
        max_examples=max_examples,
        seed=seed,
        lose_connection=lose_connection,
    )


def check_twisted_protocol_example(
    factory: ProtocolFactory,
    conversation: bytes | Sequence[bytes],
    cutting: Cutting,
    *,
    eof: bool = True,
    respects_backpressure: bool = False,
) -> Outcome:
    """Judge one cutting as :func:`check_twisted_protocol` does.

    Args:
        factory: makes a fresh protocol for each run.
        conversation: the inbound bytes, or the messages the peer sends.
        cutting: the cutting to judge.
        eof: end the conversation with the peer's EOF.
        respects_backpressure: flag writes made while the producer is paused.

    Returns:
        The hostile run's outcome, when it matches the reference.

    Raises:
        CheckFailed: as :func:`check_twisted_protocol`.
        CuttingError: if the cutting does not fit the conversation.
    """
    __tracebackhide__ = True
    pieces = _pieces(conversation)
    options = {"eof": eof, "respects_backpressure": respects_backpressure}
    return check_example(
        "check_twisted_protocol",
        "factory",
        _runner(factory, pieces, options),
        pieces,
        cutting,
        options,
    )


def _runner(
    factory: ProtocolFactory,
    pieces: list[bytes],
    options: Mapping[str, bool],
) -> Callable[[Cutting], Outcome]:
    def run(cutting: Cutting) -> Outcome:
        return run_twisted_protocol(
            factory,
            pieces,
            cutting,
            eof=options["eof"],
            respects_backpressure=options["respects_backpressure"],
        )

    return run
