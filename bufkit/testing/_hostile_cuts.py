"""Cuttings: how a hostile transport cuts a conversation and when it pushes back.

Theory of operation: a :class:`Cutting` is a plain value (cut offsets into the
inbound byte stream, backpressure pauses tied to the protocol's own write calls,
``get_buffer`` size hints, and an optional point where the connection is lost),
so a failing run is reproduced by pasting its repr. The strategies draw
cuttings with Hypothesis, imported only when a strategy is built; they shrink
toward no cut, no pause, the shortest hold and no loss, so a shrunk failure
shows the smallest hostility that still changes the protocol's behaviour.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Final, final

import attrs

from bufkit.errors import BufkitError

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = ["Cutting", "CuttingError", "Pause", "backpressure_schedules", "cuttings"]

MAX_HINT: Final = 65536


@final
class CuttingError(BufkitError, ValueError):
    """Raised when a :class:`Cutting` does not fit its conversation.

    That is a cut offset or ``lost_at`` outside the conversation, or a pause
    with a negative write index or hold. The message names the value.
    """


@final
@attrs.frozen
class Pause:
    """Backpressure: the transport pauses writing during one of your writes.

    Like a real transport whose buffer crosses its high-water mark, the
    hostile transport calls ``pause_writing()`` (asyncio), makes ``drain()``
    block (streams) or calls ``pauseProducing()`` on the registered producer
    (Twisted) from inside the protocol's write call number ``at_write``
    (counted from 0 over ``write`` and ``writelines``), and undoes it once
    ``hold`` more chunks have been delivered (at once if reading is paused or
    the input is used up, since the peer then drains).

    Attributes:
        at_write: the write call that crosses the high-water mark.
        hold: how many chunks the transport delivers before resuming.
    """

    at_write: int
    hold: int = 1


def _ints(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(values)


def _pauses_of(values: Iterable[Pause]) -> tuple[Pause, ...]:
    return tuple(values)


@final
@attrs.frozen(repr=False)
class Cutting:
    """Where the hostile transport cuts the input, and when it pushes back.

    ``Cutting()`` delivers the whole conversation in one call and never pauses.

    Attributes:
        cuts: offsets into the inbound stream where a delivery ends (each
            strictly inside it); ``(1, 2)`` delivers one byte, one byte, then
            the rest.
        pauses: the backpressure schedule, see :class:`Pause`.
        hints: size hints passed in turn to ``BufferedProtocol.get_buffer``
            (``-1`` once they are used up).
        lost_at: if set, the connection is lost after this many inbound bytes
            (``connection_lost`` with an error) instead of ending normally.
    """

    cuts: tuple[int, ...] = attrs.field(default=(), converter=_ints)
    pauses: tuple[Pause, ...] = attrs.field(default=(), converter=_pauses_of)
    hints: tuple[int, ...] = attrs.field(default=(), converter=_ints)
    lost_at: int | None = None

    def __repr__(self) -> str:
        """The constructor call, without the fields left at their default."""
        fields = [
            f"{name}={value!r}"
            for name, value in (
                ("cuts", self.cuts),
                ("pauses", self.pauses),
                ("hints", self.hints),
                ("lost_at", self.lost_at),
            )
            if value not in ((), None)
        ]
        return f"Cutting({', '.join(fields)})"

    def validate(self, size: int) -> None:
        """Check that this cutting fits a conversation of ``size`` bytes.

        Args:
            size: the length of the inbound stream.

        Raises:
            CuttingError: naming the offending offset or pause.
        """
        for cut in self.cuts:
            if not 0 < cut < size:
                raise CuttingError(f"cut {cut} is not inside the {size}-byte input")
        if self.lost_at is not None and not 0 <= self.lost_at <= size:
            raise CuttingError(
                f"lost_at {self.lost_at} is outside the {size}-byte input"
            )
        for pause in self.pauses:
            if pause.at_write < 0 or pause.hold < 0:
                raise CuttingError(f"{pause!r} has a negative write index or hold")

    def chunks(self, data: bytes) -> list[bytes]:
        """Cut ``data`` as this cutting says (stopping at ``lost_at``).

        Args:
            data: the inbound stream.

        Returns:
            The deliveries, each non-empty, in order.

        Raises:
            CuttingError: if the cutting does not fit ``data``.
        """
        self.validate(len(data))
        end = len(data) if self.lost_at is None else self.lost_at
        points = sorted({c for c in self.cuts if c < end})
        bounds = [0, *points, end]
        return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]

    def describe(self, data: bytes) -> str:
        """A readable account of this cutting applied to ``data``.

        Args:
            data: the inbound stream.

        Returns:
            The cut points, the chunks and the pauses, one item a line.
        """
        lines = [
            f"cut points: {list(self.cuts) or 'none (the whole input in one delivery)'}"
        ]
        lines.append(f"chunks: {self.chunks(data)!r}")
        if self.pauses:
            lines.append(f"backpressure: {list(self.pauses)!r}")
        if self.hints:
            lines.append(f"get_buffer hints: {list(self.hints)!r}")
        if self.lost_at is not None:
            lines.append(f"connection lost after {self.lost_at} bytes")
        return "\n".join(lines)


def backpressure_schedules(
    *, max_pauses: int = 3, max_write: int = 16, max_hold: int = 3
) -> SearchStrategy[tuple[Pause, ...]]:
    """Draw backpressure schedules (needs Hypothesis; shrinks to no pause).

    Args:
        max_pauses: the most pauses.
        max_write: the latest write call a pause may come in.
        max_hold: the longest hold, in deliveries.

    Returns:
        A strategy for tuples of :class:`Pause`, ordered by write index.
    """
    from hypothesis import strategies as st

    pause = st.builds(Pause, st.integers(0, max_write), st.integers(0, max_hold))
    return st.lists(pause, max_size=max_pauses, unique_by=lambda p: p.at_write).map(
        lambda ps: tuple(sorted(ps, key=lambda p: p.at_write))
    )


def cuttings(
    size: int,
    *,
    max_cuts: int | None = None,
    pauses: bool = True,
    hints: bool = False,
    lose: bool = False,
    max_write: int = 16,
) -> SearchStrategy[Cutting]:
    """Draw cuttings of a ``size``-byte conversation (needs Hypothesis).

    Cut points are drawn as a set of offsets, down to one byte per delivery;
    everything shrinks toward the whole conversation in one delivery with no
    backpressure, no hints and no loss.

    Args:
        size: the length of the inbound stream.
        max_cuts: at most this many cut points (``None``: up to one per byte).
        pauses: draw backpressure pauses too (see :func:`backpressure_schedules`).
        hints: draw ``get_buffer`` size hints (for ``BufferedProtocol``).
        lose: draw a point where the connection is lost.
        max_write: the latest write call a pause may come in.

    Returns:
        A strategy for :class:`Cutting` values that fit the conversation.
    """
    from hypothesis import strategies as st

    cut_points: SearchStrategy[tuple[int, ...]] = st.just(())
    if size >= 2:
        cut_points = st.sets(st.integers(1, size - 1), max_size=max_cuts).map(
            lambda s: tuple(sorted(s))
        )
    no_pauses: SearchStrategy[tuple[Pause, ...]] = st.just(())
    hint = st.one_of(st.just(-1), st.integers(1, MAX_HINT))
    no_hints: SearchStrategy[tuple[int, ...]] = st.just(())
    no_loss: SearchStrategy[int | None] = st.none()
    return st.builds(
        Cutting,
        cuts=cut_points,
        pauses=backpressure_schedules(max_write=max_write) if pauses else no_pauses,
        hints=st.lists(hint, max_size=8).map(tuple) if hints else no_hints,
        lost_at=(no_loss | st.integers(0, size)) if lose else no_loss,
    )


def _pieces(conversation: bytes | Sequence[bytes]) -> list[bytes]:
    if isinstance(conversation, bytes | bytearray | memoryview):
        return [bytes(conversation)]
    return [bytes(piece) for piece in conversation]
