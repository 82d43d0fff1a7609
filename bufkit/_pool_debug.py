"""The debug modes of :class:`bufkit.BufferPool`: poison, scrub and track."""

# Theory of operation
# -------------------
# A pool built with any debug mode owns one _Debug and lends every chunk
# through a fresh PooledBuffer per lease (its "lease"; see _pool.py), so a
# stale reference is always told apart from the next borrower's. The hooks run
# under the pool's lock, off the lock-free path that plain pools use.
#
# - poison: a released chunk is filled with POISON_BYTE, so code that reads a
#   chunk after giving it back sees 0xDB bytes instead of plausible data. Each
#   lease also gets its own memoryview of the chunk, released with the buffer,
#   so a `view` kept past release() raises ValueError when touched (slices
#   taken from it stay valid: memoryview cannot revoke them).
# - scrub: a released chunk is zeroed, so one connection's bytes never reach
#   the next borrower. With poison too, the chunk is poisoned (which erases it
#   just as well).
# - track: acquire() records its caller's stack and a weak reference to the
#   buffer; a buffer garbage-collected unreleased is reported as a
#   BufferLeakWarning naming that stack. Its chunk stays counted as in use:
#   slices of its view may still be alive, so it cannot be lent again safely.
#
# Cost: filling is one C-level slice assignment per release; tracking is a
# stack capture per acquire (tens of microseconds: a debugging aid only).

from __future__ import annotations

import contextlib
import os
import sys
import traceback
import warnings
import weakref
from typing import TYPE_CHECKING, Final, final

from bufkit.errors import BufferLeakWarning

if TYPE_CHECKING:
    from bufkit._pool import PooledBuffer

__all__ = ["POISON_BYTE", "TRACK_DEPTH", "release_quietly"]

POISON_BYTE: Final = 0xDB
"""The byte a poisoning pool fills released chunks with."""

TRACK_DEPTH: Final = 24
"""How many frames of the acquiring stack a tracking pool keeps."""

_OWN_FILES: Final = frozenset(
    os.path.join(os.path.dirname(__file__), name)
    for name in ("_pool.py", "_pool_debug.py", "_pool_slabs.py")
)


def release_quietly(view: memoryview) -> None:
    """Release ``view``, unless something still holds an export of it."""
    with contextlib.suppress(BufferError):  # exported: it dies with its users
        view.release()


@final
class _Debug:
    """What a debugging pool does besides lending."""

    __slots__ = ("_live", "poison", "scrub", "track")

    def __init__(self, *, poison: bool, scrub: bool, track: bool) -> None:
        self.poison = poison
        self.scrub = scrub
        self.track = track
        self._live: dict[weakref.ref[PooledBuffer], tuple[str, str]] = {}

    def on_acquire(self, buf: PooledBuffer) -> None:
        """Give ``buf`` its own view (poison) and watch it (track)."""
        if self.poison and buf._carrier is not None:
            buf._mem = buf._carrier._mem[:]
        if self.track:
            ref = weakref.ref(buf, self._lost)
            self._live[ref] = (repr(buf), _acquiring_stack())
            buf._tracker = ref

    def on_release(self, buf: PooledBuffer) -> None:
        """Forget ``buf``, wipe its chunk, and revoke its own view."""
        view = buf._mem
        if self.track:
            self._live.pop(buf._tracker, None)
        chunk = view if buf._carrier is None else buf._carrier._mem
        if self.poison:
            chunk[:] = bytes((POISON_BYTE,)) * buf._size
        elif self.scrub:
            chunk[:] = bytes(buf._size)
        if view is not chunk:
            release_quietly(view)

    def _lost(self, ref: weakref.ref[PooledBuffer]) -> None:
        """Report a buffer that was garbage-collected unreleased."""
        entry = self._live.pop(ref, None)
        if entry is not None:
            what, stack = entry
            warnings.warn(
                f"{what} was garbage-collected without release(); "
                f"it was acquired at (most recent call last):\n{stack}",
                BufferLeakWarning,
                stacklevel=2,
            )


def _acquiring_stack() -> str:
    """The caller's stack, without the pool's own frames, formatted."""
    stack = traceback.extract_stack(sys._getframe(1), limit=TRACK_DEPTH + 4)
    mine = [frame for frame in stack if frame.filename not in _OWN_FILES]
    return "".join(traceback.format_list(mine[-TRACK_DEPTH:]))
