"""The Twisted adapter: unmodified Twisted protocols on bufkit transports.

Every test runs a fresh reactor (epoll, and asyncio's where it matters) on
127.0.0.1, bounded in time by the support module's ``run``.
"""

from __future__ import annotations

import gc
import socket
import struct
import weakref
from typing import Any, ClassVar, cast

import pytest

pytest.importorskip("twisted")

from twisted.internet import address, defer, error, protocol
from twisted.internet.endpoints import clientFromString, serverFromString
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
)
from twisted.protocols import amp, portforward
from twisted.protocols.basic import Int32StringReceiver, LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from bufkit import BufferPool
from bufkit.adapters.twisted import (
    ClientEndpoint,
    IViewReceiver,
    ListeningPort,
    ServerEndpoint,
    Transport,
    connect_tcp,
    listen_tcp,
)
from tests.adapters._twisted_support import REACTORS, fresh_reactor, run, sleep

pytestmark = pytest.mark.timeout(60)


class Upper(LineReceiver):
    """Answers each line in upper case."""

    transport: Any
    factory: Any

    MAX_LENGTH = 1 << 20

    def lineReceived(self, line: bytes) -> None:
        self.sendLine(line.upper())


class Lines(LineReceiver):
    """Sends lines and collects the answers; fires ``factory.done`` at ``want``."""

    transport: Any
    factory: Any

    MAX_LENGTH = 1 << 20
    want = 0
    lines: tuple[bytes, ...] = ()

    def connectionMade(self) -> None:
        self.got: list[bytes] = []
        for line in self.lines:
            self.sendLine(line)

    def lineReceived(self, line: bytes) -> None:
        self.got.append(line)
        if len(self.got) == self.want:
            self.factory.done.callback(self.got)
            self.transport.loseConnection()


def lines_factory(lines: list[bytes]) -> Any:
    """A client factory whose ``done`` fires with the answers to ``lines``."""
    factory = protocol.ClientFactory.forProtocol(Lines)
    factory.protocol = type("L", (Lines,), {"want": len(lines), "lines": tuple(lines)})
    factory.done = defer.Deferred()  # type: ignore[attr-defined]
    return factory


@pytest.mark.parametrize("kind", REACTORS)
def test_line_receiver_round_trip(kind: str) -> None:
    """A LineReceiver server and client, both on bufkit transports, exchange lines."""
    lines = [b"line %d " % i + b"x" * i for i in range(200)]
    with fresh_reactor(kind) as reactor:

        async def main() -> list[bytes]:
            port = listen_tcp(
                reactor, 0, protocol.Factory.forProtocol(Upper), interface="127.0.0.1"
            )
            client = lines_factory(lines)
            await connect_tcp(reactor, "127.0.0.1", port.getHost().port, client)
            got: list[bytes] = await client.done
            await port.stopListening()
            return got

        assert run(reactor, main) == [line.upper() for line in lines]


class Sum(Int32StringReceiver):
    """Answers each string with its length and byte sum, as a string."""

    transport: Any
    factory: Any

    MAX_LENGTH = 2 << 20

    def stringReceived(self, string: bytes) -> None:
        self.sendString(struct.pack("!II", len(string), sum(string)))


class Strings(Int32StringReceiver):
    """Sends strings of many sizes and collects the answers."""

    transport: Any
    factory: Any

    MAX_LENGTH = 2 << 20

    def connectionMade(self) -> None:
        self.got: list[tuple[int, int]] = []
        for size in self.factory.sizes:
            self.sendString(bytes(i % 251 for i in range(size)))

    def stringReceived(self, string: bytes) -> None:
        self.got.append(struct.unpack("!II", string))
        if len(self.got) == len(self.factory.sizes):
            self.factory.done.callback(self.got)
            self.transport.loseConnection()


