"""Schedule steps: what a fake socket does on each call, as printable values.

Theory of operation: a schedule is a plain sequence of frozen attrs steps. A
send-side call (``send``, ``sendmsg``, ``sendall``'s inner sends) consumes one
send step; a receive-side call (``recv``, ``recv_into``, ``recvmsg``) consumes
one receive step. Steps are values: they compare equal, hash, and their
``repr`` is Python code that rebuilds them, so a shrunk failure prints a
schedule that can be pasted into a regression test. Cost: O(1) per call.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Iterable
from typing import Final, TypeAlias, final

import attrs

__all__ = [
    "Accept",
    "AcceptAll",
    "AcceptAllBut",
    "AcceptBuffers",
    "Deliver",
    "Eof",
    "Fail",
    "Interrupt",
    "RecvStep",
    "SendStep",
    "Short",
    "Spurious",
    "WouldBlock",
    "format_schedule",
]

#: errno values whose error breaks the connection for good: later sends raise
#: ``EPIPE`` and later receives see end of file, as on Linux after a reset.
FATAL_ERRNOS: Final = frozenset({_errno.ECONNRESET, _errno.EPIPE})


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, not {value}")


def _known_errno(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value not in _errno.errorcode:
        raise ValueError(f"unknown errno {value}")


def _to_bytes(data: bytes | bytearray | memoryview) -> bytes:
    return bytes(data)


@final
@attrs.frozen(repr=False)
class Accept:
    """The next send accepts at most ``n`` bytes (fewer if fewer are offered).

    A cut may fall inside one buffer of a ``sendmsg`` gather list.
    """

    n: int = attrs.field(validator=_positive)

    def __repr__(self) -> str:
        return f"Accept({self.n})"


@final
@attrs.frozen(repr=False)
class AcceptAll:
    """The next send accepts every byte offered."""

    def __repr__(self) -> str:
        return "AcceptAll()"


@final
@attrs.frozen(repr=False)
class AcceptAllBut:
    """The next send accepts every byte offered but the last ``n``.

    The cut is placed relative to what is offered, so it falls inside the data
    whatever its size: ``AcceptAllBut(1)`` leaves exactly one byte unsent. At
    least one byte is accepted (a one-byte send is accepted whole).
    """

    n: int = attrs.field(validator=_positive)

    def __repr__(self) -> str:
        return f"AcceptAllBut({self.n})"

    def accepted(self, size: int) -> int:
        """The bytes accepted of ``size`` offered."""
        return max(1, size - self.n)


@final
@attrs.frozen(repr=False)
class AcceptBuffers:
    """The next send accepts exactly the first ``n`` buffers of its gather list.

    The cut falls exactly at a buffer boundary, never after the last one while
    there are two buffers or more (``n`` is lowered to all buffers but the
    last). A ``send`` offers one buffer, which is accepted whole.
    """

    n: int = attrs.field(validator=_positive)

    def __repr__(self) -> str:
        return f"AcceptBuffers({self.n})"

    def accepted(self, sizes: list[int]) -> int:
        """The bytes accepted of buffers of ``sizes`` offered."""
        whole = min(self.n, max(1, len(sizes) - 1))
        return sum(sizes[:whole]) or sum(sizes)


@final
@attrs.frozen(repr=False)
class WouldBlock:
    """The next call raises :class:`BlockingIOError` (``EAGAIN``).

    In blocking mode the call waits instead (instantly) and the next step runs.
    """

    def __repr__(self) -> str:
        return "WouldBlock()"


@final
@attrs.frozen(repr=False)
class Spurious:
    """Readiness that lies: reported ready, yet the call raises ``EAGAIN``.

    A :class:`bufkit.testing.FakeSelector` reports the socket ready while this
    step is next (a :class:`WouldBlock` step instead withholds readiness for
    one round); the call then raises :class:`BlockingIOError`, as after a
    spurious wakeup. Without a selector it acts as :class:`WouldBlock`.
    """

    def __repr__(self) -> str:
        return "Spurious()"


@final
@attrs.frozen(repr=False)
class Interrupt:
    """The next call raises :class:`InterruptedError` (``EINTR``)."""

    def __repr__(self) -> str:
        return "Interrupt()"


@final
@attrs.frozen(repr=False)
class Fail:
    """The next call raises the :class:`OSError` subclass for ``errno``.

    ``ECONNRESET`` and ``EPIPE`` break the connection: afterwards sends raise
    ``EPIPE`` and receives return end of file. Other errors (``ENOBUFS``,
    ``ENOMEM`` ...) are transient.
    """

    errno: int = attrs.field(validator=_known_errno)

    def __repr__(self) -> str:
        return f"Fail(errno.{_errno.errorcode[self.errno]})"

    @property
    def fatal(self) -> bool:
        """Whether this error breaks the connection for good."""
        return self.errno in FATAL_ERRNOS


@final
@attrs.frozen(repr=False)
class Deliver:
    """The next receive returns ``data`` (a short read if the buffer is smaller).

    Whatever does not fit in the caller's buffer is returned by the following
    receive, before any other step.
    """

    data: bytes = attrs.field(converter=_to_bytes)

    def __attrs_post_init__(self) -> None:
        if not self.data:
            raise ValueError(
                "Deliver needs at least one byte; use Eof() for end of file"
            )

    def __repr__(self) -> str:
        return f"Deliver({self.data!r})"


@final
@attrs.frozen(repr=False)
class Short:
    """The next receive returns at most ``n`` of the bytes the peer has sent.

    For sockets fed by a peer (:func:`bufkit.testing.fake_socketpair`, hybrid
    sockets): it splits the inbound stream. With nothing to read it would block.
    """

    n: int = attrs.field(validator=_positive)

    def __repr__(self) -> str:
        return f"Short({self.n})"


@final
@attrs.frozen(repr=False)
class Eof:
    """The peer closed its side: this and every later receive return ``b""``."""

    def __repr__(self) -> str:
        return "Eof()"


SendStep: TypeAlias = (
    Accept
    | AcceptAll
    | AcceptAllBut
    | AcceptBuffers
    | WouldBlock
    | Spurious
    | Interrupt
    | Fail
)
"""A step of an outbound schedule."""

RecvStep: TypeAlias = Deliver | Short | WouldBlock | Spurious | Interrupt | Fail | Eof
"""A step of an inbound schedule."""

SEND_STEP_TYPES: Final = (
    Accept,
    AcceptAll,
    AcceptAllBut,
    AcceptBuffers,
    WouldBlock,
    Spurious,
    Interrupt,
    Fail,
)
RECV_STEP_TYPES: Final = (Deliver, Short, WouldBlock, Spurious, Interrupt, Fail, Eof)


def format_schedule(steps: Iterable[SendStep | RecvStep]) -> str:
    """Return ``steps`` as a Python list expression that rebuilds them.

    Args:
        steps: any schedule.

    Returns:
        Source text such as ``[Accept(3), WouldBlock(), Fail(errno.EPIPE)]``.
    """
    return "[" + ", ".join(repr(step) for step in steps) + "]"


SEND_FAULTS: Final[tuple[int, ...]] = (
    _errno.ECONNRESET,
    _errno.EPIPE,
    _errno.ENOBUFS,
    _errno.ENOMEM,
)
"""errno values real kernels give on ``send``/``sendmsg`` of a stream socket."""

RECV_FAULTS: Final[tuple[int, ...]] = (_errno.ECONNRESET, _errno.ETIMEDOUT)
"""errno values real kernels give on ``recv``/``recv_into`` of a stream socket."""

ERRNO_CATALOGUE: Final[dict[int, str]] = {
    _errno.EAGAIN: "send or receive would block (BlockingIOError): wait for readiness",
    _errno.EINTR: "a signal interrupted the call (InterruptedError): retry it",
    _errno.ECONNRESET: "the peer reset the connection (ConnectionResetError); "
    "on receive after a RST, on send when the RST arrived first",
    _errno.EPIPE: "send after a reset, after shutdown(SHUT_WR), or the second "
    "send after the peer closed (the first is accepted, as over TCP) "
    "(BrokenPipeError)",
    _errno.ENOBUFS: "sendmsg: the kernel ran out of buffer space; transient",
    _errno.ENOMEM: "the kernel could not allocate memory; transient",
    _errno.EMSGSIZE: "sendmsg was given more than IOV_MAX buffers",
    _errno.ETIMEDOUT: "receive on a connection that timed out (TimeoutError)",
    _errno.EBADF: "any call on a closed socket",
    _errno.ENOTCONN: "shutdown of a connection that was reset",
}
"""The faults the fakes reproduce, by errno, with when real kernels give them."""
