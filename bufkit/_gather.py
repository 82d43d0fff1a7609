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
that a TLS socket does not emit one record per tiny write. :func:`would_block`
sorts the errors a send raises into "try again when writable" and fatal
(invariant 1 of DESIGN.md relies on never treating a would-block as a loss,
nor a loss as a would-block).
Cost: O(entries returned) for the list (one C-level list slice when the byte
cap cannot bind, else a walk that stops at the cap), plus one slice when the
head was partly sent or the last view is cut; the send fallback joins at most
SEND_COALESCE bytes.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Final, NoReturn, TypeAlias, cast

from bufkit._checks import require_int

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from bufkit._protocols import SupportsSend, SupportsSendmsg

__all__ = [
    "COALESCE_BELOW",
    "Errors",
    "GATHER_BYTES",
    "IOV_MAX",
    "SEND_COALESCE",
    "TAIL_LIMIT",
    "byte_view",
    "check_nbytes",
    "gather",
    "group",
    "not_callable",
    "raise_all",
    "send_once",
    "would_block",
]


def _iov_max() -> int:
    try:
        value = os.sysconf("SC_IOV_MAX")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - platform
        value = -1
    return value if value > 0 else 1024  # pragma: no branch


IOV_MAX: Final = _iov_max()
"""The most buffers one ``sendmsg`` takes (``SC_IOV_MAX``, 1024 where unknown)."""

COALESCE_BELOW: Final = 2048
"""Writes shorter than this are copied into a shared tail buffer (measured)."""

TAIL_LIMIT: Final = 65536
"""The shared tail buffer is sealed into its own entry once this large."""

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
    sent: int = cast("SupportsSend", sock).send(data)
    return sent, offered


PLAIN: Final[dict[type, bool]] = {}  # class -> is_plain_socket(class)


def is_plain_socket(cls: type) -> bool:
    """Whether ``cls`` is exactly :class:`socket.socket` (remembered per class).

    Its ``send`` is one syscall, so a single pending buffer goes out with it
    rather than a one-entry ``sendmsg``. Subclasses (TLS) and fakes keep the
    general path. Read by name: the core does not import :mod:`socket`.
    """
    plain = PLAIN.get(cls)
    if plain is None:
        plain = PLAIN[cls] = cls.__module__ == "socket" and cls.__name__ == "socket"
    return plain


def would_block(exc: OSError) -> bool:
    """Whether ``exc`` means "try again once writable" rather than a loss.

    :class:`BlockingIOError` (``EAGAIN``), and the TLS layer's
    ``SSLWantWriteError``/``SSLWantReadError``. :mod:`ssl` is looked up only if
    something already imported it: an SSL socket cannot exist otherwise.
    """
    if isinstance(exc, BlockingIOError):
        return True
    ssl = sys.modules.get("ssl")
    return ssl is not None and isinstance(
        exc, (ssl.SSLWantWriteError, ssl.SSLWantReadError)
    )


Errors: TypeAlias = list[Exception] | None
"""Exceptions raised by callbacks during one queue call, collected in order."""


def group(errors: list[Exception]) -> Exception:
    """The one error, or an :class:`ExceptionGroup` of several."""
    if len(errors) == 1:
        return errors[0]
    return ExceptionGroup("WriteQueue callbacks raised", errors)


def raise_all(errors: list[Exception]) -> NoReturn:
    """Raise what :func:`group` makes of ``errors``."""
    raise group(errors)


def byte_view(data: Buffer, copy: bool, coalesce: int) -> memoryview:
    """A one-dimensional ``'B'`` view of ``data``'s raw bytes, copied if needed.

    Copied when not C-contiguous, or when ``copy`` is true, the view is at
    least ``coalesce`` bytes (shorter ones are copied into the tail anyway)
    and its exporter is not ``bytes``.

    Raises:
        TypeError: ``data`` does not support the buffer protocol.
    """
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(
            f"write() needs a bytes-like object or a PooledBuffer, "
            f"not {type(data).__name__!r}"
        ) from None
    if not view.c_contiguous:
        return memoryview(view.tobytes())
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    if copy and len(view) >= coalesce and not isinstance(view.obj, bytes):
        return memoryview(view.tobytes())
    return view


def not_callable(on_done: object) -> TypeError:
    """The error for a completion callback that cannot be called."""
    return TypeError(f"on_done must be callable or None, not {on_done!r}")


def check_nbytes(nbytes: int, size: int) -> int:
    """Return ``nbytes`` if it is an int within ``0..size``.

    Raises:
        TypeError: it is not an int.
        ValueError: it is outside ``0..size``.
    """
    if nbytes.__class__ is not int:
        require_int("nbytes", nbytes)
    if not 0 <= nbytes <= size:
        raise ValueError(f"nbytes {nbytes} is outside 0..{size}")
    return nbytes
