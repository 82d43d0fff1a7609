"""``check_sender``: run a user's sender against hostile schedules, judge it.

Theory of operation: the driver plays a readiness event loop. It writes each
message through ``sender.write``, delivers a writable event (``on_writable``)
only while the sender asks for one (``wants_writable``), and stops when the
sender no longer asks. Then it judges the fake's wire against a
:class:`~bufkit.testing._ledger.Ledger` (docs/design.md invariant 1), the
errors raised against those the fake raised, and the call pattern against
busy loops. :func:`check_sender` draws messages and schedules with Hypothesis,
which shrinks a failure to the fewest and smallest faults. Cost: one fake and
O(bytes) judging per example.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from typing import Protocol

from bufkit.testing._errors import BusyLoopError, CheckFailed, StepBudgetExceeded
from bufkit.testing._fakebase import IOV_MAX
from bufkit.testing._fakesocket import FakeSocket
from bufkit.testing._ledger import Ledger, common_prefix
from bufkit.testing._records import Call
from bufkit.testing._schedule import SendStep, format_schedule
from bufkit.testing._tls_fake import FakeTLSSocket

__all__ = ["Sender", "check_sender", "check_sender_example"]

_IDLE_LIMIT = 3
_SHOWN = 40  # transcript lines in a report
_QUIET = (None, errno.EAGAIN, errno.EINTR)


class Sender(Protocol):
    """What :func:`check_sender` drives: your writer, wrapped around a socket.

    Build it from the socket (``make_sender(sock)``). ``write`` may send at
    once or queue; ``on_writable`` is called on a writable event; while
    ``wants_writable`` is true the loop keeps delivering writable events.
    Socket errors must propagate out of ``write`` or ``on_writable``.
    """

    def write(self, data: bytes, /) -> object:
        """Send or queue ``data`` after everything written before."""
        ...

    def on_writable(self) -> object:
        """The socket is writable: send what is pending."""
        ...

    @property
    def wants_writable(self) -> bool:
        """Whether write interest is armed (something is left to send)."""
        ...


def check_sender_example(
    make_sender: Callable[[FakeSocket], Sender],
    messages: Sequence[bytes],
    schedule: Sequence[SendStep],
    *,
    writable_after: Sequence[bool] = (),
    burst: bool = False,
    iov_max: int = IOV_MAX,
    step_budget: int = 20_000,
    max_buffered: int | None = None,
) -> FakeSocket:
    """Run one example of :func:`check_sender`; a failing run prints this call.

    Args:
        make_sender: builds your sender around the fake socket it is given.
        messages: the messages to write, in order.
        schedule: the fake's send schedule.
        writable_after: for message ``i``, whether a writable event (if
            armed) is delivered right after writing it.
        burst: first write ``iov_max + 1`` one-byte messages, to catch gather
            lists longer than ``IOV_MAX``.
        iov_max: the fake's limit on buffers per ``sendmsg``.
        step_budget: the most socket calls the sender may make.
        max_buffered: check flow control: the bytes written but not yet
            accepted may exceed this by at most one message. While the
            sender's optional ``paused`` attribute is true, the driver writes
            nothing and delivers writable events instead.

    Returns:
        The fake socket, for further assertions.

    Raises:
        CheckFailed: with the verdict, this call to reproduce it, and a
            transcript of the fake's calls.
    """
    __tracebackhide__ = True
    burst_messages = [bytes([i % 256]) for i in range(iov_max + 1)] if burst else []
    sock = FakeSocket(
        send=schedule, iov_max=iov_max, step_budget=step_budget, busy_limit=2
    )
    ledger = Ledger()
    problem, error, sender = None, None, None
    try:
        sender = make_sender(sock)
        for i, message in enumerate([*burst_messages, *messages]):
            if max_buffered is not None:
                _wait_while_paused(sock, sender)
                problem = _overbuffered(sock, sender, ledger, max_buffered)
                if problem:
                    break
            ledger.expect(message)
            sock._stalled = 0  # new data: calls the write makes start afresh
            sender.write(message)
            j = i - len(burst_messages)
            if 0 <= j < len(writable_after) and writable_after[j]:
                _writable_event(sock, sender)
        problem = problem or _drain(sock, sender, ledger)
    except OSError as exc:
        error = exc
    except (BusyLoopError, StepBudgetExceeded) as exc:
        problem = _stopped(exc)
    problem = problem or _judge(sock, sender, ledger, error)
    if problem:
        call = (
            f"check_sender_example(make_sender, messages={list(messages)!r}, "
            f"schedule={format_schedule(schedule)}, "
            f"writable_after={list(writable_after)!r}, burst={burst!r})"
        )
        raise CheckFailed(_report("check_sender", problem, call, sock))
    return sock


def _wait_while_paused(sock: FakeSocket, sender: Sender) -> None:
    for _ in range(_IDLE_LIMIT * 100):
        if not (getattr(sender, "paused", False) and sender.wants_writable):
            return
        _writable_event(sock, sender)


def _overbuffered(
    sock: FakeSocket, sender: Sender, ledger: Ledger, limit: int
) -> str | None:
    """Judge flow control before a write: above the limit, be paused."""
    buffered = len(ledger.expected) - len(sock.wire)
    if buffered <= limit or getattr(sender, "paused", False):
        return None
    return (
        f"unbounded buffering: {buffered} bytes were buffered while the peer was "
        f"clogged, more than max_buffered={limit}, and the producer was not "
        "paused: pause it at a high-water mark (and expose it as `paused`)"
    )


def _writable_event(sock: FakeSocket, sender: Sender) -> None:
    if sender.wants_writable:
        sock.mark_waited()
        sender.on_writable()


def _drain(sock: FakeSocket, sender: Sender, ledger: Ledger) -> str | None:
    idle = 0
    while sender.wants_writable:
        if sock.wire == ledger.expected:
            return (
                "the sender still asks for write readiness with nothing left to "
                "send: a busy loop on writable (the loop wakes it forever)"
            )
        before = (len(sock._wire), len(sock._send_steps))
        _writable_event(sock, sender)
        moved = before != (len(sock._wire), len(sock._send_steps))
        idle = 0 if moved else idle + 1
        if idle >= _IDLE_LIMIT:
            unsent = len(ledger.expected) - len(sock.wire)
            return (
                f"on_writable was called {idle} times with {unsent} bytes unsent "
                "and sent nothing: a busy loop on writable"
            )
    return None


def _judge(
    sock: FakeSocket, sender: Sender | None, ledger: Ledger, error: OSError | None
) -> str | None:
    calls = sock.calls
    for i, call in enumerate(calls):
        if call.errno == errno.EMSGSIZE:
            return (
                f"call #{i} passed {call.buffers} buffers to sendmsg, more than "
                f"IOV_MAX ({sock.iov_max}): the kernel refuses that with EMSGSIZE"
            )
    fatal = [(i, c) for i, c in enumerate(calls) if c.errno not in _QUIET]
    if fatal:
        i, call = fatal[0]
        if error is None or error.errno != call.errno:
            name = errno.errorcode[call.errno or 0]
            later = "" if error is None else f" (only a later {error!r} did)"
            return (
                f"the sender swallowed {name} raised by {call.op} (call #{i}): "
                f"socket errors must reach the caller{later}"
            )
        return ledger.verdict(sock.wire, complete=False)
    if error is not None:
        return f"{error!r} escaped from the sender: {_escaped_hint(error)}"
    if sock.busy_retries:
        return (
            f"the sender retried {_times(sock.busy_retries)} right after EAGAIN "
            "without waiting for readiness: a busy loop"
        )
    verdict = ledger.verdict(sock.wire)
    if verdict is None:
        return None
    return verdict + _loss_hint(sock, sender, ledger)


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def _escaped_hint(error: OSError) -> str:
    if isinstance(error, BlockingIOError):
        return "EAGAIN means 'wait for readiness', not failure"
    if isinstance(error, InterruptedError):
        return "EINTR means 'retry the call'"
    return "the fake raised no such error"


def _loss_hint(sock: FakeSocket, sender: Sender | None, ledger: Ledger) -> str:
    wire, calls, expected = sock.wire, sock.calls, ledger.expected
    at = common_prefix(wire, expected)
    accepted, last = 0, -1
    for i, call in enumerate(calls):
        if call.result and accepted < at:
            accepted, last = accepted + call.result, i
    stopped = expected.startswith(wire) and not (sender and sender.wants_writable)
    if stopped and sender is not None and _kept(sock, sender):
        return (
            f" (the sender stopped with {len(expected) - len(wire)} bytes unsent and "
            "did not ask for write readiness, yet sent them when woken up anyway: "
            "write interest was never armed)"
        )
    if last >= 0 and (calls[last].result or 0) < calls[last].size:
        c = calls[last]
        armed = " while the sender did not ask for write readiness" if stopped else ""
        return (
            f" (call #{last}: {c.op} accepted {c.result} of {c.size} bytes and the "
            f"rest was never offered again{armed}: is the return value ignored?)"
        )
    following = calls[last + 1] if last + 1 < len(calls) else None
    if following is not None and following.errno == errno.EAGAIN:
        return (
            f" (bytes went missing at EAGAIN, call #{last + 1}: was a buffer "
            "taken off the queue before it was sent?)"
        )
    if stopped:
        return (
            f" (the sender stopped with {len(expected) - len(wire)} bytes unsent, "
            "did not ask for write readiness and sent nothing when woken up "
            "anyway: were the bytes dropped?)"
        )
    return ""


def _kept(sock: FakeSocket, sender: Sender) -> bool:
    """Whether a sender that stopped still held its unsent bytes.

    A writable event it did not ask for tells: if bytes move, it had kept
    them and only failed to arm write interest.
    """
    before = len(sock._wire)
    sock.mark_waited()
    try:
        sender.on_writable()
    except Exception:
        return False
    return len(sock._wire) > before


def _stopped(exc: BusyLoopError | StepBudgetExceeded) -> str:
    """The fake's verdict without its short transcript: the report adds one."""
    return str(exc).partition("; last calls")[0]