def test_int32_string_receiver_large_and_small_strings() -> None:
    """Int32StringReceiver frames of 0 B to 1 MiB arrive whole through pooled reads."""
    sizes = [0, 1, 5, 2047, 2048, 2049, 65536, 200_000, 1 << 20, 3]
    with fresh_reactor("epoll") as reactor:

        async def main() -> list[tuple[int, int]]:
            port = listen_tcp(
                reactor, 0, protocol.Factory.forProtocol(Sum), interface="127.0.0.1"
            )
            factory = protocol.ClientFactory.forProtocol(Strings)
            factory.sizes = sizes  # type: ignore[attr-defined]
            factory.done = defer.Deferred()  # type: ignore[attr-defined]
            await connect_tcp(reactor, "127.0.0.1", port.getHost().port, factory)
            got: list[tuple[int, int]] = await factory.done  # type: ignore[attr-defined]
            await port.stopListening()
            return got

        expected = [(n, sum(i % 251 for i in range(n))) for n in sizes]
        assert run(reactor, main) == expected


class Add(amp.Command):
    """An AMP command: add two integers."""

    arguments: ClassVar = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response: ClassVar = [(b"total", amp.Integer())]


class Adder(amp.AMP):
    """Answers Add, on either side."""

    transport: Any
    factory: Any

    @Add.responder
    def add(self, a: int, b: int) -> dict[str, int]:
        return {"total": a + b}


def test_amp_calls_both_ways() -> None:
    """AMP commands go client to server and server to client over the adapter."""
    with fresh_reactor("epoll") as reactor:
        servers: list[Adder] = []

        def build(addr: object) -> Adder:
            server = Adder()
            servers.append(server)
            return server

        async def main() -> tuple[int, int]:
            factory = protocol.Factory()
            factory.buildProtocol = build  # type: ignore[method-assign]
            port = listen_tcp(reactor, 0, factory, interface="127.0.0.1")
            client = await ClientEndpoint(
                reactor, "127.0.0.1", port.getHost().port
            ).connect(protocol.Factory.forProtocol(Adder))
            up = await client.callRemote(Add, a=2, b=40)
            down = await servers[0].callRemote(Add, a=1000, b=337)
            client.transport.loseConnection()
            await port.stopListening()
            return up["total"], down["total"]

        assert run(reactor, main) == (42, 1337)


def test_portforward_proxy_on_the_adapter() -> None:
    """Twisted's port forwarder, listening on the adapter, relays to an echo server."""
    payload = bytes(range(256)) * 1024
    with fresh_reactor("epoll") as reactor:

        class Echo(protocol.Protocol):
            transport: Any
            factory: Any

            def dataReceived(self, data: bytes) -> None:
                self.transport.write(data)

        class Collect(protocol.Protocol):
            transport: Any
            factory: Any

            def connectionMade(self) -> None:
                self.buf = bytearray()
                self.transport.write(payload)

            def dataReceived(self, data: bytes) -> None:
                self.buf += data
                if len(self.buf) >= len(payload):
                    self.factory.done.callback(bytes(self.buf))
                    self.transport.loseConnection()

        async def main() -> bytes:
            echo = reactor.listenTCP(
                0, protocol.Factory.forProtocol(Echo), interface="127.0.0.1"
            )
            forwarder = portforward.ProxyFactory("127.0.0.1", echo.getHost().port)
            # The forwarder dials upstream with its class's reactor (the global
            # one unless set): point it at this test's reactor.
            forwarder.protocol = type(  # type: ignore[assignment]
                "Server", (portforward.ProxyServer,), {"reactor": reactor}
            )
            proxy = listen_tcp(reactor, 0, forwarder, interface="127.0.0.1")
            factory = protocol.ClientFactory.forProtocol(Collect)
            factory.done = defer.Deferred()  # type: ignore[attr-defined]
            reactor.connectTCP("127.0.0.1", proxy.getHost().port, factory)
            got: bytes = await factory.done  # type: ignore[attr-defined]
            await proxy.stopListening()
            await echo.stopListening()
            return got

        assert run(reactor, main) == payload


