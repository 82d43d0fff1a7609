"""The selectors adapter's vocabulary: interest, states, sockets, protocols.

Theory of operation: these are data and structural types only. A connection's
life is the :class:`ConnectionState` enum plus the table
:data:`CONNECTION_TRANSITIONS`; ``Connection._set_state`` refuses any change
the table does not list, and the test suite drives random call sequences
against it (and checks the reference docs' copy of the table). :class:`Interest`
values are :mod:`selectors`' event bits, so a loop passes them straight to
``register``/``modify``. Cost: none at run time beyond one dict lookup per state
change.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from bufkit.adapters._sel_conn import Connection

__all__ = [
    "CONNECTION_TRANSITIONS",
    "ConnectionProtocol",
    "ConnectionState",
    "DeferCallback",
    "Interest",
    "InterestCallback",
    "SelectableSocket",
    "StreamSocket",
]


class Interest(enum.IntFlag):
    """The readiness a connection wants; values match :mod:`selectors`' events."""

    NONE = 0
    READ = 1  # selectors.EVENT_READ
    WRITE = 2  # selectors.EVENT_WRITE
    BOTH = 3


class ConnectionState(enum.Enum):
    """Where a :class:`Connection` is in its life.

    The legal changes are listed in :data:`CONNECTION_TRANSITIONS`.
    """

    NEW = "new"
    """Built, :meth:`Connection.start` not called yet."""
    OPEN = "open"
    """Reading and writing."""
    WRITE_SHUTTING = "write-shutting"
    """:meth:`Connection.write_eof` called: draining, then ``shutdown(SHUT_WR)``."""
    WRITE_SHUT = "write-shut"
    """The sending side is shut; still reading."""
    CLOSING = "closing"
    """:meth:`Connection.close` called: not reading, draining, then closing."""
    CLOSED = "closed"
    """The socket is closed and ``connection_lost`` was called."""


_S = ConnectionState
CONNECTION_TRANSITIONS: Final[Mapping[ConnectionState, frozenset[ConnectionState]]] = {
    _S.NEW: frozenset({_S.OPEN, _S.CLOSED}),
    _S.OPEN: frozenset({_S.WRITE_SHUTTING, _S.CLOSING, _S.CLOSED}),
    _S.WRITE_SHUTTING: frozenset({_S.WRITE_SHUT, _S.CLOSING, _S.CLOSED}),
    _S.WRITE_SHUT: frozenset({_S.CLOSING, _S.CLOSED}),
    _S.CLOSING: frozenset({_S.CLOSED}),
    _S.CLOSED: frozenset(),
}
"""Every legal state change of a :class:`Connection`; anything else is a bug."""

_READABLE: Final = frozenset({_S.OPEN, _S.WRITE_SHUTTING, _S.WRITE_SHUT})


class StreamSocket(Protocol):
    """The socket methods a :class:`Connection` uses.

    A non-blocking :class:`socket.socket` fits, and so does
    :class:`bufkit.testing.FakeSocket`. ``sendmsg`` is used when present.
    """

    def recv_into(self, buffer: memoryview, /) -> int:
        """Fill ``buffer`` from the start; return the count, 0 at end of file."""
        ...

    def send(self, data: Buffer, /) -> int:
        """Send from ``data``; return how many bytes were accepted."""
        ...

    def shutdown(self, how: int, /) -> None:
        """Shut one or both directions of the stream."""
        ...

    def close(self) -> None:
        """Close the socket."""
        ...


class SelectableSocket(StreamSocket, Protocol):
    """A :class:`StreamSocket` a selector can watch, as :class:`Loop` needs."""

    def fileno(self) -> int:
        """Return the descriptor to watch."""
        ...

    def setblocking(self, flag: bool, /) -> None:
        """Switch blocking mode (the loop turns it off)."""
        ...


class ConnectionProtocol(Protocol):
    """What a :class:`Connection` calls back: asyncio's protocol callbacks.

    Write all six methods on any class (a structural match), or subclass this
    class and write only those you need: the others do nothing. Every callback
    runs inside an event; writes made there are flushed once, after it
    returns. An exception raised by a callback is logged and aborts the
    connection.
    """

    __slots__ = ()  # so subclasses that declare slots carry no instance dict

    def connection_made(self, conn: Connection, /) -> None:
        """The connection is open; keep ``conn`` to write to it."""
        return

    def data_received(self, view: memoryview, /) -> None:
        """Take received bytes; ``view`` is valid only during the call.

        Copy what you keep, or own the chunk with :meth:`Connection.take_buffer`.
        """
        return

    def eof_received(self) -> bool | None:
        """The peer shut its sending side; return true to keep writing."""
        return None

    def connection_lost(self, exc: BaseException | None, /) -> None:
        """The connection is closed: ``None`` if cleanly, else the error."""
        return

    def pause_writing(self) -> None:
        """The write queue went above its high watermark: stop writing."""
        return

    def resume_writing(self) -> None:
        """The write queue drained below its low watermark: write again."""
        return


InterestCallback = Callable[["Connection", Interest], object]
"""``on_interest(conn, interest)``: the readiness a connection wants changed."""
DeferCallback = Callable[[Callable[[], object]], object]
"""``defer(flush)``: run ``flush()`` at the end of the loop iteration."""
