"""The state and bookkeeping of a fake socket, and its plain socket surface.

Theory of operation: this base holds what a :class:`FakeSocket` knows (its
schedules, the wire, the inbox fed by a peer, the call records, the flags of
shutdown, reset and close) and the methods that only read or flip that state.
The scheduled sends and receives live in ``_fakesocket.py``. Cost: O(1) per
call apart from the bytes copied.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import sys
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final, Literal, NoReturn

from bufkit.testing._errors import BusyLoopError, DeadlockError, StepBudgetExceeded
from bufkit.testing._records import Call, format_transcript, os_error
from bufkit.testing._schedule import (
    RECV_STEP_TYPES,
    SEND_STEP_TYPES,
    Fail,
    Interrupt,
    RecvStep,
    SendStep,
    Spurious,
    WouldBlock,
)

if TYPE_CHECKING:
    from typing import Self

    from typing_extensions import Buffer

__all__ = ["IOV_MAX", "FakeSocketBase", "byte_view", "connect"]


def _sysconf_iov_max() -> int:
    try:
        value = os.sysconf("SC_IOV_MAX")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - platform
        value = -1
    return value if value > 0 else 1024


IOV_MAX: Final = _sysconf_iov_max()
"""The most buffers one ``sendmsg`` takes (``SC_IOV_MAX``, 1024 where unknown)."""

_FDS: Final = itertools.count(1_000_000)
_DEFAULTS: Final = (
    ("after_send", "accept"),
    ("after_recv", "block"),
    ("iov_max", IOV_MAX),
    ("step_budget", None),
    ("busy_limit", None),
    ("spin_limit", 1000),
)
_PORTS: Final = itertools.count(40_000)


def byte_view(data: Buffer) -> memoryview:
    view = memoryview(data)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _check_steps(steps: Iterable[object], types: tuple[type, ...], side: str) -> None:
    for step in steps:
        if not isinstance(step, types):
            names = ", ".join(t.__name__ for t in types)
            raise TypeError(f"{step!r} is not a {side} step (one of {names})")


class FakeSocketBase:
    """State, bookkeeping and the socket surface shared by the fakes."""

    family: Final = socket.AF_INET
    type: Final = socket.SOCK_STREAM
    proto: Final = 0

    def __init__(
        self,
        send: Iterable[SendStep] = (),
        recv: Iterable[RecvStep] = (),
        *,
        after_send: Literal["accept", "block"] = "accept",
        after_recv: Literal["block", "eof"] = "block",
        iov_max: int = IOV_MAX,
        step_budget: int | None = None,
        busy_limit: int | None = None,
        spin_limit: int | None = 1000,
    ) -> None:
        #: The send schedule as given (see :attr:`remaining_send`).
        self.send_schedule: tuple[SendStep, ...] = tuple(send)
        #: The receive schedule as given (see :attr:`remaining_recv`).
        self.recv_schedule: tuple[RecvStep, ...] = tuple(recv)
        _check_steps(self.send_schedule, SEND_STEP_TYPES, "send")
        _check_steps(self.recv_schedule, RECV_STEP_TYPES, "receive")
        if after_send not in ("accept", "block") or after_recv not in ("block", "eof"):
            raise ValueError(
                f"bad after_send/after_recv: {after_send!r}/{after_recv!r}"
            )
        self.after_send = after_send
        self.after_recv = after_recv
        self.iov_max = iov_max
        self.step_budget = step_budget
        self.busy_limit = busy_limit
        self.spin_limit = spin_limit
        #: Calls made right after ``EAGAIN`` without waiting for readiness.
        self.busy_retries = 0
        self._stalled = 0
        self._progress_mark: tuple[int, int, int, int] = (-1, 0, 0, 0)
        self._send_steps: deque[SendStep] = deque(self.send_schedule)
        self._recv_steps: deque[RecvStep] = deque(self.recv_schedule)
        self._wire = bytearray()
        self._received = bytearray()
        self._inbox = bytearray()
        self._inbox_eof = False
        self._eof_seen = False
        self._broken = False
        self._reset_pending = False
        self._shut_rd = self._shut_wr = False
        self._closed = False
        self._timeout: float | None = 0.0
        self._fd = next(_FDS)
        self._peer: FakeSocketBase | None = None
        self._calls: list[Call] = []
        self._seen: set[str] = set()
        self._eagain = {"send": False, "recv": False}
        self._options: dict[tuple[int, int], int] = {}
        self._sockname = ("127.0.0.1", next(_PORTS))
        self._peername = ("127.0.0.1", next(_PORTS))

    # -- what happened ---------------------------------------------------
    @property
    def wire(self) -> bytes:
        """Every byte the fake accepted from sends, in order."""
        return bytes(self._wire)

    @property
    def received(self) -> bytes:
        """Every byte the fake returned from receives, in order."""
        return bytes(self._received)

    @property
    def calls(self) -> list[Call]:
        """The record of every call, oldest first (a copy)."""
        return list(self._calls)

    @property
    def call_count(self) -> int:
        """How many calls were made so far (cheaper than ``len(calls)``)."""
        return len(self._calls)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def remaining_send(self) -> tuple[SendStep, ...]:
        """The send steps not consumed yet."""
        return tuple(self._send_steps)

    @property
    def remaining_recv(self) -> tuple[RecvStep, ...]:
        """The receive steps not consumed yet."""
        return tuple(self._recv_steps)

    def transcript(self, limit: int = 60) -> str:
        """Return the last ``limit`` calls as ``strace``-like lines."""
        return format_transcript(self._calls, limit=limit)

    @property
    def faults_seen(self) -> frozenset[str]:
        """Labels of the hostile behaviours this fake has shown so far.

        Such as ``"partial send"``, ``"cut inside a gather buffer"``,
        ``"EAGAIN on send"``, ``"short read"``, ``"EOF"``, ``"EINTR"`` or an
        errno name like ``"ECONNRESET"``: fault coverage for a test run.
        Inside a Hypothesis test each new label is also reported with
        :func:`hypothesis.event`, so ``pytest --hypothesis-show-statistics``
        lists how often each fault was exercised.
        """
        return frozenset(self._seen)

    def __repr__(self) -> str:
        # Python code that rebuilds the fake in its initial state.
        args = [f"send={list(self.send_schedule)!r}"]
        args.append(f"recv={list(self.recv_schedule)!r}")
        for name, default in _DEFAULTS:
            if (value := getattr(self, name)) != default:
                args.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(args)})"

    # -- feeding the fake ------------------------------------------------
    def schedule_send(self, *steps: SendStep) -> None:
        """Append ``steps`` to the send schedule (for stateful tests).

        Raises:
            TypeError: for a step that is not a send step.
        """
        _check_steps(steps, SEND_STEP_TYPES, "send")
        self._send_steps.extend(steps)

    def schedule_recv(self, *steps: RecvStep) -> None:
        """Append ``steps`` to the receive schedule (for stateful tests).

        Raises:
            TypeError: for a step that is not a receive step.
        """
        _check_steps(steps, RECV_STEP_TYPES, "receive")
        self._recv_steps.extend(steps)

    def feed(self, data: Buffer) -> None:
        """Make ``data`` arrive from the peer (read by :class:`Short` or at the end)."""
        self._inbox += byte_view(data)

    def feed_eof(self) -> None:
        """Make the peer shut down its sending side after what was fed."""
        self._inbox_eof = True

    def _note(self, label: str) -> None:
        """Record a fault label; inside a Hypothesis test, also as an event."""
        if label in self._seen:
            return
        self._seen.add(label)
        hypothesis = sys.modules.get("hypothesis")  # never imported from here
        if hypothesis is not None and hypothesis.currently_in_test_context():
            hypothesis.event(f"fake socket: {label}")

    def mark_waited(self) -> None:
        """Note that the code under test waited for readiness before its next call.

        :class:`FakeSelector` and the conformance checks call it; a call after
        ``EAGAIN`` without it counts in :attr:`busy_retries`.
        """
        self._eagain["send"] = self._eagain["recv"] = False
        self._stalled = 0

    # -- errors and liveness ---------------------------------------------
    def _begin(self, op: str, size: int, count: int, side: str) -> None:
        __tracebackhide__ = True
        if self.step_budget is not None and len(self._calls) >= self.step_budget:
            raise StepBudgetExceeded(
                f"the code under test made more than {self.step_budget} calls on "
                f"{self!r}; last calls:\n{self.transcript(10)}"
            )
        self._check_progress()
        if self._closed:
            self._raise(op, size, errno.EBADF, "socket is closed", count)
        if self._eagain[side]:
            self.busy_retries += 1
            if self.busy_limit is not None and self.busy_retries > self.busy_limit:
                raise BusyLoopError(
                    f"{op} retried right after EAGAIN without waiting for readiness "
                    f"({self.busy_retries} times); last calls:\n{self.transcript(10)}"
                )

    def _check_progress(self) -> None:
        """Count calls that moved no byte, used no step and waited for nothing."""
        __tracebackhide__ = True
        mark = (
            len(self._send_steps),
            len(self._recv_steps),
            len(self._wire),
            len(self._received),
        )
        self._stalled = self._stalled + 1 if mark == self._progress_mark else 0
        self._progress_mark = mark
        if self.spin_limit is not None and self._stalled >= self.spin_limit:
            raise BusyLoopError(
                f"no progress: {self._stalled} calls in a row moved no byte, used "
                f"no scheduled step and waited for nothing (the last: "
                f"{self._calls[-1]}); a loop that retries them spins forever"
            )

    def _raise(
        self, op: str, size: int, code: int, why: str, count: int = 1
    ) -> NoReturn:
        self._calls.append(Call(op, size, count, None, code))
        self._note(errno.errorcode[code])
        raise os_error(code, f"fake {op}: {why}")

    def _fail(
        self, op: str, size: int, step: Interrupt | Fail, count: int = 1
    ) -> NoReturn:
        code = errno.EINTR if isinstance(step, Interrupt) else step.errno
        self._calls.append(Call(op, size, count, None, code, step))
        self._note(errno.errorcode[code])
        if isinstance(step, Fail) and step.fatal:
            self._broken = True
        raise os_error(code, f"fake {op}: scheduled {step!r}")

    def _would_block(
        self,
        op: str,
        size: int,
        side: str,
        step: WouldBlock | Spurious | None,
        count: int = 1,
    ) -> None:
        if self._timeout != 0.0:
            if step is not None:
                return  # blocking mode: the wait happens, then the next step runs
            if self._timeout is None:
                raise DeadlockError(f"blocking {op} on {self!r} would wait forever")
            raise TimeoutError("timed out")
        self._eagain[side] = True
        self._note(f"EAGAIN on {side}")
        self._calls.append(Call(op, size, count, None, errno.EAGAIN, step))
        raise os_error(errno.EAGAIN, f"fake {op}: would block")

    # -- the rest of the socket surface ----------------------------------
    def fileno(self) -> int:
        """Return a fake, unique descriptor number (-1 once closed)."""
        return -1 if self._closed else self._fd

    def close(self) -> None:
        """Close; the peer sees end of file, or a reset if bytes were left unread."""
        if self._closed:
            return
        self._calls.append(Call("close"))
        self._closed = True
        if self._peer is not None:
            if self._inbox:
                self._peer._reset_pending = True
            else:
                self._peer._inbox_eof = True

    def reset(self) -> None:
        """Close abortively (``SO_LINGER`` 0).

        The peer's next receive raises ``ECONNRESET``.
        """
        if self._peer is not None and not self._closed:
            self._peer._reset_pending = True
        self._calls.append(Call("reset"))
        self._closed = True

    def shutdown(self, how: int, /) -> None:
        """Shut down reading (``SHUT_RD``), writing (``SHUT_WR``) or both."""
        if self._closed:
            self._raise("shutdown", 0, errno.EBADF, "socket is closed")
        if self._broken or self._reset_pending:
            self._raise("shutdown", 0, errno.ENOTCONN, "connection was reset")
        self._calls.append(Call("shutdown", how))
        self._shut_rd |= how in (socket.SHUT_RD, socket.SHUT_RDWR)
        if how in (socket.SHUT_WR, socket.SHUT_RDWR):
            self._shut_wr = True
            if self._peer is not None:
                self._peer._inbox_eof = True

    def setblocking(self, flag: bool, /) -> None:
        """Switch between blocking (``True``) and non-blocking mode."""
        self._timeout = None if flag else 0.0

    def getblocking(self) -> bool:
        """Whether the socket is in blocking mode (a timeout counts as blocking)."""
        return self._timeout != 0.0

    def settimeout(self, value: float | None, /) -> None:
        """Set the timeout: ``None`` blocks, ``0.0`` is non-blocking."""
        self._timeout = value

    def gettimeout(self) -> float | None:
        """Return the timeout (``0.0`` in non-blocking mode)."""
        return self._timeout

    def getsockname(self) -> Any:
        """Return a fake local address."""
        return self._sockname

    def getpeername(self) -> Any:
        """Return a fake peer address."""
        if self._closed:
            self._raise("getpeername", 0, errno.EBADF, "socket is closed")
        return self._peer._sockname if self._peer else self._peername

    def setsockopt(self, level: int, option: int, value: int | Buffer, /) -> None:
        """Remember an option (integers only); it changes no behaviour."""
        self._options[level, option] = value if isinstance(value, int) else 0

    def getsockopt(self, level: int, option: int, /) -> int:
        """Return a remembered option, or 0 (``SO_ERROR`` is always 0)."""
        return self._options.get((level, option), 0)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def connect(a: FakeSocketBase, b: FakeSocketBase) -> None:
    """Make ``a`` and ``b`` peers: what one accepts arrives in the other's inbox."""
    a._peer, b._peer = b, a