@implementer(IHalfCloseableProtocol)
class CountThenAnswer(protocol.Protocol):
    """Counts bytes until the peer half-closes, then answers with the count."""

    transport: Any
    factory: Any

    def connectionMade(self) -> None:
        self.count = 0
        self.events: list[str] = []
        self.factory.servers.append(self)

    def dataReceived(self, data: bytes) -> None:
        self.count += len(data)

    def readConnectionLost(self) -> None:
        self.events.append("read lost")
        self.transport.write(b"%d" % self.count)
        self.transport.loseWriteConnection()

    def writeConnectionLost(self) -> None:
        self.events.append("write lost")

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.events.append(f"lost {type(reason.value).__name__}")


@implementer(IHalfCloseableProtocol)
class SendThenHalfClose(protocol.Protocol):
    """Sends a payload, half-closes, and collects the answer until the end."""

    transport: Any
    factory: Any

    def connectionMade(self) -> None:
        self.buf = b""
        self.transport.write(b"z" * 300_000)
        self.transport.loseWriteConnection()

    def dataReceived(self, data: bytes) -> None:
        self.buf += data

    def readConnectionLost(self) -> None:
        self.factory.done.callback(self.buf)
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass


def test_half_close_exchange() -> None:
    """Both sides half-close in turn: data after the peer's EOF still arrives."""
    with fresh_reactor("epoll") as reactor:
        server_factory = protocol.Factory.forProtocol(CountThenAnswer)
        server_factory.servers = []  # type: ignore[attr-defined]

        async def main() -> bytes:
            port = listen_tcp(reactor, 0, server_factory, interface="127.0.0.1")
            factory = protocol.ClientFactory.forProtocol(SendThenHalfClose)
            factory.done = defer.Deferred()  # type: ignore[attr-defined]
            await connect_tcp(reactor, "127.0.0.1", port.getHost().port, factory)
            got: bytes = await factory.done  # type: ignore[attr-defined]
            await sleep(reactor, 0.05)
            await port.stopListening()
            return got

        assert run(reactor, main) == b"300000"
        (server,) = server_factory.servers  # type: ignore[attr-defined]
        assert server.events == ["read lost", "write lost", "lost ConnectionDone"]


@pytest.mark.parametrize("direction", ["twisted-client", "twisted-server"])
def test_interop_with_twisteds_own_tcp_transport(direction: str) -> None:
    """Twisted's own TCP transport talks to a bufkit transport, either way round."""
    lines = [b"abc", b"", b"x" * 70_000, b"tail"]
    with fresh_reactor("epoll") as reactor:

        async def main() -> list[bytes]:
            client = lines_factory(lines)
            factory = protocol.Factory.forProtocol(Upper)
            if direction == "twisted-client":
                port: Any = listen_tcp(reactor, 0, factory, interface="127.0.0.1")
                reactor.connectTCP("127.0.0.1", port.getHost().port, client)
            else:
                port = reactor.listenTCP(0, factory, interface="127.0.0.1")
                await connect_tcp(reactor, "127.0.0.1", port.getHost().port, client)
            got: list[bytes] = await client.done
            await port.stopListening()
            return got

        assert run(reactor, main) == [line.upper() for line in lines]


def test_string_endpoints_through_the_plugin() -> None:
    """serverFromString / clientFromString find the bufkit-tcp plugin."""
    with fresh_reactor("epoll") as reactor:
        server = serverFromString(reactor, "bufkit-tcp:0:interface=127.0.0.1")
        assert isinstance(server, ServerEndpoint)

        async def main() -> tuple[list[bytes], bool]:
            port = await server.listen(protocol.Factory.forProtocol(Upper))
            where = f"bufkit-tcp:host=127.0.0.1:port={port.getHost().port}"
            client_endpoint = clientFromString(reactor, where)
            assert isinstance(client_endpoint, ClientEndpoint)
            client = lines_factory([b"via plugin"])
            proto = await client_endpoint.connect(client)
            got: list[bytes] = await client.done
            await port.stopListening()
            return got, isinstance(proto.transport, Transport)

        assert run(reactor, main) == ([b"VIA PLUGIN"], True)


