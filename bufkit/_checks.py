"""Argument checks and error sorting shared by the core modules.

Theory of operation: every public entry point validates its arguments before
it changes any state, so a rejected call leaves its object unchanged, and the
message names the argument and the value. :func:`would_block` and
:func:`send_would_block` sort the errors a socket call raises into "try again
once ready" and fatal: docs/design.md invariant 1 relies on never treating a
would-block as a loss, nor a loss as a would-block. This module imports
nothing from the rest of the package, so any module may use it.
Cost: a class check per argument; the error sorting runs only on errors.
"""

from __future__ import annotations

import errno
import sys

__all__ = [
    "check_nbytes",
    "not_callable",
    "positive_int",
    "require_int",
    "send_would_block",
    "would_block",
]


def require_int(name: str, value: object) -> int:
    """Return ``value``; raise TypeError, naming ``name``, unless it is an int.

    A ``bool`` is refused too.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return value


def positive_int(name: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise if it is not an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        word = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{name} must be {word}, got {value}")
    return int(value)


def check_nbytes(nbytes: object, size: int) -> int:
    """Return ``nbytes`` if it is an int within ``0..size``.

    Raises:
        TypeError: it is not an int.
        ValueError: it is outside ``0..size``.
    """
    if not isinstance(nbytes, int) or isinstance(nbytes, bool):
        raise TypeError(f"nbytes must be an int, not {type(nbytes).__name__}")
    if not 0 <= nbytes <= size:
        raise ValueError(f"nbytes {nbytes} is outside 0..{size}")
    return nbytes


def not_callable(on_done: object) -> TypeError:
    """The error for a completion callback that cannot be called."""
    return TypeError(f"on_done must be callable or None, not {on_done!r}")


def would_block(exc: OSError) -> bool:
    """Whether ``exc`` means "try again once ready" rather than a loss.

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


def send_would_block(exc: OSError) -> bool:
    """:func:`would_block` for a send, where ``ENOBUFS`` also means "later".

    A send can fail with ``ENOBUFS`` when the kernel is short of buffer memory
    for a moment; the data was not taken and the connection is intact, so the
    sender waits for writability as after ``EAGAIN`` (Twisted does the same).
    """
    return exc.errno == errno.ENOBUFS or would_block(exc)
