"""The small structural types the core talks to.

The core never imports an event loop or :mod:`socket`'s concrete classes: it
sends to anything with ``sendmsg`` or ``send``, reads from anything with
``recv_into``, and calls back anything with ``data_received``. A real
:class:`socket.socket`, an :class:`ssl.SSLSocket` (``send`` only) and
:class:`bufkit.testing.FakeSocket` all fit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol, TypeAlias

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "CompletionCallback",
    "ReadHandler",
    "SupportsRecvInto",
    "SupportsSend",
    "SupportsSendmsg",
]

CompletionCallback: TypeAlias = Callable[[BaseException | None], object]
"""Called once per write: with ``None`` when its last byte was accepted by the
kernel, or with the exception that failed the queue first."""


class SupportsSend(Protocol):
    """Something bytes can be sent to, one buffer per call."""

    def send(self, data: Buffer, /) -> int:
        """Send from ``data``; return how many bytes were accepted."""
        ...


class SupportsSendmsg(Protocol):
    """Something a gather list can be sent to in one call."""

    def sendmsg(self, buffers: Iterable[Buffer], /) -> int:
        """Send from ``buffers`` in order; return how many bytes were accepted."""
        ...


class SupportsRecvInto(Protocol):
    """Something bytes can be received from into a caller's buffer."""

    def recv_into(self, buffer: memoryview, /) -> int:
        """Fill ``buffer`` from the start; return the count, 0 at end of file."""
        ...


class ReadHandler(Protocol):
    """What a :class:`bufkit.ReadinessReader` hands received bytes to."""

    def data_received(self, view: memoryview, /) -> None:
        """Take the bytes just received.

        ``view`` is valid only during the call: copy what you keep, or take
        ownership of the buffer through the reader.
        """

    def eof_received(self) -> bool | None:
        """The peer closed its sending side; no more data will arrive.

        Return a true value to keep the writing side open (asyncio semantics).
        """


# Document and report them under the package that exports them.
for _cls in (SupportsSend, SupportsSendmsg, SupportsRecvInto, ReadHandler):
    _cls.__module__ = "bufkit"
del _cls
