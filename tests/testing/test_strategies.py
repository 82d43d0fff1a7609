"""The Hypothesis strategies draw well-formed schedules and shrink to no fault."""

from __future__ import annotations

import contextlib
import errno

from hypothesis import given
from hypothesis import strategies as st

from bufkit.testing import (
    Accept,
    AcceptAll,
    AcceptAllBut,
    AcceptBuffers,
    Deliver,
    Eof,
    Fail,
    FakeSocket,
    Interrupt,
    RecvStep,
    SendStep,
    WouldBlock,
)
from bufkit.testing.strategies import (
    chunkings,
    fake_sockets,
    fault_schedules,
    record_fault_coverage,
    recv_schedules,
    send_schedules,
)

from .shrinking import minimal


@given(st.binary(max_size=64), st.data())
def test_chunkings_rebuild_the_data(data: bytes, draw: st.DataObject) -> None:
    """Chunks are non-empty and concatenate to the data."""
    chunks = draw.draw(chunkings(data, max_chunks=5))
    assert b"".join(chunks) == data
    assert all(chunks)
    assert len(chunks) <= 5


@given(send_schedules(max_accept=9, faults=[errno.ENOBUFS]))
def test_send_schedules_are_send_steps(schedule: list[SendStep]) -> None:
    """Drawn send steps are of the send kinds, within the limits."""
    kinds = Accept | AcceptAll | AcceptAllBut | AcceptBuffers | WouldBlock | Fail
    for step in schedule:
        assert isinstance(step, kinds)
        if isinstance(step, Accept | AcceptAllBut):
            assert step.n <= 9
        if isinstance(step, Fail):
            assert step.errno == errno.ENOBUFS


@given(send_schedules(interrupts=True, spurious=True))
def test_interrupts_and_spurious_steps_are_opt_in(schedule: list[SendStep]) -> None:
    """Asked for, ``Interrupt`` and ``Spurious`` steps may be drawn."""
    assert all(not isinstance(step, Fail) for step in schedule)


@given(recv_schedules(b"hello world", faults=[errno.ECONNRESET]))
def test_recv_schedules_deliver_a_prefix(schedule: list[RecvStep]) -> None:
    """Deliveries are a prefix of the data, ending in EOF or a fault."""
    delivered = b"".join(s.data for s in schedule if isinstance(s, Deliver))
    assert b"hello world".startswith(delivered)
    assert isinstance(schedule[-1], Eof | Fail)
    if isinstance(schedule[-1], Eof):
        assert delivered == b"hello world"


@given(recv_schedules(eof=False, would_block=False, interrupts=False))
def test_recv_schedules_of_drawn_data(schedule: list[RecvStep]) -> None:
    """Without pauses or EOF, a drawn schedule is only deliveries."""
    assert all(isinstance(s, Deliver) for s in schedule)


@given(fake_sockets())
def test_fake_sockets_rebuild_from_their_repr(sock: FakeSocket) -> None:
    """A drawn fake's repr rebuilds an equal fake."""
    import bufkit.testing

    again = eval(repr(sock), vars(bufkit.testing) | {"errno": errno})
    assert repr(again) == repr(sock)
    with contextlib.suppress(OSError):
        sock.sendmsg([b"abc", b"def"])
    record_fault_coverage(sock)


def test_chunkings_shrink_to_no_cut() -> None:
    """The minimal chunking is the whole data."""
    assert minimal(chunkings(b"abcdef"), lambda c: len(c) > 0) == [b"abcdef"]


def test_send_schedules_shrink_to_no_fault() -> None:
    """A schedule that must hold a step shrinks to ``[AcceptAll()]``."""
    assert minimal(send_schedules(faults=[errno.EPIPE]), bool) == [AcceptAll()]


def test_fault_schedules_shrink_to_the_smallest_fault() -> None:
    """A schedule that must fail shrinks to that fault alone."""
    found = minimal(fault_schedules(), lambda s: any(isinstance(x, Fail) for x in s))
    assert found == [Fail(errno.ECONNRESET)]


def test_partial_sends_shrink_to_the_smallest_cut() -> None:
    """A schedule that must hold a partial send shrinks to ``Accept(1)``."""
    found = minimal(send_schedules(), lambda s: any(isinstance(x, Accept) for x in s))
    assert found == [Accept(1)]


def _first_send_is_cut(schedule: list[SendStep]) -> bool:
    sock = FakeSocket(send=schedule)
    try:
        return sock.sendmsg([b"abcd", b"efgh"]) < 8
    except BlockingIOError:
        return False


def test_a_cut_that_breaks_the_code_shrinks_to_one_byte() -> None:
    """Whatever cut was drawn first (relative, a boundary), it shrinks to one byte."""
    assert minimal(send_schedules(), _first_send_is_cut) == [Accept(1)]


def test_relative_steps_cut_relative_to_what_is_offered() -> None:
    """``AcceptAllBut`` leaves n bytes unsent; ``AcceptBuffers`` stops at a boundary."""
    sock = FakeSocket(send=[AcceptAllBut(1), AcceptAllBut(9), AcceptBuffers(2)] * 2)
    assert sock.sendmsg([b"abc", b"defg"]) == 6
    assert sock.send(b"abc") == 1
    assert sock.sendmsg([b"ab", b"cde", b"f"]) == 5
    assert sock.send(b"x") == 1
    assert sock.sendmsg([b"ab", b"cd"]) == 1  # at least one byte
    assert sock.send(b"xyz") == 3  # one buffer: accepted whole
    assert sock.wire == b"abcdef" + b"a" + b"abcde" + b"x" + b"a" + b"xyz"


def test_every_strategy_is_in_the_strategies_module() -> None:
    """The hostile transports' and TLS's strategies are reachable from one module."""
    from bufkit import testing
    from bufkit.testing import _tls_hyp, strategies

    assert strategies.cuttings is testing.cuttings
    assert strategies.backpressure_schedules is testing.backpressure_schedules
    assert strategies.memory_socketpairs is _tls_hyp.memory_socketpairs
    assert {"cuttings", "backpressure_schedules", "memory_socketpairs"} <= set(
        strategies.__all__
    )


def test_fault_schedules_draw_interrupts_when_asked() -> None:
    """With interrupts=True, a schedule may hold EINTR; it shrinks to that alone."""
    found = minimal(
        fault_schedules(interrupts=True),
        lambda s: any(isinstance(x, Interrupt) for x in s),
    )
    assert found == [Interrupt()]
