"""Socket policies every adapter shares: accept back-off, TCP_NODELAY, peer errors.

Theory of operation
-------------------
Three small decisions that every loop adapter makes the same way, so they
live here once:

* **Accepting.** :class:`AcceptBackoff` classifies an ``accept`` error. Running
  out of descriptors or kernel memory (``EMFILE``, ``ENFILE``, ``ENOBUFS``,
  ``ENOMEM``) is :attr:`AcceptAction.BACK_OFF`: the listener stops accepting
  for :attr:`AcceptBackoff.delay` seconds, which doubles from
  :data:`BACKOFF_START` to :data:`BACKOFF_MAX` and resets after a successful
  accept, so a process out of descriptors neither spins on a listening socket
  that stays readable nor dies. A connection that died in the backlog
  (``ECONNABORTED``, ``EPROTO``, ``EPERM`` from a firewall) is
  :attr:`AcceptAction.SKIP`: accept the next one. Anything else is
  :attr:`AcceptAction.STOP`: wait for the next readiness event.
* **Latency.** :func:`set_nodelay` turns Nagle's algorithm off on TCP sockets:
  the write queue already gathers an event's writes into one send, so
  delaying small segments only adds a round trip (as asyncio, Twisted and
  uvloop do).
* **Peer errors.** :func:`is_peer_error` tells a peer's misbehaviour
  (reset, broken pipe, aborted, timed out) from a local fault, so adapters log
  the first quietly (docs/design.md invariant 6 covers the memory side: a
  failed connection is freed like a closed one).

Cost: nothing per byte; one ``setsockopt`` per accepted connection.
"""

from __future__ import annotations

import enum
import errno
from typing import TYPE_CHECKING, Final, final

if TYPE_CHECKING:
    import socket

__all__ = [
    "ACCEPT_LIMIT_ERRNOS",
    "ACCEPT_SKIP_ERRNOS",
    "BACKOFF_MAX",
    "BACKOFF_START",
    "PEER_ERRNOS",
    "AcceptAction",
    "AcceptBackoff",
    "is_peer_error",
    "set_nodelay",
]

BACKOFF_START: Final = 0.05
"""Seconds a listener waits after the first ``EMFILE``-like accept error."""
BACKOFF_MAX: Final = 1.0
"""The longest listener back-off, in seconds."""

ACCEPT_LIMIT_ERRNOS: Final = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
)
"""``accept`` errors that mean "out of a resource": back off."""
ACCEPT_SKIP_ERRNOS: Final = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})
"""``accept`` errors that concern one connection only: accept the next."""
PEER_ERRNOS: Final = frozenset(
    {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ETIMEDOUT}
)
"""Socket errors caused by the peer or the network, not by this process."""


class AcceptAction(enum.Enum):
    """What a listener does after an ``accept`` error."""

    BACK_OFF = "back-off"
    """Stop accepting for :attr:`AcceptBackoff.delay` seconds."""
    SKIP = "skip"
    """That connection died in the backlog: accept the next one."""
    STOP = "stop"
    """Stop this batch; accept again on the next readiness event."""


@final
class AcceptBackoff:
    """One listener's back-off state: the policy for ``accept`` errors.

    Call :meth:`failed` with each ``accept`` error and :meth:`accepted` after
    each success.
    """

    __slots__ = ("backoffs", "delay")

    def __init__(self) -> None:
        self.delay = 0.0
        """Seconds of the current (or last) back-off; 0 after a success."""
        self.backoffs = 0
        """Times accepting was suspended so far."""

    def failed(self, exc: OSError) -> AcceptAction:
        """Classify ``exc``; on :attr:`AcceptAction.BACK_OFF`, grow :attr:`delay`.

        Args:
            exc: The error ``accept`` raised (not a would-block one).

        Returns:
            What the listener should do now.
        """
        if exc.errno in ACCEPT_LIMIT_ERRNOS:
            self.delay = min(BACKOFF_MAX, max(BACKOFF_START, self.delay * 2))
            self.backoffs += 1
            return AcceptAction.BACK_OFF
        if exc.errno in ACCEPT_SKIP_ERRNOS:
            return AcceptAction.SKIP
        return AcceptAction.STOP

    def accepted(self) -> None:
        """A connection was accepted: the next back-off starts small again."""
        self.delay = 0.0


def set_nodelay(sock: socket.socket) -> bool:
    """Turn off Nagle's algorithm on a TCP socket; other sockets are left alone.

    Args:
        sock: Any socket (Unix sockets and socket pairs are skipped).

    Returns:
        Whether ``TCP_NODELAY`` was set (False for non-TCP sockets, or when
        the socket already died and refused the option).
    """
    import socket  # here: importing socket loads selectors, and the core needs neither

    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    if sock.type != socket.SOCK_STREAM:
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:  # reset before we got to it: the first read will say so
        return False
    return True


def is_peer_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a socket error the peer or the network caused.

    Such errors end a connection but are no bug of this process: adapters
    log them at DEBUG level at most.
    """
    return isinstance(exc, OSError) and exc.errno in PEER_ERRNOS