def test_client_endpoint_refused_and_timeout() -> None:
    """A refused connect fails the Deferred with ConnectError, and closes the socket."""
    with fresh_reactor("epoll") as reactor:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
        probe.close()

        async def main() -> type[BaseException]:
            try:
                await ClientEndpoint(reactor, "127.0.0.1", free_port).connect(
                    protocol.Factory.forProtocol(protocol.Protocol)
                )
            except error.ConnectError as exc:
                return type(exc)
            raise AssertionError("connected to a closed port")

        assert issubclass(run(reactor, main), error.ConnectError)


class Recorder(protocol.Protocol):
    """Records the reason of connectionLost into ``factory.reasons``."""

    transport: Any
    factory: Any

    def connectionMade(self) -> None:
        self.factory.made.callback(self)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        # A Failure given to callback() would errback: hand it over in a list.
        self.factory.lost.callback([reason])


def recorder_factory() -> Any:
    """A server factory whose ``made`` and ``lost`` Deferreds report one connection."""
    factory = protocol.Factory.forProtocol(Recorder)
    factory.made = defer.Deferred()  # type: ignore[attr-defined]
    factory.lost = defer.Deferred()  # type: ignore[attr-defined]
    return factory


@pytest.mark.parametrize(
    ("ending", "reason"),
    [
        ("client-closes", error.ConnectionDone),
        ("client-resets", error.ConnectionLost),
        ("server-aborts", error.ConnectionAborted),
        ("server-loses", error.ConnectionDone),
    ],
)
def test_connection_lost_reasons_are_twisteds(ending: str, reason: type) -> None:
    """connectionLost gets the reason Twisted's own transports give for each ending."""
    with fresh_reactor("epoll") as reactor:
        factory = recorder_factory()

        async def main() -> Any:
            port = listen_tcp(reactor, 0, factory, interface="127.0.0.1")
            peer = socket.create_connection(("127.0.0.1", port.getHost().port))
            server: Recorder = await factory.made
            if ending == "client-resets":
                peer.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                peer.close()
            elif ending == "client-closes":
                peer.close()
            elif ending == "server-aborts":
                server.transport.write(b"dropped")
                server.transport.abortConnection()
            else:
                server.transport.loseConnection()
            (lost,) = await factory.lost
            peer.close()
            await port.stopListening()
            return type(lost.value)

        assert run(reactor, main) is reason


class Streamer:
    """A streaming producer that writes chunks while not paused."""

    def __init__(self, transport: Any, chunks: int) -> None:
        self.transport = transport
        self.left = chunks
        self.paused = False
        self.pauses = 0
        self.max_pending = 0
        self.stopped = False

    def resumeProducing(self) -> None:
        self.paused = False
        while not self.paused and self.left:
            self.left -= 1
            self.transport.write(b"p" * 16384)
            pending = self.transport.connection.pending_bytes
            self.max_pending = max(self.max_pending, pending)
        if not self.left:
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    def pauseProducing(self) -> None:
        self.paused = True
        self.pauses += 1

    def stopProducing(self) -> None:
        self.stopped = True


class Puller:
    """A pull producer: one chunk per resumeProducing, then it unregisters."""

    def __init__(self, transport: Any, chunks: int) -> None:
        self.transport = transport
        self.left = chunks
        self.calls = 0

    def resumeProducing(self) -> None:
        self.calls += 1
        if self.left:
            self.left -= 1
            self.transport.write(b"q" * 50_000)
        else:
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    def stopProducing(self) -> None:
        pass


@pytest.mark.parametrize("streaming", [True, False])
def test_producers_are_paced_by_the_write_queue(streaming: bool) -> None:
    """A slow reader pauses a push producer; a pull producer is asked once per drain."""
    chunks = 200
    with fresh_reactor("epoll") as reactor:
        factory = recorder_factory()
        producers: list[Any] = []

        async def main() -> int:
            port = listen_tcp(reactor, 0, factory, interface="127.0.0.1")
            peer = socket.socket()
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            peer.connect(("127.0.0.1", port.getHost().port))
            server: Recorder = await factory.made
            handle = server.transport.getHandle()
            handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            producer: Any = (Streamer if streaming else Puller)(
                server.transport, chunks
            )
            producers.append(producer)
            server.transport.registerProducer(producer, streaming)
            if streaming:
                producer.resumeProducing()
            await sleep(reactor, 0.2)  # the reader is slow: nothing read yet
            peer.setblocking(False)
            total = 0
            while True:
                try:
                    data = peer.recv(1 << 20)
                except BlockingIOError:
                    await sleep(reactor, 0.002)
                    continue
                if not data:
                    break
                total += len(data)
            await factory.lost
            peer.close()
            await port.stopListening()
            return total

        size = 16384 if streaming else 50_000
        assert run(reactor, main) == chunks * size
        (producer,) = producers
        if streaming:
            assert producer.pauses >= 1
            assert producer.max_pending <= 65536 + 16384
        else:
            assert producer.calls == chunks + 1


