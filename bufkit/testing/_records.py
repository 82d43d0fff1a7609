"""Call records of a fake socket: what the code under test asked, what it got.

Theory of operation: every socket call on a fake appends one frozen
:class:`Call`. ``str(call)`` is one line in the manner of ``strace`` output, and
:func:`format_transcript` joins them, so a failing run can show exactly what
the code under test did. Cost: one small object per call.
"""

from __future__ import annotations

import errno as _errno
import os
from collections.abc import Iterable
from typing import final

import attrs

from bufkit.testing._schedule import RecvStep, SendStep

__all__ = ["Call", "format_transcript", "os_error"]


def os_error(code: int, what: str) -> OSError:
    """Return the builtin :class:`OSError` subclass for ``code`` (as a kernel would)."""
    # OSError(errno, strerror) builds the matching subclass, e.g. BlockingIOError.
    return OSError(code, f"{os.strerror(code)} ({what})")


@final
@attrs.frozen
class Call:
    """One call made on a fake socket.

    Attributes:
        op: the method name, such as ``"sendmsg"`` or ``"recv_into"``.
        size: bytes offered (sends) or room in the buffer (receives).
        buffers: how many buffers a ``sendmsg`` was given (1 otherwise).
        result: bytes accepted or received, or ``None`` if the call raised.
        errno: the errno of the error raised, or ``None``.
        step: the schedule step the call consumed, if any.
    """

    op: str
    size: int = 0
    buffers: int = 1
    result: int | None = None
    errno: int | None = None
    step: SendStep | RecvStep | None = None

    def __str__(self) -> str:
        if self.op in ("close", "shutdown", "reset"):
            args = ""
        elif self.op == "sendmsg":
            args = f"[{self.buffers} buffers, {self.size} bytes]"
        else:
            args = str(self.size)
        if self.errno is not None:
            outcome = f"-1 {_errno.errorcode.get(self.errno, self.errno)}"
        else:
            outcome = "0" if self.result is None else str(self.result)
        tail = f"    # {self.step!r}" if self.step is not None else ""
        return f"{self.op}({args}) = {outcome}{tail}"


def format_transcript(calls: Iterable[Call], *, limit: int = 60) -> str:
    """Return ``calls`` as numbered ``strace``-like lines (the last ``limit``).

    Args:
        calls: the calls, oldest first (``FakeSocket.calls``).
        limit: how many of the most recent calls to show.

    Returns:
        One line per call; a first line says how many were left out.
    """
    items = list(calls)
    start = max(0, len(items) - limit)
    lines = [f"... {start} earlier calls" for _ in range(start > 0)]
    lines += [f"{i:4d}  {call}" for i, call in enumerate(items[start:], start)]
    return "\n".join(lines)
