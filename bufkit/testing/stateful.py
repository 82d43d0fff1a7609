"""A Hypothesis state machine that model-checks a stateful writer (needs Hypothesis).

Subclass :class:`SenderMachine`, say how to build your sender around a fake
socket, and let Hypothesis interleave writes, writable events, clogged and
unclogged sockets and resets in any order::

    from bufkit.testing.stateful import SenderMachine

    class MyWriterMachine(SenderMachine):
        def make_sender(self, sock):
            return MyWriter(sock)

    TestMyWriter = MyWriterMachine.TestCase

Theory of operation: the machine keeps a :class:`~bufkit.testing.Ledger` of
what was written and checks after every step that the wire is a prefix of it
(docs/design.md invariant 1), that unsent data means write interest is armed
(invariant 3), that a writable event with nothing to send disarms it, and
that a socket error reaches the caller. At teardown it drains the sender,
checking the same invariants after each writable event, and requires every
byte on the wire.
"""

from __future__ import annotations

import errno
from typing import NoReturn

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bufkit.testing._errors import CheckFailed
from bufkit.testing._fakesocket import FakeSocket
from bufkit.testing._ledger import Ledger
from bufkit.testing._schedule import Accept, Fail, SendStep, WouldBlock
from bufkit.testing._sendcheck import _QUIET, Sender

__all__ = ["SenderMachine"]

_DRAIN_LIMIT = 10_000

_CLOGS = st.lists(
    st.one_of(st.builds(Accept, st.integers(1, 64)), st.just(WouldBlock())),
    min_size=1,
    max_size=4,
)


class SenderMachine(RuleBasedStateMachine):
    """Model-check a sender (a :class:`~bufkit.testing.Sender`) step by step.

    Override :meth:`make_sender`. Set the class attribute ``resets`` to
    ``False`` to inject no ``ECONNRESET``. Writes are up to 200 bytes; clogs
    are partial sends of up to 64 bytes and would-blocks. Since most drawn
    writes are a few bytes long, a second write rule schedules a partial send
    shorter than its own data, so that partial sends happen in most runs.
    """

    resets = True

    def __init__(self) -> None:
        super().__init__()
        self.sock = FakeSocket(busy_limit=3)
        self.ledger = Ledger()
        self.failed = False
        self.verdict: str | None = None
        self.sender = self.make_sender(self.sock)

    def make_sender(self, sock: FakeSocket) -> Sender:
        """Build the sender under test around ``sock``; override this."""
        raise NotImplementedError("override make_sender(sock) in your subclass")

    def _fail(self, problem: str) -> NoReturn:
        self.verdict = problem
        calls = self.sock.transcript(30)
        raise CheckFailed(f"{problem}\n\nfake socket calls:\n{calls}")

    def _call(self, action: str, *args: bytes) -> None:
        """Run ``sender.<action>(*args)``; judge what escaped it."""
        before = self.sock.call_count
        try:
            getattr(self.sender, action)(*args)
        except OSError as exc:
            fatal = [c for c in self.sock.calls[before:] if c.errno not in _QUIET]
            if not fatal:
                self._fail(
                    f"{exc!r} escaped from {action}(); the fake raised no such error"
                )
            self.failed = True
            return
        for call in self.sock.calls[before:]:
            if call.errno not in _QUIET:
                name = errno.errorcode.get(call.errno or 0, call.errno)
                self._fail(f"{action}() swallowed {name} raised by {call.op}")

    @precondition(lambda self: not self.failed)
    @rule(data=st.binary(max_size=200))
    def write(self, data: bytes) -> None:
        """Write ``data``."""
        self.ledger.expect(data)
        self._call("write", data)

    @precondition(lambda self: not self.failed)
    @rule(data=st.binary(min_size=2, max_size=200), cut=st.integers(1, 199))
    def write_partly_sent(self, data: bytes, cut: int) -> None:
        """Write ``data`` with a partial send of ``cut`` bytes scheduled first."""
        self.sock.schedule_send(Accept(min(cut, len(data) - 1)))
        self.ledger.expect(data)
        self._call("write", data)

    @precondition(lambda self: not self.failed and self.sender.wants_writable)
    @rule()
    def writable(self) -> None:
        """Deliver a writable event (only while interest is armed)."""
        idle = self.sock.wire == self.ledger.expected
        self.sock.mark_waited()
        self._call("on_writable")
        if idle and not self.failed and self.sender.wants_writable:
            self._fail("a writable event with nothing to send left interest armed")

    @rule(steps=_CLOGS)
    def clog(self, steps: list[SendStep]) -> None:
        """Make the next sends partial or would-block (always possible)."""
        self.sock.schedule_send(*steps)

    @precondition(lambda self: not self.failed and self.resets)
    @rule()
    def reset(self) -> None:
        """Make the next send fail with ``ECONNRESET``."""
        self.sock.schedule_send(Fail(errno.ECONNRESET))

    @invariant()
    def wire_is_a_prefix(self) -> None:
        """Every byte on the wire was written, once, in order."""
        verdict = self.ledger.verdict(self.sock.wire, complete=False)
        if verdict:
            self._fail(verdict)

    @invariant()
    def pending_means_armed(self) -> None:
        """Unsent data means write interest is armed."""
        unsent = len(self.ledger.expected) - len(self.sock.wire)
        if not self.failed and unsent and not self.sender.wants_writable:
            self._fail(f"{unsent} bytes unsent but write interest is not armed")

    @invariant()
    def no_busy_retries(self) -> None:
        """No send right after EAGAIN without waiting, twice."""
        if self.sock.busy_retries > 1:
            self._fail("send retried right after EAGAIN without waiting for writable")

    def teardown(self) -> None:
        """Drain the sender, checking the invariants; every byte must reach the wire."""
        if self.verdict is not None:
            return  # a check failed already: report that one
        for _ in range(_DRAIN_LIMIT):
            if self.failed or not self.sender.wants_writable:
                break
            self.sock.mark_waited()
            self._call("on_writable")
            self.wire_is_a_prefix()
            self.pending_means_armed()
        if not self.failed:
            verdict = self.ledger.verdict(self.sock.wire)
            if verdict:
                self._fail(verdict)