def test_registering_a_second_producer_is_refused() -> None:
    """A second registerProducer raises RuntimeError, as Twisted's transports do."""
    with fresh_reactor("epoll") as reactor:
        factory = recorder_factory()

        async def main() -> str:
            port = listen_tcp(reactor, 0, factory, interface="127.0.0.1")
            peer = socket.create_connection(("127.0.0.1", port.getHost().port))
            server: Recorder = await factory.made
            server.transport.registerProducer(Streamer(server.transport, 0), True)
            message = ""
            try:
                server.transport.registerProducer(Streamer(server.transport, 0), True)
            except RuntimeError as exc:
                message = str(exc)
            server.transport.loseConnection()
            await factory.lost
            peer.close()
            await port.stopListening()
            return message

        assert "was never unregistered" in run(reactor, main)


@implementer(IViewReceiver)
class ViewCounter(protocol.Protocol):
    """Takes views instead of bytes and records their types and lengths."""

    transport: Any
    factory: Any

    def connectionMade(self) -> None:
        self.kinds: set[type] = set()
        self.total = 0
        self.factory.made.callback(self)

    def viewReceived(self, view: memoryview) -> None:
        self.kinds.add(type(view))
        self.total += len(view)
        if self.total >= 100_000:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        # A Failure given to callback() would errback: hand it over in a list.
        self.factory.lost.callback([reason])


def test_view_receivers_get_pooled_views_and_the_pool_gets_them_back() -> None:
    """An IViewReceiver gets memoryviews, and every buffer goes back to the pool."""
    pool = BufferPool()
    with fresh_reactor("epoll") as reactor:
        factory: Any = protocol.Factory.forProtocol(ViewCounter)
        factory.made = defer.Deferred()
        factory.lost = defer.Deferred()

        async def main() -> ViewCounter:
            port = listen_tcp(reactor, 0, factory, interface="127.0.0.1", pool=pool)
            peer = socket.create_connection(("127.0.0.1", port.getHost().port))
            server: ViewCounter = await factory.made
            peer.sendall(b"v" * 100_000)
            await factory.lost
            peer.close()
            await port.stopListening()
            return server

        server = run(reactor, main)
        assert server.kinds == {memoryview}
        assert server.total == 100_000
        assert pool.stats().bytes_in_use == 0


def test_push_producer_side_pauses_reading() -> None:
    """pauseProducing on the transport stops dataReceived until resumeProducing."""
    with fresh_reactor("epoll") as reactor:

        class Counter(protocol.Protocol):
            transport: Any
            factory: Any

            def connectionMade(self) -> None:
                self.count = 0
                self.transport.pauseProducing()
                self.factory.made.callback(self)

            def dataReceived(self, data: bytes) -> None:
                self.count += len(data)

        factory: Any = protocol.Factory.forProtocol(Counter)
        factory.made = defer.Deferred()

        async def main() -> tuple[int, int]:
            port = listen_tcp(reactor, 0, factory, interface="127.0.0.1")
            peer = socket.create_connection(("127.0.0.1", port.getHost().port))
            server: Any = await factory.made
            peer.sendall(b"r" * 5000)
            await sleep(reactor, 0.1)
            while_paused = server.count
            server.transport.resumeProducing()
            await sleep(reactor, 0.1)
            after = server.count
            server.transport.loseConnection()
            peer.close()
            await port.stopListening()
            return while_paused, after

        assert run(reactor, main) == (0, 5000)


