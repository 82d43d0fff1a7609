"""The testing toolkit's public API, used as a user would: checked, never run."""

from __future__ import annotations

import errno
import selectors
from typing import assert_type

from hypothesis import strategies as st

import bufkit
from bufkit.adapters.selectors import SelectableSocket
from bufkit.testing import (
    Accept,
    AcceptAll,
    AcceptAllBut,
    AcceptBuffers,
    Call,
    Cutting,
    Deliver,
    Eof,
    Fail,
    FakeSelector,
    FakeSocket,
    FakeTLSSocket,
    HybridSocket,
    Ledger,
    MemorySocket,
    RecvStep,
    SendStep,
    Short,
    TLSLink,
    WouldBlock,
    check_sender,
    check_sender_example,
    check_tls_receiver_example,
    check_tls_sender_example,
    fake_socketpair,
    format_schedule,
    gallery,
    hybrid_socketpair,
    random_send_schedule,
)
from bufkit.testing.stateful import SenderMachine
from bufkit.testing.strategies import (
    chunkings,
    cuttings,
    fake_sockets,
    memory_socketpairs,
    send_schedules,
)


def schedules() -> None:
    """Steps are typed values; schedules are lists of the step unions."""
    send: list[SendStep] = [Accept(3), AcceptAll(), WouldBlock(), Fail(errno.EPIPE)]
    recv: list[RecvStep] = [Deliver(b"abc"), Short(2), WouldBlock(), Eof()]
    assert_type(Accept(3).n, int)
    assert_type(Fail(errno.EPIPE).fatal, bool)
    assert_type(format_schedule(send), str)
    sock = FakeSocket(send=send, recv=recv, after_recv="eof")
    assert_type(sock.remaining_send, tuple[SendStep, ...])
    FakeSocket(send=[Eof()])  # type: ignore[list-item]
    FakeSocket(recv=[Accept(1)])  # type: ignore[list-item]
    FakeSocket(after_send="never")  # type: ignore[arg-type]
    Accept("3")  # type: ignore[arg-type]
    relative: list[SendStep] = [AcceptAllBut(1), AcceptBuffers(2)]
    assert_type(AcceptAllBut(1).accepted(10), int)
    assert_type(AcceptBuffers(1).accepted([3, 4]), int)
    assert_type(FakeSocket(send=relative, spin_limit=None).spin_limit, int | None)
    FakeSocket(spin_limit="many")  # type: ignore[arg-type]


def fake_socket_surface(sock: FakeSocket) -> None:
    """The fake's socket methods and records have socket-like types."""
    assert_type(sock.send(b"x"), int)
    assert_type(sock.sendmsg([b"a", memoryview(b"b")]), int)
    assert_type(sock.recv(10), bytes)
    assert_type(sock.recv_into(bytearray(10)), int)
    assert_type(sock.wire, bytes)
    assert_type(sock.calls, list[Call])
    assert_type(sock.calls[0].errno, int | None)
    assert_type(sock.fileno(), int)
    assert_type(sock.faults_seen, frozenset[str])
    assert_type(fake_socketpair(), tuple[FakeSocket, FakeSocket])
    assert_type(hybrid_socketpair(), tuple[HybridSocket, HybridSocket])
    assert_type(random_send_schedule(7), list[SendStep])
    sock.send("text")  # type: ignore[arg-type]


def fits_bufkit_protocols(sock: FakeSocket, hybrid: HybridSocket) -> None:
    """A fake (and a hybrid) is what bufkit's core sends to and reads from."""
    sender: bufkit.SupportsSendmsg = sock
    plain: bufkit.SupportsSend = hybrid
    reader: bufkit.SupportsRecvInto = sock
    queue = bufkit.WriteQueue()
    assert_type(queue.flush(sock), bool)
    selectable: SelectableSocket = sock
    hybrid_selectable: SelectableSocket = hybrid
    del sender, plain, reader, selectable, hybrid_selectable


def selector(sock: FakeSocket) -> None:
    """The fake selector is a ``selectors.BaseSelector``."""
    sel: selectors.BaseSelector = FakeSelector(busy_limit=10)
    key = sel.register(sock, selectors.EVENT_READ)
    assert_type(key, selectors.SelectorKey)
    assert_type(sel.select(0), list[tuple[selectors.SelectorKey, int]])


def ledger() -> None:
    """The ledger explains differences as text."""
    book = Ledger([b"hello"])
    assert_type(book.verdict(b"hel"), str | None)
    assert_type(book.locate(3), tuple[int, int])


def strategies() -> None:
    """Strategies are typed."""
    assert_type(send_schedules(), st.SearchStrategy[list[SendStep]])
    assert_type(chunkings(b"abc"), st.SearchStrategy[list[bytes]])
    assert_type(fake_sockets(), st.SearchStrategy[FakeSocket])
    assert_type(cuttings(10), st.SearchStrategy[Cutting])
    assert_type(
        memory_socketpairs(), st.SearchStrategy[tuple[MemorySocket, MemorySocket]]
    )


class GoodSender:
    """A sender shape that ``check_sender`` accepts, with or without TLS."""

    def __init__(self, sock: bufkit.SupportsSend) -> None:
        self.sock = sock

    def write(self, data: bytes) -> None:
        """Send at once (a sketch)."""
        self.sock.send(data)

    def on_writable(self) -> None:
        """Nothing pending in this sketch."""

    @property
    def wants_writable(self) -> bool:
        """Never armed in this sketch."""
        return False


def checks() -> None:
    """A class with the Sender shape can be checked; a mismatched one cannot."""
    assert_type(check_sender_example(GoodSender, [b"a"], [Accept(1)]), FakeSocket)
    check_sender_example(bytes, [b"a"], [])  # type: ignore[arg-type]
    entry = gallery.find("IgnoresReturnValue")
    assert_type(entry, gallery.Entry)
    assert_type(gallery.verdict(entry), str)
    assert_type(gallery.SENDER_BUGS, tuple[gallery.Entry, ...])
    gallery.run(entry, seed="0")  # type: ignore[arg-type]


def plain_sender(sock: FakeSocket) -> GoodSender:
    """A factory that only takes the plain fake."""
    return GoodSender(sock)


def tls_checks() -> None:
    """The TLS checks take a sender of the TLS fake; the example returns the fake."""
    assert_type(check_sender(GoodSender, tls=True), None)
    assert_type(check_tls_sender_example(GoodSender, [b"a"]), FakeTLSSocket)
    link = TLSLink(seed=1, max_recv=1, reset_after=None)
    assert_type(check_tls_sender_example(GoodSender, [b"a"], link), FakeTLSSocket)
    check_tls_sender_example(plain_sender, [b"a"])  # type: ignore[arg-type]
    check_tls_receiver_example(GoodSender, [b"a"])  # type: ignore[arg-type]
    TLSLink(clogged="2")  # type: ignore[arg-type]
    check_sender(GoodSender, tls="yes")  # type: ignore[arg-type]


class Machine(SenderMachine):
    """A user's state machine."""

    def make_sender(self, sock: FakeSocket) -> GoodSender:
        """Build the sender."""
        return GoodSender(sock)