def _report(check: str, problem: str, call: str, sock: FakeSocket) -> str:
    return (
        f"{check}: {problem}\n\nreproduce with:\n    {call}\n\n"
        f"fake socket calls:\n{_transcript(sock.calls)}"
    )


def _transcript(calls: list[Call], limit: int = _SHOWN) -> str:
    """Number ``calls``, folding a run of identical calls into one line."""
    lines: list[str] = []
    i = 0
    while i < len(calls):
        j = i
        while j + 1 < len(calls) and calls[j + 1] == calls[i]:
            j += 1
        more = f"    (and {j - i} more times, the same)" if j > i else ""
        lines.append(f"{i:4d}  {calls[i]}{more}")
        i = j + 1
    if len(lines) > limit:
        lines[: len(lines) - limit] = [f"... {len(lines) - limit} earlier lines"]
    return "\n".join(lines)


def check_sender(
    make_sender: Callable[[FakeSocket], Sender] | Callable[[FakeTLSSocket], Sender],
    *,
    max_examples: int | None = None,
    max_message: int = 256,
    max_messages: int = 8,
    faults: Sequence[int] = (errno.ECONNRESET, errno.EPIPE),
    interrupts: bool = False,
    iov_max: int = IOV_MAX,
    max_buffered: int | None = None,
    seed: int | None = None,
    tls: bool = False,
) -> None:
    """Check a sender against many hostile schedules (needs Hypothesis).

    The sender must put every byte on the wire exactly once and in order
    across partial sends (cut inside a gather buffer too) and ``EAGAIN``; arm
    write interest while data is pending and only then; never retry right
    after ``EAGAIN`` without waiting; never pass more than ``IOV_MAX``
    buffers; and let socket errors reach the caller.

    Args:
        make_sender: builds your sender (a :class:`Sender`) around a fake.
        max_examples: how many examples Hypothesis tries (default: the
            ``max_examples`` of the loaded Hypothesis settings profile, 100
            unless a profile says otherwise).
        max_message: the largest message drawn, in bytes.
        max_messages: the most messages per example.
        faults: errno values a schedule may end with (none: ``()``).
        interrupts: include ``EINTR``. Python retries it inside real socket
            calls (PEP 475), so few senders handle it; off by default.
        iov_max: the fake's limit on buffers per ``sendmsg``.
        max_buffered: also check flow control (see
            :func:`check_sender_example`); a clogged peer is tried first.
        seed: fix Hypothesis's seed (also see the ``--bufkit-seed`` option).
        tls: drive the sender over TLS instead: it gets a
            :class:`~bufkit.testing.FakeTLSSocket` (``send`` raises
            ``SSLWantReadError`` while the handshake needs the peer, and
            ``SSLWantWriteError``), over streams that cut records anywhere;
            see :func:`check_tls_sender_example`. ``faults``,
            ``interrupts``, ``iov_max`` and ``max_buffered`` do not apply.

    Raises:
        CheckFailed: for the shrunk failing example, with the verdict in terms
            of the messages, a call of :func:`check_sender_example` (or
            :func:`check_tls_sender_example`) that reproduces it, and a
            transcript of the fake's calls.
    """
    __tracebackhide__ = True
    from bufkit.testing._hyp import run_sender_check

    run_sender_check(
        make_sender,
        max_examples=max_examples,
        max_message=max_message,
        max_messages=max_messages,
        faults=faults,
        interrupts=interrupts,
        iov_max=iov_max,
        max_buffered=max_buffered,
        seed=seed,
        tls=tls,
    )