def test_idle_connections_hold_no_pool_bytes() -> None:
    """200 idle connections after one exchange each hold 0 pool bytes."""
    pool = BufferPool()
    with fresh_reactor("epoll") as reactor:

        async def main() -> tuple[int, int]:
            port = listen_tcp(
                reactor,
                0,
                protocol.Factory.forProtocol(Upper),
                interface="127.0.0.1",
                pool=pool,
                backlog=512,  # the connects below block until accepted
            )
            peers = [
                socket.create_connection(("127.0.0.1", port.getHost().port))
                for _ in range(200)
            ]
            for peer in peers:
                peer.sendall(b"ping\r\n")
            for peer in peers:
                peer.setblocking(False)
            answered = 0
            for _ in range(500):
                await sleep(reactor, 0.01)
                answered = 0
                for peer in peers:
                    try:
                        if peer.recv(64, socket.MSG_PEEK) == b"PING\r\n":
                            answered += 1
                    except BlockingIOError:
                        pass
                if answered == len(peers):
                    break
            in_use = pool.stats().bytes_in_use
            for peer in peers:
                peer.close()
            await sleep(reactor, 0.1)
            await port.stopListening()
            return answered, in_use

        assert run(reactor, main) == (200, 0)


def test_a_closed_connection_is_freed_by_reference_counting() -> None:
    """With the cyclic GC off, a closed transport and its protocol are freed."""
    with fresh_reactor("epoll") as reactor:
        factory = recorder_factory()
        refs: list[weakref.ref[Any]] = []

        async def main() -> None:
            port = listen_tcp(reactor, 0, factory, interface="127.0.0.1")
            peer = socket.create_connection(("127.0.0.1", port.getHost().port))
            server: Recorder = await factory.made
            refs.extend([weakref.ref(server), weakref.ref(server.transport)])
            peer.sendall(b"bytes before the end")
            peer.close()
            await factory.lost
            await port.stopListening()

        gc.collect()
        gc.disable()
        try:
            run(reactor, main)
            factory.made = factory.lost = None
            assert [ref() for ref in refs] == [None, None]
        finally:
            gc.enable()


def test_a_factory_that_raises_closes_only_that_socket() -> None:
    """buildProtocol raising closes the accepted socket; the port keeps serving."""
    with fresh_reactor("epoll") as reactor:
        calls: list[int] = []

        class Flaky(protocol.Factory):
            def buildProtocol(self, addr: Any) -> Any:
                calls.append(1)
                if len(calls) == 1:
                    raise RuntimeError("flaky factory")
                return Upper()

        async def main() -> tuple[bytes, list[bytes]]:
            port: ListeningPort = listen_tcp(reactor, 0, Flaky(), interface="127.0.0.1")
            first = socket.create_connection(("127.0.0.1", port.getHost().port))
            first.settimeout(5)
            await sleep(reactor, 0.05)
            first_got = first.recv(10)
            first.close()
            client = lines_factory([b"second"])
            await connect_tcp(reactor, "127.0.0.1", port.getHost().port, client)
            got: list[bytes] = await client.done
            await port.stopListening()
            return first_got, got

        assert run(reactor, main) == (b"", [b"SECOND"])


