"""Hypothesis strategies for schedules and fake sockets (needs Hypothesis).

Every strategy of the toolkit is here, including those defined beside what
they drive: :func:`~bufkit.testing.cuttings` and
:func:`~bufkit.testing.backpressure_schedules` for the hostile transports,
:func:`memory_socketpairs` for TLS. Every strategy
shrinks toward "no fault": toward fewer steps, toward
:class:`~bufkit.testing.AcceptAll` rather than a partial send, toward no cut,
and toward no error, so a shrunk failure shows the fewest and smallest faults
that still break the code. Chunkings are drawn as cut points (a set of
offsets), never as a size followed by a list.

Example::

    from hypothesis import given
    from bufkit.testing import FakeSocket
    from bufkit.testing.strategies import send_schedules

    @given(send_schedules())
    def test_my_sender(schedule):
        sock = FakeSocket(send=schedule)
        ...
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from hypothesis import event
from hypothesis import strategies as st

from bufkit.testing._fakebase import IOV_MAX
from bufkit.testing._fakesocket import FakeSocket
from bufkit.testing._hostile_cuts import backpressure_schedules, cuttings
from bufkit.testing._schedule import (
    RECV_FAULTS,
    SEND_FAULTS,
    Accept,
    AcceptAll,
    AcceptAllBut,
    AcceptBuffers,
    Deliver,
    Eof,
    Fail,
    Interrupt,
    RecvStep,
    SendStep,
    Spurious,
    WouldBlock,
)
from bufkit.testing._tls_hyp import memory_socketpairs

__all__ = [
    "backpressure_schedules",
    "chunkings",
    "cuttings",
    "fake_sockets",
    "fault_schedules",
    "memory_socketpairs",
    "recv_schedules",
    "record_fault_coverage",
    "send_schedules",
]

memory_socketpairs.__module__ = __name__  # documented here


def chunkings(
    data: bytes, *, max_chunks: int | None = None
) -> st.SearchStrategy[list[bytes]]:
    """Cut ``data`` at drawn points into non-empty chunks (shrinks to no cut).

    Args:
        data: the bytes to cut.
        max_chunks: at most this many chunks (``None``: up to one per byte).

    Returns:
        A strategy for lists of chunks whose concatenation is ``data``.
    """
    if len(data) < 2:
        return st.just([data] if data else [])
    limit = None if max_chunks is None else max(0, max_chunks - 1)
    cuts = st.sets(st.integers(1, len(data) - 1), max_size=limit)
    return cuts.map(lambda points: _cut(data, sorted(points)))


def _cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def send_schedules(
    *,
    min_steps: int = 0,
    max_steps: int = 20,
    max_accept: int = 65536,
    would_block: bool = True,
    interrupts: bool = False,
    spurious: bool = False,
    faults: Sequence[int] = (),
) -> st.SearchStrategy[list[SendStep]]:
    """Draw outbound schedules: partial sends and would-blocks.

    Most steps cut the data a send offers, wherever that data is, whatever
    its size: cuts are drawn relative to what is offered, with one byte
    (:class:`~bufkit.testing.Accept` ``(1)``), all but one byte
    (:class:`~bufkit.testing.AcceptAllBut` ``(1)``), exactly at a buffer
    boundary of a gather list (:class:`~bufkit.testing.AcceptBuffers`) and
    nothing (:class:`~bufkit.testing.WouldBlock`) drawn often. A failure
    shrinks toward fewer steps, toward :class:`~bufkit.testing.AcceptAll`,
    and toward the smallest cut, ``Accept(1)``.

    Args:
        min_steps: the fewest steps.
        max_steps: the most steps (after them the fake accepts everything).
        max_accept: the largest count drawn for ``Accept(n)`` and
            ``AcceptAllBut(n)``.
        would_block: include :class:`~bufkit.testing.WouldBlock` steps.
        interrupts: include :class:`~bufkit.testing.Interrupt` steps
            (``EINTR``). Off by default: Python retries ``EINTR`` inside real
            socket calls (PEP 475), so a real socket never raises it.
        spurious: include :class:`~bufkit.testing.Spurious` steps (readiness
            that lies, for loops run by :class:`~bufkit.testing.FakeSelector`).
        faults: errno values that may appear as
            :class:`~bufkit.testing.Fail` steps anywhere (see also
            :func:`fault_schedules`).

    Returns:
        A strategy for lists of send steps.
    """
    counts = st.just(1) | st.integers(1, max(1, max_accept))
    options: list[st.SearchStrategy[SendStep]] = [
        st.just(AcceptAll()),
        st.builds(Accept, counts),
        st.builds(AcceptAllBut, counts),
        st.builds(AcceptBuffers, st.integers(1, 8)),
    ]
    if would_block:
        options.append(st.just(WouldBlock()))
    if interrupts:
        options.append(st.just(Interrupt()))
    if spurious:
        options.append(st.just(Spurious()))
    if faults:
        options.append(st.sampled_from(list(faults)).map(Fail))
    return st.lists(st.one_of(options), min_size=min_steps, max_size=max_steps)


def _pauses(would_block: bool, interrupts: bool) -> st.SearchStrategy[list[RecvStep]]:
    kinds: list[RecvStep] = [WouldBlock()] if would_block else []
    kinds += [Interrupt()] if interrupts else []
    if not kinds:
        return st.just([])
    return st.lists(st.sampled_from(kinds), max_size=2)


def recv_schedules(
    data: bytes | None = None,
    *,
    max_size: int = 256,
    max_chunks: int | None = 16,
    would_block: bool = True,
    interrupts: bool = False,
    eof: bool = True,
    faults: Sequence[int] = (),
) -> st.SearchStrategy[list[RecvStep]]:
    """Draw inbound schedules that deliver ``data`` in drawn chunks.

    Args:
        data: the bytes to deliver; ``None`` draws up to ``max_size`` bytes.
        max_size: the most bytes drawn when ``data`` is ``None``.
        max_chunks: at most this many :class:`~bufkit.testing.Deliver` steps.
        would_block: put :class:`~bufkit.testing.WouldBlock` steps between.
        interrupts: put :class:`~bufkit.testing.Interrupt` steps between
            (off by default: a real socket never raises ``EINTR``; PEP 475).
        eof: end with :class:`~bufkit.testing.Eof`.
        faults: errno values one of which may cut the stream short with a
            :class:`~bufkit.testing.Fail` (shrinks toward no fault).

    Returns:
        A strategy for lists of receive steps.
    """
    if data is None:
        return st.binary(max_size=max_size).flatmap(
            lambda drawn: recv_schedules(
                drawn,
                max_chunks=max_chunks,
                would_block=would_block,
                interrupts=interrupts,
                eof=eof,
                faults=faults,
            )
        )
    return _recv_schedule(
        data, max_chunks, _pauses(would_block, interrupts), eof, tuple(faults)
    )


@st.composite
def _recv_schedule(
    draw: st.DrawFn,
    data: bytes,
    max_chunks: int | None,
    pauses: st.SearchStrategy[list[RecvStep]],
    eof: bool,
    faults: tuple[int, ...],
) -> list[RecvStep]:
    steps: list[RecvStep] = []
    for chunk in draw(chunkings(data, max_chunks=max_chunks)):
        steps += draw(pauses)
        steps.append(Deliver(chunk))
    steps += draw(pauses)
    fault = draw(st.none() | st.sampled_from(faults)) if faults else None
    if fault is not None:
        del steps[draw(st.integers(0, len(steps))) :]
        steps.append(Fail(fault))
    elif eof:
        steps.append(Eof())
    return steps


def fault_schedules(
    *,
    errnos: Sequence[int] = SEND_FAULTS,
    max_steps: int = 20,
    max_accept: int = 65536,
    interrupts: bool = False,
) -> st.SearchStrategy[list[SendStep]]:
    """Draw send schedules that may end in one fault (shrinks toward none).

    Args:
        errnos: the errors the fault is drawn from (default: the send side of
            the errno catalogue, ``ECONNRESET``, ``EPIPE``, ``ENOBUFS``,
            ``ENOMEM``).
        max_steps: the most steps before the fault.
        max_accept: the largest partial send drawn.
        interrupts: include :class:`~bufkit.testing.Interrupt` steps
            (``EINTR``; see :func:`send_schedules`).

    Returns:
        A strategy for lists of send steps, the last of which may be a
        :class:`~bufkit.testing.Fail`.
    """
    prefix = send_schedules(
        max_steps=max_steps, max_accept=max_accept, interrupts=interrupts
    )
    fault = st.none() | st.sampled_from(list(errnos))
    return st.tuples(prefix, fault).map(
        lambda pair: pair[0] if pair[1] is None else [*pair[0], Fail(pair[1])]
    )


def fake_sockets(
    *,
    send: st.SearchStrategy[list[SendStep]] | None = None,
    recv: st.SearchStrategy[list[RecvStep]] | None = None,
    iov_max: int = IOV_MAX,
) -> st.SearchStrategy[FakeSocket]:
    """Draw :class:`~bufkit.testing.FakeSocket` objects.

    Args:
        send: the send schedules (default: :func:`send_schedules`).
        recv: the receive schedules (default: :func:`recv_schedules` of
            drawn bytes, ending in end of file).
        iov_max: passed to the fake.

    Returns:
        A strategy for fakes; their repr is the Python code that rebuilds them.
    """
    return st.builds(
        FakeSocket,
        send=send if send is not None else send_schedules(),
        recv=recv if recv is not None else recv_schedules(faults=RECV_FAULTS),
        iov_max=st.just(iov_max),
    )


def record_fault_coverage(*socks: FakeSocket) -> None:
    """Report each fake's :attr:`~bufkit.testing.FakeSocket.faults_seen`.

    Each label becomes an :func:`hypothesis.event`, listed by ``pytest
    --hypothesis-show-statistics``, so you can see that partial sends inside a
    buffer, ``EAGAIN`` and resets were actually exercised. Fakes already
    report each fault when it happens inside a Hypothesis test; call this at
    the end of a test for fakes used outside one.
    """
    for label in sorted(set().union(*(sock.faults_seen for sock in socks))):
        event(f"fake socket: {label}")
