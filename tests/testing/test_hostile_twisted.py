"""The hostile Twisted transport: no reactor, bugs caught, LineReceiver passes."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from twisted.internet import error, interfaces
from twisted.internet.protocol import Protocol, connectionDone
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from bufkit.testing import (
    CheckFailed,
    Cutting,
    Pause,
)
from bufkit.testing.twisted import (
    HostileTwistedTransport,
    check_twisted_protocol,
    check_twisted_protocol_example,
    run_twisted_protocol,
)


def _out(protocol: Protocol) -> Any:
    """The protocol's transport (untyped: Twisted's interfaces need a mypy plugin)."""
    return protocol.transport


CONVERSATION = [b"hello\r\n", b"world\r\n", b"bye\r\n"]
SEED = 0  # a fixed search, so each bug is caught on every run


class UpperPerRead(Protocol):
    """The classic bug: each ``dataReceived`` is taken to be one whole line."""

    def dataReceived(self, data: bytes) -> None:
        _out(self).write(data.strip().upper() + b"\r\n")


class Echo(LineReceiver):
    """Twisted's own line framing, echoing each line."""

    def lineReceived(self, line: bytes) -> None:
        self.sendLine(line)  # type: ignore[no-untyped-call]


class ProducingEcho(Echo):
    """A LineReceiver registered as its transport's streaming producer."""

    def connectionMade(self) -> None:
        _out(self).registerProducer(self, True)


class DeafProducer(Protocol):
    """Registers as a producer, then writes even while paused."""

    paused = False

    def connectionMade(self) -> None:
        _out(self).registerProducer(self, True)

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        pass

    def dataReceived(self, data: bytes) -> None:
        for byte in data:
            _out(self).write(bytes([byte]))


def test_catches_one_line_per_data_received() -> None:
    """A protocol that assumes one line per read fails, at the smallest cut."""
    with pytest.raises(CheckFailed) as info:
        check_twisted_protocol(UpperPerRead, CONVERSATION, seed=SEED)
    text = str(info.value)
    assert text.startswith("check_twisted_protocol: the protocol's behaviour depends")
    assert "Cutting(cuts=(1,))" in text
    assert "reference output (19 bytes): b'HELLO\\r\\nWORLD\\r\\nBYE\\r\\n'" in text
    assert "dataReceived(b'h')" in text
    assert "check_twisted_protocol_example(factory, " in text


def test_line_receiver_echo_passes_thousands_of_cuttings() -> None:
    """Twisted's LineReceiver echo passes 2,000 cuttings, losses included."""
    check_twisted_protocol(Echo, CONVERSATION, lose_connection=True, max_examples=2000)


def test_line_receiver_as_producer_respects_backpressure() -> None:
    """A LineReceiver registered as producer writes nothing while paused."""
    check_twisted_protocol(
        ProducingEcho, CONVERSATION, respects_backpressure=True, max_examples=1000
    )


def test_catches_producer_that_ignores_pause() -> None:
    """A producer that writes after ``pauseProducing`` is caught."""
    with pytest.raises(CheckFailed) as info:
        check_twisted_protocol(
            DeafProducer, CONVERSATION, respects_backpressure=True, seed=SEED
        )
    text = str(info.value)
    assert "came while writing was paused" in text
    assert "producer.pauseProducing()" in text
    assert "Cutting(cuts=(1,), pauses=(Pause(at_write=0, hold=1),))" in text


def test_pause_without_producer_is_not_a_violation() -> None:
    """With no producer registered, there is nobody to pause: no violation."""
    outcome = run_twisted_protocol(
        Echo,
        CONVERSATION,
        Cutting(pauses=(Pause(at_write=0, hold=2),)),
        respects_backpressure=True,
    )
    assert outcome.problems == ()
    assert "     (nobody to tell: no producer is registered)" in outcome.calls


def test_reproduce_call_fails_the_same_way() -> None:
    """``check_twisted_protocol_example`` reproduces a reported cutting."""
    with pytest.raises(CheckFailed, match=r"Cutting\(cuts=\(3,\)\)"):
        check_twisted_protocol_example(UpperPerRead, CONVERSATION, Cutting(cuts=(3,)))


def test_connection_lost_reasons() -> None:
    """EOF ends with ConnectionDone; a loss with ConnectionLost."""
    done = run_twisted_protocol(Echo, b"a\r\n")
    assert done.calls[-1].startswith("connectionLost(Failure(ConnectionDone(")
    lost = run_twisted_protocol(Echo, b"a\r\nb", Cutting(lost_at=4))
    assert lost.calls[-1].startswith("connectionLost(Failure(ConnectionLost(")
    assert lost.output == b"a\r\n"


class Aborts(Protocol):
    """Aborts on the first byte."""

    reason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        _out(self).abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.reason = reason