# Twisted still hands pyOpenSSL objects that recent pyOpenSSL deprecates.
@pytest.mark.filterwarnings("ignore:Passing pyOpenSSL:DeprecationWarning")
def test_twisted_tls_on_the_plain_transport(tmp_path: Any) -> None:
    """Twisted's TLSMemoryBIOFactory wraps a bufkit transport; lines arrive over TLS."""
    pytest.importorskip("OpenSSL")
    from twisted.internet import ssl as tssl
    from twisted.protocols.tls import TLSMemoryBIOFactory

    from tests._tls import self_signed

    cert_path, key_path = self_signed(tmp_path)
    cert = tssl.PrivateCertificate.loadPEM(cert_path.read_text() + key_path.read_text())
    with fresh_reactor("epoll") as reactor:

        async def main() -> list[bytes]:
            # Both TLS factories buffer writes with a clock: this test's reactor.
            tls_server = TLSMemoryBIOFactory(
                cert.options(),
                False,
                cast(Any, protocol.Factory.forProtocol(Upper)),
                clock=reactor,
            )
            port = listen_tcp(reactor, 0, tls_server, interface="127.0.0.1")
            client = lines_factory([b"secret", b"y" * 40_000])
            trust = tssl.Certificate.loadPEM(cert_path.read_bytes())
            options = tssl.optionsForClientTLS("localhost", trustRoot=trust)
            await connect_tcp(
                reactor,
                "127.0.0.1",
                port.getHost().port,
                TLSMemoryBIOFactory(options, True, client, clock=reactor),
            )
            got: list[bytes] = await client.done
            await port.stopListening()
            return got

        assert run(reactor, main) == [b"SECRET", b"Y" * 40_000]


def test_writes_after_lose_connection_are_ignored_and_str_is_refused() -> None:
    """As in Twisted: writes after loseConnection do nothing; str raises TypeError."""
    with fresh_reactor("epoll") as reactor:
        factory = recorder_factory()

        async def main() -> bytes:
            port = listen_tcp(reactor, 0, factory, interface="127.0.0.1")
            peer = socket.create_connection(("127.0.0.1", port.getHost().port))
            server: Recorder = await factory.made
            with pytest.raises(TypeError, match="str"):
                server.transport.write("text")
            server.transport.write(b"before")
            server.transport.loseConnection()
            server.transport.write(b"after")
            await factory.lost
            peer.settimeout(5)
            got = b""
            while chunk := peer.recv(100):
                got += chunk
            peer.close()
            await port.stopListening()
            return got

        assert run(reactor, main) == b"before"


def test_transport_reports_addresses_and_socket_options() -> None:
    """getPeer/getHost are IPv4Address; TCP_NODELAY is on; keep-alive can be set."""
    with fresh_reactor("epoll") as reactor:
        factory = recorder_factory()

        async def main() -> tuple[Any, ...]:
            port = listen_tcp(reactor, 0, factory, interface="127.0.0.1")
            peer = socket.create_connection(("127.0.0.1", port.getHost().port))
            server: Recorder = await factory.made
            transport = server.transport
            transport.setTcpKeepAlive(True)
            result = (
                transport.getPeer().port == peer.getsockname()[1],
                transport.getHost().port == port.getHost().port,
                transport.getPeer().host,
                transport.getTcpNoDelay(),
                transport.getTcpKeepAlive(),
            )
            transport.loseConnection()
            await factory.lost
            peer.close()
            await port.stopListening()
            return result

        assert run(reactor, main) == (True, True, "127.0.0.1", True, True)


class CountingSocket(socket.socket):
    """A real socket that counts the address questions asked of it."""

    def __init__(self, fileno: int) -> None:
        super().__init__(fileno=fileno)
        self.asked: list[str] = []

    def getpeername(self) -> Any:
        self.asked.append("peer")
        return super().getpeername()

    def getsockname(self) -> Any:
        self.asked.append("host")
        return super().getsockname()


def test_addresses_are_asked_of_the_socket_once_and_kept() -> None:
    """getPeer/getHost make one syscall each, then answer even after close."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        peer = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
    sock = CountingSocket(accepted.detach())
    with fresh_reactor("epoll") as reactor, peer:
        transport = Transport(reactor, sock, protocol.Protocol(), BufferPool())
        peer_name, host_name = first = (transport.getPeer(), transport.getHost())
        assert isinstance(peer_name, address.IPv4Address)
        assert isinstance(host_name, address.IPv4Address)
        for _ in range(3):
            assert (transport.getPeer(), transport.getHost()) == first
        sock.close()
        after_close = (transport.getPeer(), transport.getHost())
        expected = (peer.getsockname(), peer.getpeername())
    assert sock.asked == ["peer", "host"]
    assert after_close == first
    assert ((peer_name.host, peer_name.port), (host_name.host, host_name.port)) == (
        expected
    )
