"""The write queue's lifecycle as data: states, events and their table.

Theory of operation: :class:`QueueState` is what users see; ``Event`` names
what can happen to a queue; ``TRANSITIONS`` maps every (state, event) pair to
the next state, so the lifecycle is total, checked by a Hypothesis state
machine and rendered into the reference docs. Only ``OPEN`` accepts writes.
Cost: one dict lookup per transition (close, drain to zero, failure).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

__all__ = ["TRANSITIONS", "Event", "QueueState"]


class QueueState(enum.Enum):
    """Where a :class:`~bufkit.WriteQueue` is in its life.

    ``OPEN`` accepts writes. ``CLOSING`` was closed with data pending: it takes
    no writes but still flushes. ``CLOSED`` was closed and has drained.
    ``FAILED`` broke (a socket error or :meth:`~bufkit.WriteQueue.fail`): its
    pending data was dropped and its completions got the exception.
    """

    __module__ = "bufkit"

    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"
    FAILED = "failed"


class Event(enum.Enum):
    """What can happen to a queue."""

    CLOSE = "close()"
    DRAIN = "pending reaches 0"
    FAIL = "fail() or a fatal socket error"


_O, _C, _D, _F = (
    QueueState.OPEN,
    QueueState.CLOSING,
    QueueState.CLOSED,
    QueueState.FAILED,
)

TRANSITIONS: Final[Mapping[tuple[QueueState, Event], QueueState]] = {
    (_O, Event.CLOSE): _C,
    (_O, Event.DRAIN): _O,
    (_O, Event.FAIL): _F,
    (_C, Event.CLOSE): _C,
    (_C, Event.DRAIN): _D,
    (_C, Event.FAIL): _F,
    (_D, Event.CLOSE): _D,
    (_D, Event.DRAIN): _D,
    (_D, Event.FAIL): _D,
    (_F, Event.CLOSE): _F,
    (_F, Event.DRAIN): _F,
    (_F, Event.FAIL): _F,
}
"""Every (state, event) pair and the state it leads to."""
