"""Gather lists and the send call behind :class:`bufkit.WriteQueue`.

Theory of operation: the write queue keeps its pending bytes as a list of
``'B'`` memoryviews, the index of the first unsent one, and an offset into
it. :func:`gather` turns a prefix of the unsent views into the list one
``sendmsg`` takes, capped at :data:`IOV_MAX` entries *and* a byte count, with
the head sliced past the offset; nothing is copied. It stops at whichever cap
comes first and never looks at a view past the last one it returns, so a
long queue costs no more per call than a short one. :func:`send_once` makes
the one send call: ``sendmsg`` where it works, else ``send`` of a single
buffer, joining small leading buffers (up to :data:`SEND_COALESCE` bytes) so
that a TLS socket does not emit one record per tiny write. Nothing here
changes the queue: docs/design.md invariant 1 holds because the queue moves
its cursor by exactly the count a send returns.
Cost: O(entries returned) for the list (one C-level list slice when the byte
cap cannot bind, else a walk that stops at the cap), plus one slice when the
head was partly sent or the last view is cut; the send fallback joins at most
SEND_COALESCE bytes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, TypeGuard

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from bufkit._protocols import SupportsSend, SupportsSendmsg

__all__ = [
    "GATHER_BYTES",
    "IOV_MAX",
    "SEND_COALESCE",
    "gather",
    "is_plain_socket",
    "send_once",
]


def _iov_max() -> int:
    try:
        value = os.sysconf("SC_IOV_MAX")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - platform
        value = -1
    return value if value > 0 else 1024  # pragma: no branch


IOV_MAX: Final = _iov_max()
"""The most buffers one ``sendmsg`` takes (``SC_IOV_MAX``, 1024 where unknown)."""

GATHER_BYTES: Final = 1 << 20
"""Default byte cap of one gather list: above a loopback socket's usual take."""

SEND_COALESCE: Final = 16384
"""``send`` fallback joins small leading buffers up to one TLS record payload."""

_SEND_ONLY: Final[set[type]] = set()
"""Types whose ``sendmsg`` raised :class:`NotImplementedError` (``SSLSocket``)."""


def gather(
    segs: list[memoryview],
    first: int,
    offset: int,
    total: int,
    max_count: int,
    max_bytes: int,
) -> tuple[list[memoryview], int]:
    """Return the next gather list from ``segs[first:]`` and its size in bytes.

    ``total`` is the byte count of ``segs[first:]`` past ``offset``; the list
    holds at most ``max_count`` views and ``max_bytes`` bytes (the last view is
    cut to fit), the first one starting at ``offset``. Only the views returned
    are looked at.
    """
    stop = first + max_count
    if total <= max_bytes:  # only the count cap can bind: one C-level slice
        out = segs[first:stop]
        if stop < len(segs):
            total = sum(map(len, out))
            total -= offset
    else:
        total, stop = _byte_capped(segs, first, offset, stop, max_bytes)
        out = segs[first:stop]
        if total > max_bytes:
            last = out[-1]
            out[-1] = last[: len(last) - (total - max_bytes)]
            total = max_bytes
    if offset:
        out[0] = out[0][offset:]
    return out, total


def _byte_capped(
    segs: list[memoryview], first: int, offset: int, stop: int, max_bytes: int
) -> tuple[int, int]:
    """Walk ``segs`` from ``first`` until ``max_bytes`` or ``stop``: (size, end)."""
    size = -offset
    end = min(stop, len(segs))
    i = first
    while i < end:
        size += len(segs[i])
        i += 1
        if size >= max_bytes:
            break
    return size, i


def send_once(
    sock: SupportsSendmsg | SupportsSend,
    segs: list[memoryview],
    first: int,
    offset: int,
    total: int,
    max_bytes: int,
) -> tuple[int, int]:
    """Make one send call from ``segs[first:]``; return (accepted, offered).

    Raises:
        OSError: whatever the socket raised, unchanged.
    """
    if type(sock) not in _SEND_ONLY:
        sendmsg = getattr(sock, "sendmsg", None)
        if sendmsg is not None:
            views, offered = gather(segs, first, offset, total, IOV_MAX, max_bytes)
            try:
                sent: int = sendmsg(views)
            except NotImplementedError:
                _SEND_ONLY.add(type(sock))
            else:
                return sent, offered
    return _send_joined(sock, segs, first, offset, total, max_bytes)


def _send_joined(
    sock: SupportsSendmsg | SupportsSend,
    segs: list[memoryview],
    first: int,
    offset: int,
    total: int,
    max_bytes: int,
) -> tuple[int, int]:
    head = len(segs[first]) - offset
    cap = min(max(head, SEND_COALESCE), max_bytes)
    views, offered = gather(segs, first, offset, total, IOV_MAX, cap)
    data = views[0] if len(views) == 1 else b"".join(views)
    send: Callable[[Buffer], int] | None = getattr(sock, "send", None)
    if send is None:
        raise TypeError(f"{sock!r} has neither a working sendmsg nor send")
    return send(data), offered


PLAIN: Final[dict[type, bool]] = {}  # class -> whether it is socket.socket


def is_plain_socket(sock: SupportsSendmsg | SupportsSend) -> TypeGuard[SupportsSend]:
    """Whether ``sock`` is exactly a :class:`socket.socket` (remembered per class).

    Its ``send`` is one syscall, so a single pending buffer goes out with it
    rather than a one-entry ``sendmsg``. Subclasses (TLS) and fakes keep the
    general path. Read by name: the core does not import :mod:`socket`.
    """
    cls = sock.__class__
    plain = PLAIN.get(cls)
    if plain is None:
        plain = PLAIN[cls] = cls.__module__ == "socket" and cls.__name__ == "socket"
    return plain