def test_abort_stops_delivery_and_reports_aborted() -> None:
    """``abortConnection`` stops delivery; ``connectionLost`` gets ConnectionAborted."""
    protocols: list[Aborts] = []

    def make() -> Aborts:
        protocols.append(Aborts())
        return protocols[-1]

    outcome = run_twisted_protocol(make, b"abc", Cutting(cuts=(1,)))
    assert outcome.ending == "abortConnection()"
    assert "dataReceived(b'bc')" not in outcome.calls
    reason = protocols[0].reason
    assert reason is not None
    assert reason.check(error.ConnectionAborted)  # type: ignore[no-untyped-call]


@implementer(interfaces.IHalfCloseableProtocol)
class HalfClose(Echo):
    """Answers the peer's EOF with a last line, then closes."""

    def readConnectionLost(self) -> None:
        self.sendLine(b"END")  # type: ignore[no-untyped-call]
        _out(self).loseConnection()

    def writeConnectionLost(self) -> None:
        pass


def test_half_closeable_protocol_gets_read_connection_lost() -> None:
    """A half-closeable protocol gets ``readConnectionLost`` and may still write."""
    outcome = run_twisted_protocol(HalfClose, b"a\r\n")
    assert outcome.output == b"a\r\nEND\r\n"
    assert outcome.ending == "loseConnection()"
    assert "readConnectionLost()" in outcome.calls


class Pulls(Protocol):
    """Sends three pieces through a pull producer."""

    def connectionMade(self) -> None:
        self.left = [b"one", b"two", b"three"]
        _out(self).registerProducer(self, False)

    def resumeProducing(self) -> None:
        _out(self).write(self.left.pop(0))
        if not self.left:
            _out(self).unregisterProducer()

    def stopProducing(self) -> None:
        pass


def test_pull_producer_is_asked_for_data() -> None:
    """A pull producer gets ``resumeProducing`` until it unregisters."""
    outcome = run_twisted_protocol(Pulls, b"x")
    assert outcome.output == b"onetwothree"
    assert outcome.calls.count("producer.resumeProducing()") == 3


def test_transport_answers_like_tcp() -> None:
    """Addresses, options, and a second producer refused like Twisted."""
    transport = HostileTwistedTransport()
    assert (transport.getPeer().host, transport.getHost().port) == ("127.0.0.1", 8000)
    transport.setTcpNoDelay(True)
    assert transport.getTcpNoDelay()
    assert interfaces.ITCPTransport.providedBy(transport)
    transport.registerProducer(object(), True)
    with pytest.raises(RuntimeError, match="never unregistered"):
        transport.registerProducer(object(), True)
    with pytest.raises(TypeError, match="not 'str'"):
        transport.write("text")  # type: ignore[arg-type]


def test_twisted_names_live_in_their_own_module() -> None:
    """The Twisted names are public in ``bufkit.testing.twisted`` only."""
    import bufkit.testing.twisted

    assert check_twisted_protocol.__module__ == "bufkit.testing.twisted"
    assert HostileTwistedTransport.__module__ == "bufkit.testing.twisted"
    assert set(bufkit.testing.twisted.__all__) == {
        "HostileTwistedTransport",
        "check_twisted_protocol",
        "check_twisted_protocol_example",
        "run_twisted_protocol",
    }
    assert not set(bufkit.testing.twisted.__all__) & set(bufkit.testing.__all__)
    with pytest.raises(AttributeError, match="no attribute 'check_twisted_protocol'"):
        bufkit.testing.check_twisted_protocol  # type: ignore[attr-defined]  # noqa: B018


def test_star_import_works_without_twisted() -> None:
    """With Twisted unimportable, ``from bufkit.testing import *`` still works."""
    code = (
        "import sys; sys.modules['twisted'] = None; sys.modules['zope'] = None\n"
        "from bufkit.testing import *\n"
        "import bufkit.testing\n"
        "assert len(bufkit.testing.__all__) > 50, bufkit.testing.__all__\n"
        "names = dir()\n"
        "assert all(name in names for name in bufkit.testing.__all__)\n"
        "try:\n"
        "    import bufkit.testing.twisted\n"
        "except ImportError:\n"
        "    print('no twisted')\n"
    )
    assert _python(code) == "no twisted"


def test_import_does_not_load_twisted() -> None:
    """``import bufkit.testing`` imports neither Twisted nor Hypothesis."""
    code = (
        "import sys, bufkit.testing; "
        "print([m for m in sys.modules "
        "if m.split('.')[0] in ('twisted', 'zope', 'hypothesis')])"
    )
    assert _python(code) == "[]"


def _python(code: str) -> str:
    """What a fresh interpreter running ``code`` prints, stripped."""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()
