"""``check_receiver``: feed a user's receiver hostile chunkings, judge it.

Theory of operation: the messages are encoded (``encode``, or sent as a plain
byte stream) and delivered by a receive schedule that cuts the stream at drawn
points, with ``EAGAIN`` between chunks and end of file or a reset at the end.
The driver calls ``on_readable`` while the fake has something scheduled, like a
level-triggered readiness loop; the receiver reports what it decoded through
``on_message`` and end of file through ``on_eof``. The verdict compares
messages out with messages in. Cost: one fake and O(bytes) per example.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from typing import Protocol

from bufkit.testing._errors import BusyLoopError, CheckFailed, StepBudgetExceeded
from bufkit.testing._fakesocket import FakeSocket
from bufkit.testing._ledger import Ledger
from bufkit.testing._schedule import Deliver, RecvStep, format_schedule
from bufkit.testing._sendcheck import (
    _IDLE_LIMIT,
    _QUIET,
    _escaped_hint,
    _report,
    _stopped,
    _times,
)
from bufkit.testing._tls_fake import FakeTLSSocket

__all__ = ["Receiver", "check_receiver", "check_receiver_example"]


class Receiver(Protocol):
    """What :func:`check_receiver` drives: your reader, wrapped around a socket.

    Build it with ``make_receiver(sock, on_message, on_eof)``; call
    ``on_message(data)`` for each decoded message (or each chunk, for a plain
    byte stream) and ``on_eof()`` once at end of file, after the last message.
    Socket errors must propagate out of ``on_readable``.

    Like a level-triggered loop, the check delivers readable events while the
    socket has something to read, and one more after end of file (a socket at
    end of file stays readable until it is unregistered), unless the receiver
    has a ``wants_readable`` attribute that is false by then.
    """

    def on_readable(self) -> object:
        """The socket is readable: receive and decode."""
        ...


MakeReceiver = Callable[
    [FakeSocket, Callable[[bytes], object], Callable[[], object]], Receiver
]
MakeTLSReceiver = Callable[
    [FakeTLSSocket, Callable[[bytes], object], Callable[[], object]], Receiver
]


def check_receiver_example(
    make_receiver: MakeReceiver,
    messages: Sequence[bytes],
    schedule: Sequence[RecvStep],
    *,
    encode: Callable[[bytes], bytes] | None = None,
    step_budget: int = 20_000,
) -> FakeSocket:
    """Run one example of :func:`check_receiver`; a failing run prints this call.

    Args:
        make_receiver: builds your receiver from the fake, an ``on_message``
            and an ``on_eof`` callback.
        messages: the messages the schedule's bytes encode.
        schedule: the fake's receive schedule.
        encode: how a message is framed on the wire; ``None`` means a plain
            byte stream, judged by the bytes alone.
        step_budget: the most socket calls the receiver may make.

    Returns:
        The fake socket, for further assertions.

    Raises:
        CheckFailed: with the verdict, this call to reproduce it, and a
            transcript of the fake's calls.
    """
    __tracebackhide__ = True
    sock = FakeSocket(recv=schedule, step_budget=step_budget, busy_limit=2)
    got: list[bytes] = []
    eofs: list[int] = []  # how many messages had come out at each on_eof

    def on_message(data: bytes) -> None:
        got.append(data)

    problem, error = None, None
    try:
        receiver = make_receiver(sock, on_message, lambda: eofs.append(len(got)))
        problem = _run(sock, receiver, eofs)
    except OSError as exc:
        error = exc
    except (BusyLoopError, StepBudgetExceeded) as exc:
        problem = _stopped(exc)
    problem = problem or _judge(sock, messages, got, eofs, error, encode)
    if problem:
        call = (
            f"check_receiver_example(make_receiver, messages={list(messages)!r}, "
            f"schedule={format_schedule(schedule)}, "
            f"encode={'None' if encode is None else 'encode'})"
        )
        raise CheckFailed(_report("check_receiver", problem, call, sock))
    return sock


def _run(sock: FakeSocket, receiver: Receiver, eofs: list[int]) -> str | None:
    idle = 0
    while sock.remaining_recv:
        before = (len(sock._received), len(sock._recv_steps))
        sock.mark_waited()
        receiver.on_readable()
        moved = before != (len(sock._received), len(sock._recv_steps))
        idle = 0 if moved else idle + 1
        if idle >= _IDLE_LIMIT and eofs and not sock._eof_seen:
            return "on_eof was called though recv never returned 0"
        if idle >= _IDLE_LIMIT:
            return (
                f"on_readable was called {idle} times while readable and "
                "received nothing: the loop would spin forever"
            )
    if sock._eof_seen and getattr(receiver, "wants_readable", True):
        # A level-triggered loop reports a socket at end of file readable
        # until it is unregistered: one more event after the end.
        sock.mark_waited()
        receiver.on_readable()
    return None


def _judge(
    sock: FakeSocket,
    messages: Sequence[bytes],
    got: list[bytes],
    eofs: list[int],
    error: OSError | None,
    encode: Callable[[bytes], bytes] | None,
) -> str | None:
    fatal = [c for c in sock.calls if c.errno not in _QUIET]
    complete = not fatal
    if fatal and error is None:
        name = errno.errorcode[fatal[0].errno or 0]
        return f"the receiver swallowed {name}: socket errors must reach the caller"
    if error is not None and not fatal:
        return f"{error!r} escaped from the receiver: {_escaped_hint(error)}"
    if sock.busy_retries:
        return (
            f"the receiver retried {_times(sock.busy_retries)} right after EAGAIN "
            "without waiting for readiness: a busy loop"
        )
    verdict = _compare(messages, got, encode, complete, sock)
    if verdict:
        return verdict
    saw_eof = "EOF" in sock.faults_seen
    if saw_eof and len(eofs) != 1:
        return f"recv returned 0 (end of file) but on_eof was called {len(eofs)} times"
    if not saw_eof and eofs:
        return "on_eof was called though recv never returned 0"
    if eofs and eofs[0] < len(got):
        return (
            f"on_message was called after on_eof: {len(got) - eofs[0]} of "
            f"{len(got)} messages came out after end of file was reported"
        )
    return None


def _compare(
    messages: Sequence[bytes],
    got: list[bytes],
    encode: Callable[[bytes], bytes] | None,
    complete: bool,
    sock: FakeSocket,
) -> str | None:
    if encode is None:
        verdict = Ledger(messages).verdict(b"".join(got), complete=complete)
        return None if verdict is None else "received data: " + verdict
    expected = list(messages)
    if got == expected or (not complete and got == expected[: len(got)]):
        return None
    i = next(
        (k for k, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b),
        min(len(got), len(expected)),
    )
    if i >= len(expected):
        what = f"message {got[i]!r} came out after the last one was sent: invented"
    elif i >= len(got):
        what = f"message[{i}] {expected[i]!r} never came out"
    else:
        what = f"message[{i}] came out as {got[i]!r}, expected {expected[i]!r}"
    count = f"{len(expected)} sent, {len(got)} came out"
    return f"{what} ({count}){_chunk_hint(messages, sock, encode)}"


def _chunk_hint(
    messages: Sequence[bytes], sock: FakeSocket, encode: Callable[[bytes], bytes]
) -> str:
    frames = {encode(m) for m in messages}
    cut = any(
        isinstance(s, Deliver) and s.data not in frames for s in sock.recv_schedule
    )
    if cut or "short read" in sock.faults_seen:
        return (
            "; one recv is not one message: the stream was cut at other points, "
            "so buffer until a whole frame has arrived"
        )
    return ""


def check_receiver(
    make_receiver: MakeReceiver | MakeTLSReceiver,
    *,
    encode: Callable[[bytes], bytes] | None = None,
    messages: object = None,
    max_examples: int | None = None,
    max_chunks: int | None = 16,
    faults: Sequence[int] = (errno.ECONNRESET,),
    interrupts: bool = False,
    seed: int | None = None,
    tls: bool = False,
) -> None:
    """Check a receiver against many chunkings and faults (needs Hypothesis).

    The receiver must hand on every byte once and in order however the stream
    is cut, decode whole messages across reads (with ``encode``), handle
    ``EAGAIN`` by waiting, report end of file exactly once, invent nothing,
    and let socket errors reach the caller.

    Args:
        make_receiver: builds your receiver (a :class:`Receiver`) from the
            fake, an ``on_message`` and an ``on_eof`` callback.
        encode: how one message is framed on the wire, such as
            ``lambda m: m + b"\\n"``; ``None`` for a plain byte stream.
        messages: a Hypothesis strategy for one message (default: up to 64
            bytes; exclude your delimiter when ``encode`` adds one).
        max_examples: how many examples Hypothesis tries (default: the
            ``max_examples`` of the loaded Hypothesis settings profile).
        max_chunks: at most this many chunks per example.
        faults: errno values that may cut the stream short.
        interrupts: include ``EINTR`` (Python retries it itself; PEP 475).
        seed: fix Hypothesis's seed.
        tls: drive the receiver over TLS instead: it gets the server end, a
            :class:`~bufkit.testing.FakeTLSSocket` (``recv`` raises
            ``SSLWantReadError`` and ``SSLWantWriteError``, and decrypted
            bytes wait in ``pending()`` where no readable event shows them);
            see :func:`check_tls_receiver_example`. ``max_chunks``,
            ``faults`` and ``interrupts`` do not apply.

    Raises:
        CheckFailed: for the shrunk failing example, with the verdict, a call
            of :func:`check_receiver_example` (or
            :func:`check_tls_receiver_example`) that reproduces it, and a
            transcript of the fake's calls.
    """
    __tracebackhide__ = True
    from bufkit.testing._hyp import run_receiver_check

    run_receiver_check(
        make_receiver,
        encode=encode,
        messages=messages,
        max_examples=max_examples,
        max_chunks=max_chunks,
        faults=faults,
        interrupts=interrupts,
        seed=seed,
        tls=tls,
    )
