"""bufkit's own write queue, reader, framer and selectors loop pass the checks."""

from __future__ import annotations

import struct
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from bufkit import (
    BufferPool,
    DelimiterFramer,
    LengthPrefixedFramer,
    ReadinessReader,
    WriteQueue,
)
from bufkit.adapters.selectors import Connection, ConnectionProtocol, Loop
from bufkit.testing import (
    Accept,
    Call,
    FakeSelector,
    FakeSocket,
    SendStep,
    WouldBlock,
    check_receiver,
    check_sender,
    fake_socketpair,
)
from bufkit.testing.strategies import send_schedules

OnMessage = Callable[[bytes], object]
OnEof = Callable[[], object]


class QueueSender:
    """A ``WriteQueue`` driven by readiness: flush on write unless armed."""

    def __init__(self, sock: FakeSocket) -> None:
        self.sock = sock
        self.queue = WriteQueue()
        self.armed = False

    def write(self, data: bytes) -> None:
        """Queue, and flush unless waiting for writable already."""
        self.queue.write(data)
        if not self.armed:
            self.on_writable()

    def on_writable(self) -> None:
        """Flush; stay armed iff the flush would block (invariant 3)."""
        self.armed = not self.queue.flush(self.sock)

    @property
    def wants_writable(self) -> bool:
        """Armed after a flush that would block."""
        return self.armed


class _Handler:
    def __init__(
        self, on_message: Callable[[bytes], object], on_eof: Callable[[], object]
    ) -> None:
        self.on_message, self.on_eof = on_message, on_eof

    def data_received(self, view: memoryview, /) -> None:
        self.on_message(bytes(view))

    def eof_received(self) -> bool | None:
        self.on_eof()
        return None


class ReaderReceiver:
    """A ``ReadinessReader`` handing chunks (or frames) on."""

    def __init__(
        self,
        sock: FakeSocket,
        handler: _Handler | DelimiterFramer | LengthPrefixedFramer,
    ) -> None:
        self.sock = sock
        self.pool = BufferPool(size_classes=(16, 64), slab_size=4096)
        self.reader = ReadinessReader(self.pool, handler, read_budget=4)

    def on_readable(self) -> None:
        """Read what the fake has."""
        self.reader.on_readable(self.sock)


def test_write_queue_passes_check_sender() -> None:
    """``WriteQueue.flush`` under a readiness loop passes ``check_sender``."""
    check_sender(QueueSender)


class PausingQueueSender(QueueSender):
    """A ``WriteQueue`` whose watermarks pause the producer."""

    def __init__(self, sock: FakeSocket) -> None:
        super().__init__(sock)
        self.paused = False
        self.queue = WriteQueue(
            high_water=300, low_water=100, on_pause=self._pause, on_resume=self._resume
        )

    def _pause(self) -> None:
        self.paused = True

    def _resume(self) -> None:
        self.paused = False


def test_write_queue_watermarks_bound_buffering() -> None:
    """The queue's watermarks keep buffering bounded under a clogged peer."""
    check_sender(PausingQueueSender, max_buffered=300)


def test_readiness_reader_passes_check_receiver() -> None:
    """``ReadinessReader`` hands on every byte in order, EOF once, errors raised."""

    def make(
        sock: FakeSocket,
        on_message: Callable[[bytes], object],
        on_eof: Callable[[], object],
    ) -> ReaderReceiver:
        return ReaderReceiver(sock, _Handler(on_message, on_eof))

    check_receiver(make)


def test_delimiter_framer_passes_check_receiver() -> None:
    """The delimiter framer behind the reader decodes lines across any cut."""

    def make(
        sock: FakeSocket,
        on_message: Callable[[bytes], object],
        on_eof: Callable[[], object],
    ) -> ReaderReceiver:
        pool = BufferPool(size_classes=(16, 64), slab_size=4096)

        def eof() -> None:
            on_eof()

        framer = DelimiterFramer(
            pool,
            lambda frame: on_message(bytes(frame)),
            max_frame=64,
            delimiter=b"\n",
            on_eof=eof,
        )
        return ReaderReceiver(sock, framer)

    messages = st.binary(max_size=30).filter(lambda m: b"\n" not in m)
    check_receiver(make, encode=lambda m: m + b"\n", messages=messages)


def test_length_prefixed_framer_passes_check_receiver() -> None:
    """The length-prefixed framer behind the reader decodes frames across any cut."""

    def make(
        sock: FakeSocket,
        on_message: Callable[[bytes], object],
        on_eof: Callable[[], object],
    ) -> ReaderReceiver:
        def eof() -> None:
            on_eof()

        framer = LengthPrefixedFramer(
            BufferPool(size_classes=(16, 64), slab_size=4096),
            lambda frame: on_message(bytes(frame)),
            max_frame=64,
            header="!H",
            on_eof=lambda: on_eof(),
        )
        return ReaderReceiver(sock, framer)

    check_receiver(
        make,
        encode=lambda m: struct.pack("!H", len(m)) + m,
        messages=st.binary(max_size=40),
    )


class _Echo(ConnectionProtocol):
    def connection_made(self, conn: Connection, /) -> None:
        self.conn = conn

    def data_received(self, view: memoryview, /) -> None:
        self.conn.write(bytes(view))

    def eof_received(self) -> bool | None:
        self.conn.close()
        return True


def _echo_through_the_selectors_loop(
    schedule: list[SendStep], payload: bytes
) -> tuple[bytes, list[Call], list[Call], frozenset[str]]:
    """Echo ``payload``; return what came back, both fakes' calls and faults."""
    client, server = fake_socketpair(b_send=schedule)
    loop = Loop(selector=FakeSelector(step_budget=100_000))
    try:
        conn = loop.add_socket(server, _Echo())
        client.sendall(payload)
        client.shutdown(1)
        assert loop.run_until(lambda: conn.closed)
    finally:
        loop.close()
    echoed = client.recv(len(payload) + 1)
    return echoed, client.calls, server.calls, server.faults_seen


@given(
    schedule=send_schedules(max_accept=300, interrupts=False, spurious=True),
    payload=st.binary(min_size=1, max_size=3000),
)
def test_the_selectors_loop_runs_on_fakes(
    schedule: list[SendStep], payload: bytes
) -> None:
    """bufkit's selectors ``Loop`` over a ``FakeSelector`` echoes every byte."""
    assert _echo_through_the_selectors_loop(schedule, payload)[0] == payload


def test_the_selectors_loop_is_deterministic() -> None:
    """The same schedules give the same run, call for call; others do not."""
    schedule: list[SendStep] = [Accept(5), WouldBlock(), Accept(100)] * 5
    payload = bytes(range(256)) * 4
    first = _echo_through_the_selectors_loop(schedule, payload)
    echoed, _, server_calls, faults = first
    assert echoed == payload
    assert "partial send" in faults
    assert _echo_through_the_selectors_loop(schedule, payload) == first
    other = _echo_through_the_selectors_loop(schedule[1:], payload)
    assert other[0] == payload
    assert other[2] != server_calls
